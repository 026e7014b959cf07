"""The contention sweep's tables (dualbench.analysis.contention): the neighbour's solo capacity,
a point's row from its runs.csv rows, the curve over blocks, and the fits recovering a known
curve from the table as the aggregation writes it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dualbench.analysis.calibration import NO_PEAKS, Peaks
from dualbench.analysis.columns import CONTENTION_COLUMNS, CONTENTION_FIT_COLUMNS
from dualbench.analysis.contention import (
    contention_row,
    contention_table,
    curve_table,
    fits_table,
    solo_capacity,
    traffic_bytes_s,
)
from tests.unit.test_metrics import closed_loop, make_record

SWEEP = {"victim": "A", "neighbour": "B", "fraction": 0.5, "capacity_rps": 4.0, "offered_rps": 2.0}


def test_solo_capacity_is_the_alone_runs_request_rate():
    # B alone: 8 calls of 4 tokens 250 ms apart: 1 request per second over 0..8 s.
    record = make_record({"B": closed_loop(0, 8, 250, 4)}, duration_s=8)
    assert solo_capacity(record, "B") == (pytest.approx(1.0), "")


def test_no_capacity_from_a_failed_or_invalid_run():
    failed = make_record({"B": closed_loop(0, 8, 250, 4)}, status="timeout", error="late")
    rate, why = solo_capacity(failed, "B")
    assert rate is None and "timeout" in why and "late" in why
    short = make_record({"B": closed_loop(0, 2, 250, 4)}, duration_s=8)  # 2 s of 8
    rate, why = solo_capacity(short, "B")
    assert rate is None and "invalid" in why and "duration_s" in why
    rate, why = solo_capacity(make_record({"A": closed_loop(0, 8, 250, 4)}, duration_s=8), "B")
    assert rate is None and "slot B" in why


def run_row(slot, tpot, tok_s, bw, step_bytes=1e8, batch=1, **extra):
    return {
        "slot": slot, "tpot_ms_mean": tpot, "throughput_tok_s": tok_s, "batch_size": batch,
        "decode_bw_bytes_s": bw, "decode_bytes_per_step": step_bytes, "valid": True,
        "invalid_reasons": "", "request_rate_rps": tok_s / 8, **extra,
    }  # fmt: skip


def sweep_record(fraction=0.5, **sweep):
    spec = {"scenario": "short", "precision": "bf16", "repeat": 2, "position": 3}
    return {"spec": {**spec, "sweep": {**SWEEP, "fraction": fraction, **sweep}}, "error": ""}


def test_a_points_row_holds_the_victims_bandwidth_and_the_pairs_traffic():
    peaks = Peaks(3e10, 1.7e10, 3.4e10, 1e11)
    rows = [
        run_row("A", 10.0, 90.0, 1e10),
        run_row("B", 12.0, 40.0, 8e9, step_bytes=2e8, batch=2, backlog=3, warnings="queued"),
    ]
    row = contention_row(sweep_record(), rows, peaks)
    assert set(row) == set(CONTENTION_COLUMNS)
    assert (row["victim"], row["neighbour"], row["fraction"], row["repeat"]) == ("A", "B", 0.5, 2)
    assert (row["offered_rps"], row["capacity_rps"]) == (2.0, 4.0)
    assert row["victim_bw_bytes_s"] == 1e10 and row["victim_tpot_ms"] == 10.0
    # traffic: tokens/s / batch x bytes per step: A 90 x 1e8, B 40 / 2 x 2e8
    assert row["neighbour_bw_bytes_s"] == pytest.approx(4e9)
    assert row["pair_bw_bytes_s"] == pytest.approx(9e9 + 4e9)
    assert row["ceiling_bytes_s"] == 3.4e10 and row["backlog"] == 3 and row["note"] == "queued"
    assert row["valid"] is True


def test_the_victim_alone_point_and_a_point_that_did_not_run():
    alone = contention_row(
        sweep_record(0.0, offered_rps=0.0), [run_row("A", 10.0, 90.0, 1e10)], NO_PEAKS
    )
    assert alone["pair_bw_bytes_s"] == pytest.approx(traffic_bytes_s(run_row("A", 10, 90.0, 1)))
    assert math.isnan(alone["neighbour_bw_bytes_s"]) and math.isnan(alone["ceiling_bytes_s"])
    not_run = sweep_record()
    not_run["error"] = "not run: no solo capacity of B"
    row = contention_row(not_run, [], NO_PEAKS)
    assert row["valid"] is False and "no solo capacity" in row["invalid_reasons"]


def synthetic_sweep(bw_max=2e10, k=0.3, blocks=3, noise=0.01, seed=1) -> pd.DataFrame:
    """A sweep as contention.csv holds it: an exponential decay with 1% multiplicative noise,
    6 fractions of a capacity that varies a little per block."""
    rng = np.random.default_rng(seed)
    rows = []
    for block in range(1, blocks + 1):
        capacity = 4.0 * (1 + 0.02 * block)
        for fraction in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
            rate = fraction * capacity
            bw = bw_max * math.exp(-k * rate) * (1 + noise * rng.standard_normal())
            rows.append(
                {
                    **dict.fromkeys(CONTENTION_COLUMNS, math.nan),
                    "scenario": "long",
                    "precision": "bf16",
                    "repeat": block,
                    "victim": "A",
                    "neighbour": "B",
                    "fraction": fraction,
                    "offered_rps": rate,
                    "capacity_rps": capacity,
                    "victim_bw_bytes_s": bw,
                    "victim_tpot_ms": 1e8 / bw,
                    "pair_bw_bytes_s": bw * 1.5,
                    "ceiling_bytes_s": 3.4e10,
                    "valid": True,
                    "invalid_reasons": "",
                    "note": "",
                }  # fmt: skip
            )
    return contention_table(rows)


def test_the_curve_has_one_interval_per_point_and_metric_over_valid_blocks():
    table = synthetic_sweep()
    table.loc[(table["repeat"] == 3) & (table["fraction"] == 1.0), "valid"] = False
    curve = curve_table(table, 0.95)
    bw = curve[curve["metric"] == "victim_bw_bytes_s"].set_index("fraction")
    assert list(bw.index) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert bw.loc[0.2, "n"] == 3 and bw.loc[1.0, "n"] == 2
    first = table[table["fraction"] == 0.2]["victim_bw_bytes_s"]
    assert bw.loc[0.2, "estimate"] == pytest.approx(math.exp(np.log(first).mean()))
    assert bw.loc[0.2, "lo"] < bw.loc[0.2, "estimate"] < bw.loc[0.2, "hi"]
    assert bw.loc[0.2, "offered_rps"] == pytest.approx(
        table[table["fraction"] == 0.2]["offered_rps"].mean()
    )
    assert set(curve["metric"]) == {"victim_bw_bytes_s", "victim_tpot_ms", "pair_bw_bytes_s"}


def test_fits_recover_a_known_exponential_from_the_table():
    fits = fits_table(synthetic_sweep(bw_max=2e10, k=0.3), 0.95)
    assert list(fits.columns) == CONTENTION_FIT_COLUMNS
    assert set(fits["model"]) == {"exponential", "floor", "fair_share"}
    exp = fits.set_index("model").loc["exponential"]
    assert exp["bw_max"] == pytest.approx(2e10, rel=0.02)
    assert exp["k"] == pytest.approx(0.3, rel=0.1)
    assert exp["k_lo"] < 0.3 < exp["k_hi"] and exp["n"] == 18
    assert len(exp["residuals"].split()) == 18 and exp["ceiling_bytes_s"] == 3.4e10
    assert fits["preferred"].sum() == 1
    # floor nests the exponential (bw_inf = 0): the exponential leads or the two tie
    best = fits[fits["preferred"]].iloc[0]
    assert best["model"] in ("exponential", "floor")
    assert fits.set_index("model").loc["fair_share", "delta_aicc"] > 2


def test_without_a_ceiling_fair_share_is_not_fitted():
    table = synthetic_sweep()
    table["ceiling_bytes_s"] = math.nan
    assert set(fits_table(table, 0.95)["model"]) == {"exponential", "floor"}
