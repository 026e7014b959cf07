"""The report's "Where is the wall" section and calibration table, on hand-made tables that
follow dualbench.analysis.columns: the sentence rules, the fit table, the figures, and the
section left out for metrics that predate it."""

from __future__ import annotations

import math
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from dualbench.analysis.columns import (
    CALIBRATION_COLUMNS,
    CONTENTION_COLUMNS,
    CONTENTION_CURVE_COLUMNS,
    CONTENTION_FIT_COLUMNS,
    METRICS_FILES,
    ROOFLINE_COLUMNS,
)
from dualbench.report.estimates import Estimates
from dualbench.report.render import write_report
from dualbench.report.tables import (
    prepare_answers,
    prepare_calibration,
    prepare_contention,
    prepare_contention_curve,
    prepare_contention_fits,
    prepare_roofline,
    prepare_runs,
)
from dualbench.report.verdicts import wall_brief
from dualbench.report.wall import (
    WALL_FRACTION,
    alone_regime,
    calibration_rows,
    fit_table,
    pair_bandwidth,
    residual_rms,
    wall_sentence,
)
from dualbench.report.wall_figures import (
    curve_figure,
    fmt_flops,
    fmt_sig,
    model_curve,
    pair_figure,
    roofline_ceilings,
    roofline_figure,
    roofline_points,
)
from dualbench.report.wall_regime import below_roof_note
from tests.unit.test_report import (
    DEFINITIONS,
    DESCRIPTIONS,
    FIGURES,
    GOLDEN_METRICS,
    block_answers,
    section,
    write_metrics,
)
from tests.unit.test_report import block_runs as plain_block_runs

KEY = ("short", "bf16")
GB = 1e9
PEAK_BW, CONTENDED_SLOT, CONTENDED_TOTAL, PEAK_FLOP = 20 * GB, 12 * GB, 24 * GB, 1.5e12
FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CAPACITY = {1: 5.0, 2: 5.1, 3: 4.9}  # the neighbour's solo capacity per block, req/s
FLOOR = {"bw_max": 15 * GB, "bw_inf": 6 * GB, "k": 0.5}
BETA = 2 * GB  # the neighbour's bandwidth per req/s


def roofline(bw: float, regime: str = "bandwidth-bound", mfu: float = 0.21) -> dict:
    """ROOFLINE_COLUMNS of a slot whose decode reads 1 GB a step at ``bw`` bytes/s: its
    decode (15 steps of 1/15 s at 15 GB/s) outlasts its prefill (0.2 s)."""
    prefill_flop_s = mfu * PEAK_FLOP
    row = {
        "decode_bytes_per_step": 1 * GB,
        "decode_flops_per_step": 2 * GB,
        "decode_intensity": 2.0,
        "decode_bw_bytes_s": bw,
        "decode_flop_s": 2 * bw,
        "mbu": bw / PEAK_BW,
        "decode_mfu": 2 * bw / PEAK_FLOP,
        "decode_regime": regime,
        "prefill_bytes": 1 * GB,
        "prefill_flops": 0.2 * prefill_flop_s,
        "prefill_intensity": 0.2 * prefill_flop_s / GB,
        "prefill_bw_bytes_s": 5 * GB,
        "prefill_flop_s": prefill_flop_s,
        "prefill_mbu": 0.25,
        "mfu": mfu,
        "prefill_regime": "below-roofs",
        "regime": regime,
        "regime_phase": "decode",
        "peak_bw_bytes_s": PEAK_BW,
        "peak_flop_s": PEAK_FLOP,
    }
    assert set(row) == set(ROOFLINE_COLUMNS)
    return row


def wall_runs(co_bw: float, alone_bw: float = 15 * GB, regime="bandwidth-bound") -> pd.DataFrame:
    """runs.csv of short/bf16 over 3 blocks with the roofline columns: each slot reads
    ``alone_bw`` alone and ``co_bw`` co-located, and its traffic over the window is the same
    (a token per decode step of 1 GB: throughput_tok_s = bandwidth / 1 GB x batch)."""
    runs = plain_block_runs(3)
    roof = [
        roofline(co_bw if layout == "colocated" else alone_bw, regime) for layout in runs["layout"]
    ]
    runs = pd.concat([runs, pd.DataFrame(roof)], axis=1)
    runs["throughput_tok_s"] = runs["decode_bw_bytes_s"] / GB * runs["batch_size"]
    return runs


def calibration(dtype: str = "bfloat16") -> pd.DataFrame:
    rows = [
        {
            "slot": slot,
            "device": f"cpu:{cores}",
            "backend": "cpu",
            "dtype": dtype,
            "copy_bytes": 256 * 2**20,
            "llc_bytes": 32 * 2**20,
            "copy_alone_bytes_s": PEAK_BW,
            "copy_alone_spread": 0.02,
            "copy_contended_bytes_s": CONTENDED_SLOT,
            "copy_contended_total_bytes_s": CONTENDED_TOTAL,
            "contended_slots": 2,
            "matmul_n": 2048,
            "matmul_flop_s": PEAK_FLOP,
            "matmul_spread": 0.03,
            "repeats": 5,
            "note": "",
        }
        for slot, cores in (("A", "0-3"), ("B", "4-7"))
    ]
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def victim_bw(rate: float, block: int) -> float:
    """The floor model, a little apart per block (the blocks' spread)."""
    curve = FLOOR["bw_inf"] + (FLOOR["bw_max"] - FLOOR["bw_inf"]) * math.exp(-FLOOR["k"] * rate)
    return curve * (1 + 0.01 * (block - 2))


def contention() -> pd.DataFrame:
    """One sweep (victim A, neighbour B): 3 blocks × 6 fractions."""
    rows = []
    for block, cap in CAPACITY.items():
        for pos, fraction in enumerate(FRACTIONS, start=1):
            rate = fraction * cap
            bw = victim_bw(rate, block)
            rows.append(
                {
                    "scenario": "short", "precision": "bf16", "repeat": block, "position": pos,
                    "victim": "A", "neighbour": "B", "fraction": fraction, "offered_rps": rate,
                    "capacity_rps": cap, "neighbour_rps": rate, "backlog": 0,
                    "victim_tpot_ms": 1e3 * GB / bw, "victim_throughput_tok_s": 1e9 / bw,
                    "victim_bw_bytes_s": bw, "neighbour_bw_bytes_s": BETA * rate,
                    "pair_bw_bytes_s": bw + BETA * rate, "ceiling_bytes_s": CONTENDED_TOTAL,
                    "valid": True, "invalid_reasons": "", "note": "",
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=CONTENTION_COLUMNS)


def curve(points: pd.DataFrame) -> pd.DataFrame:
    """contention_curve.csv: mean and min–max over the blocks, per fraction and metric."""
    rows = []
    for fraction, group in points.groupby("fraction"):
        for metric in ("victim_tpot_ms", "victim_bw_bytes_s", "neighbour_bw_bytes_s",
                       "pair_bw_bytes_s", "neighbour_rps"):  # fmt: skip
            values = group[metric]
            rows.append(
                {
                    "scenario": "short", "precision": "bf16", "victim": "A", "neighbour": "B",
                    "fraction": fraction, "offered_rps": group["offered_rps"].mean(),
                    "metric": metric, "estimate": values.mean(), "lo": values.min(),
                    "hi": values.max(), "n": len(values), "confidence": 0.95,
                    "method": "log-value t",
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=CONTENTION_CURVE_COLUMNS)


def fit_row(model: str, delta: float, preferred=False, distinguishable=False, **params) -> dict:
    row = dict.fromkeys(CONTENTION_FIT_COLUMNS, math.nan)
    row |= {"scenario": "short", "precision": "bf16", "victim": "A", "neighbour": "B",
            "model": model, "formula": f"formula of {model}", "ceiling_bytes_s": CONTENDED_TOTAL,
            "aicc": -900.0 + delta, "delta_aicc": delta, "n": 18, "rss": 1.0,
            "residuals": " ".join(["1e8", "-1e8"] * 9), "converged": math.isfinite(delta),
            "preferred": preferred, "distinguishable": distinguishable, "confidence": 0.95,
            "note": ""}  # fmt: skip
    for name, value in params.items():
        row |= {name: value, f"{name}_lo": 0.96 * value, f"{name}_hi": 1.04 * value}
    return row


def fits(distinguishable: bool = True) -> pd.DataFrame:
    rival = 5.1 if distinguishable else 1.2
    rows = [
        fit_row("exponential", 8.3, bw_max=14 * GB, k=0.2),
        fit_row("floor", 0.0, True, distinguishable, **FLOOR),
        fit_row("fair_share", rival, bw_max=15 * GB, beta=BETA),
    ]
    failed = fit_row("fair_share", math.nan) | {"victim": "B", "note": "no start converged"}
    return pd.DataFrame([*rows, failed], columns=CONTENTION_FIT_COLUMNS)


def answers(slowdown: str = "effect") -> Estimates:
    """block_answers' answers; ``slowdown`` "equivalent" turns A's effect into no effect."""
    table = block_answers(3)
    if slowdown == "equivalent":
        table.loc[table["answer"] == "slowdown_throughput", "verdict_kind"] = "equivalent"
    return Estimates(prepare_answers(table))


def sentence(runs, cal=None, est=None) -> dict:
    runs = prepare_roofline(prepare_runs(runs))
    cal = prepare_calibration(calibration() if cal is None else cal)
    return wall_sentence(KEY, runs, cal, answers() if est is None else est)


# ---------------------------------------------------------------------------------------------
# The sentence rules


def test_pair_at_the_ceiling_names_memory_bandwidth_as_the_wall():
    # Each co-located slot at 10 GB/s: the pair's 20 GB/s is 83% of the 24 GB/s ceiling.
    s = sentence(wall_runs(co_bw=10 * GB))
    assert WALL_FRACTION <= 20 / 24
    assert unescape(s["text"]) == (
        "short/bf16: bandwidth-bound, 75% of measured peak bandwidth (MBU); co-location adds "
        "+67% (+57…+76%) total throughput; the pair reaches 83% of the contended copy "
        "bandwidth: memory bandwidth is the wall."
    )
    assert not s["missing"]


def test_interference_below_the_ceiling_is_not_bandwidth_alone():
    s = sentence(wall_runs(co_bw=5 * GB))  # pair at 10 / 24 = 42%; A's slowdown is an effect
    assert (
        "interference well below the bandwidth ceiling (pair at 42%): not bandwidth alone"
        in (s["text"])
    )
    assert "A throughput slowdown 1.12× (95% CI 1.08–1.16)" in s["text"]
    assert "memory bandwidth is the wall" not in s["text"]
    just_below = sentence(wall_runs(co_bw=0.99 * WALL_FRACTION * CONTENDED_TOTAL / 2))
    assert "(pair at 79%): not bandwidth alone" in just_below["text"]


def test_no_interference_below_the_ceiling_leaves_room():
    s = sentence(wall_runs(co_bw=5 * GB), est=answers("equivalent"))
    assert s["text"].endswith("the pair uses 42% of the contended bandwidth: room left.")
    assert not s["missing"]


def test_the_verdicts_name_the_limit_the_sentence_gives():
    def limit(co_bw, est=None, cal=None):
        runs = prepare_roofline(prepare_runs(wall_runs(co_bw=co_bw)))
        cal = prepare_calibration(calibration() if cal is None else cal)
        return wall_brief(KEY, runs, cal, answers() if est is None else est)

    at_ceiling = limit(10 * GB)
    assert at_ceiling["limit"] == "memory bandwidth"
    assert at_ceiling["reason"].endswith("memory bandwidth is the wall")
    assert at_ceiling["regime"] == "bandwidth-bound, 75% of measured peak bandwidth (MBU)"
    assert limit(5 * GB)["limit"] == "a shared resource besides bandwidth"
    assert limit(5 * GB, est=answers("equivalent"))["limit"] == (
        "bandwidth-bound, bandwidth to spare"
    )
    assert limit(10 * GB, cal=pd.DataFrame())["limit"] == "unknown"


def test_a_missing_calibration_is_said():
    s = sentence(wall_runs(co_bw=10 * GB), cal=pd.DataFrame())
    assert "no calibration.csv: the pair's 20.0 GB/s has no ceiling to compare with" in s["text"]
    assert s["missing"] and "the wall" not in s["text"]
    other = sentence(wall_runs(co_bw=10 * GB), cal=calibration("float32"))
    assert "no contended total for bfloat16 in calibration.csv" in other["text"]


def test_missing_roofline_growth_and_pair_are_said_not_raised():
    s = sentence(plain_block_runs(3), est=Estimates(prepare_answers(None)))
    assert s["missing"]
    assert "regime unknown (no valid alone run with a roofline regime in runs.csv)" in s["text"]
    # The answer's name is growth_per_model since any number of models (was "growth").
    assert "co-location effect unknown (no growth_per_model answer in answers.csv)" in s["text"]
    assert "no valid co-located run with a decode bandwidth" in s["text"]


def test_regime_is_the_most_common_with_the_utilisation_of_its_phase():
    runs = wall_runs(co_bw=10 * GB)
    alone = runs["layout"] != "colocated"
    # Two of six alone runs compute-bound by their prefill (MFU 80%): the mode still wins.
    which = runs.index[alone][:2]
    runs.loc[which, ["regime", "prefill_regime", "mfu"]] = ["compute-bound", "compute-bound", 0.8]
    runs.loc[which, "regime_phase"] = "prefill"
    found = alone_regime(prepare_roofline(prepare_runs(runs)), KEY)
    assert (found["regime"], found["mbu"], found["n"]) == ("bandwidth-bound", 0.75, 4)
    runs.loc[runs.index[alone], ["regime", "prefill_regime", "mfu"]] = [
        "compute-bound", "compute-bound", 0.8]  # fmt: skip
    runs.loc[alone, "regime_phase"] = "prefill"
    s = sentence(runs)
    assert s["text"].startswith("short/bf16: compute-bound, 80% of measured peak FLOP/s (MFU);")


# Below both roofs: alone each slot reads 8 GB/s (MBU 40%), co-located 5 GB/s (25%).
BELOW_ROOF_NOTE = (
    "This scenario's models are below the bandwidth roof (MBU 25–40%), so a flat contention "
    "curve here does not mean “no contention” on a bandwidth-bound model."
)


def below_roof_runs(prefill: bool = False) -> pd.DataFrame:
    """wall_runs below both roofs; ``prefill``: the alone runs a long prefill at 26% MFU and
    2% MBU that outlasts their decode."""
    runs = wall_runs(co_bw=5 * GB, alone_bw=8 * GB, regime="below-roofs")
    if prefill:
        alone = runs["layout"] != "colocated"
        runs.loc[alone, ["regime_phase", "mfu", "prefill_mbu"]] = ["prefill", 0.26, 0.02]
    return runs


def test_a_long_prefill_below_both_roofs_reads_so_with_its_figures():
    s = sentence(below_roof_runs(prefill=True), est=answers("equivalent"))
    assert s["text"].startswith(
        "short/bf16: below both roofs (26% of compute, 2.0% of bandwidth); co-location adds"
    )
    assert "overhead" not in s["text"]
    runs = prepare_roofline(prepare_runs(below_roof_runs(prefill=True)))
    brief = wall_brief(KEY, runs, prepare_calibration(calibration()), answers("equivalent"))
    assert brief["limit"] == "below both roofs, bandwidth to spare"
    assert brief["regime"] == "below both roofs (26% of compute, 2.0% of bandwidth)"


def test_below_both_roofs_names_the_nearer_roof_first():
    # Decode sets the regime: MBU 40%, MFU 2 × 8 GB/s / 1.5 TFLOP/s = 1.1%.
    s = sentence(below_roof_runs(), est=answers("equivalent"))
    assert "short/bf16: below both roofs (40% of bandwidth, 1.1% of compute);" in s["text"]


def test_below_the_bandwidth_roof_a_flat_curve_is_said_to_prove_nothing():
    s = sentence(below_roof_runs(), est=answers("equivalent"))
    assert s["text"].endswith(f"room left. {BELOW_ROOF_NOTE}")
    # One measured slot bandwidth-bound in either phase: the line is left out.
    runs = below_roof_runs()
    one = runs.index[runs["layout"] == "colocated"][0]
    runs.loc[one, "decode_regime"] = "bandwidth-bound"
    prepared = prepare_roofline(prepare_runs(runs))
    assert below_roof_note(prepared, KEY) == ""
    assert BELOW_ROOF_NOTE not in sentence(runs)["text"]
    # ... unless that run is invalid: only measured (valid) slots count.
    runs.loc[one, "valid"] = False
    assert below_roof_note(prepare_roofline(prepare_runs(runs)), KEY) == BELOW_ROOF_NOTE
    # Bandwidth-bound models (the other tests' runs): no line.
    assert below_roof_note(prepare_roofline(prepare_runs(wall_runs(co_bw=10 * GB))), KEY) == ""
    assert below_roof_note(prepare_roofline(prepare_runs(plain_block_runs(3))), KEY) == ""


def test_older_metrics_overhead_bound_reads_as_below_both_roofs():
    runs = below_roof_runs()
    runs[["regime", "decode_regime", "prefill_regime"]] = "overhead-bound"
    s = sentence(runs, est=answers("equivalent"))
    assert "short/bf16: below both roofs (40% of bandwidth, 1.1% of compute);" in s["text"]
    assert s["text"].endswith(BELOW_ROOF_NOTE) and "overhead" not in s["text"]


def test_pair_bandwidth_sums_the_slots_per_block_and_skips_invalid_blocks():
    runs = wall_runs(co_bw=10 * GB)
    two = (runs["repeat"] == 2) & (runs["layout"] == "colocated")
    runs.loc[two, "throughput_tok_s"] = 40 * runs.loc[two, "batch_size"]  # 40 GB/s of traffic
    runs.loc[(runs["repeat"] == 3) & (runs["slot"] == "B"), "valid"] = False
    bw, n = pair_bandwidth(prepare_roofline(prepare_runs(runs)), KEY)
    assert (bw, n) == (50 * GB, 2)  # median of 20 and 80 GB/s; block 3 left out


# ---------------------------------------------------------------------------------------------
# Tables and figures


def test_fit_table_marks_the_preferred_model():
    table = fit_table(prepare_contention_fits(fits()), ("short", "bf16", "A"))
    models = [r["model"] for r in table["rows"]]
    assert models == ["floor", "fair_share", "exponential"]  # best AICc first
    floor = table["rows"][0]
    assert floor["marker"] == "★ preferred" and floor["preferred"]
    assert floor["params"] == ["15.0 (14.4–15.6)", "0.500 (0.480–0.520)", "6.00 (5.76–6.24)", "–"]
    assert floor["rms"] == "0.7%"  # RMS 1e8 over BW_max 15e9
    assert table["headers"] == ["BW_max (GB/s)", "k (per req/s)", "BW_inf (GB/s)",
                                "β (GB/s per req/s)"]  # fmt: skip
    assert table["rows"][1]["params"][3] == "2.00 (1.92–2.08)"  # beta in GB/s per req/s
    assert "distinguishable" in table["title"] and "floor preferred" in table["title"]
    leads = fit_table(prepare_contention_fits(fits(False)), ("short", "bf16", "A"))
    assert leads["rows"][0]["marker"] == "leads (not distinguishable)"
    assert "only leads" in leads["title"]
    failed = fit_table(prepare_contention_fits(fits()), ("short", "bf16", "B"))
    assert failed["rows"][0]["marker"] == "did not converge"
    assert failed["rows"][0]["note"] == "no start converged"


def test_model_curves_follow_the_formulas():
    r = np.array([0.0, 2.0, 10.0])
    exp = model_curve("exponential", {"bw_max": 10.0, "k": 0.5}, r)
    assert exp == pytest.approx(10 * np.exp(-0.5 * r))
    floor = model_curve("floor", {"bw_max": 10.0, "bw_inf": 4.0, "k": 0.5}, r)
    assert floor == pytest.approx(4 + 6 * np.exp(-0.5 * r))
    fair = model_curve("fair_share", {"bw_max": 10.0, "beta": 2.0}, r, ceiling=14.0)
    assert fair == pytest.approx([10.0, 10.0, 10 * 14 / 30])  # knee at rate 2
    assert model_curve("fair_share", {"bw_max": 10.0, "beta": 2.0}, r) is None  # no C
    assert model_curve("other", {}, r) is None


def test_curve_figure_draws_points_intervals_and_fits():
    points = prepare_contention(contention())
    fig = curve_figure(("short", "bf16", "A"), prepare_contention_curve(curve(contention())),
                       points, prepare_contention_fits(fits()))  # fmt: skip
    bw_ax, tpot_ax = fig.axes[:2]
    lines = {ln.get_label(): ln for ln in bw_ax.get_lines()}
    assert lines["floor (ΔAICc 0.0)"].get_linewidth() > lines["exponential (ΔAICc 8.3)"].get_lw()
    assert lines["floor (ΔAICc 0.0)"].get_linestyle() == "-"
    assert lines["fair_share (ΔAICc 5.1)"].get_linestyle() == "--"
    for ax in (bw_ax, tpot_ax):
        assert [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(ax.collections[0].get_offsets()) == 18  # 3 blocks × 6 fractions, faint
    assert "floor preferred" in fig._suptitle.get_text()
    assert bw_ax.get_xlabel() == "neighbour offered rate (req/s)"


def test_pair_figure_draws_both_ceilings():
    fig = pair_figure([("short", "bf16", "A")], prepare_contention_curve(curve(contention())),
                      prepare_contention(contention()),
                      {("short", "bf16", "A"): (CONTENDED_TOTAL, PEAK_BW)})  # fmt: skip
    flat = [ln for ln in fig.axes[0].get_lines() if len(set(ln.get_ydata())) == 1]
    assert {(ln.get_ydata()[0], ln.get_linestyle()) for ln in flat} >= {(24.0, "-"), (20.0, ":")}
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "contended total ceiling 24.0" in texts and "one slot alone 20.0" in texts


def test_roofline_figure_points_and_readable_fonts():
    runs = prepare_roofline(prepare_runs(wall_runs(co_bw=10 * GB)))
    assert len(roofline_points(runs)) == 24  # 12 run slots × decode and prefill
    fig = roofline_figure(runs, [("bfloat16", PEAK_FLOP, PEAK_BW, CONTENDED_SLOT)])
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    assert len(ax.collections) == 24
    assert [ln.get_linestyle() for ln in ax.get_lines()] == ["-", "--"]
    fig.canvas.draw()
    labels = [*ax.get_xticklabels(), *ax.get_yticklabels()]
    assert labels and min(t.get_fontsize() for t in labels) >= 10
    assert min(ax.xaxis.label.get_fontsize(), ax.yaxis.label.get_fontsize()) >= 10
    assert roofline_figure(prepare_roofline(prepare_runs(plain_block_runs(1))), []).startswith(
        "No valid run"
    )


def test_runs_csv_ceilings_leave_out_a_single_thread_runs_union():
    runs = prepare_roofline(prepare_runs(wall_runs(co_bw=10 * GB)))
    co = runs["layout"] == "colocated"
    runs.loc[co, "layout"] = "single_thread_streams"
    runs.loc[co, ["peak_bw_bytes_s", "peak_flop_s"]] = [CONTENDED_TOTAL, 2 * PEAK_FLOP]
    ((_, flop, alone, contended),) = roofline_ceilings(runs, pd.DataFrame())
    assert (flop, alone) == (PEAK_FLOP, PEAK_BW) and math.isnan(contended)


def test_calibration_rows_in_their_units():
    (a, _) = calibration_rows(prepare_calibration(calibration()))
    assert (a["alone"], a["contended"], a["total"]) == ("20.0 ± 2.0%", "12.0", "24.0 (2 slots)")
    assert a["matmul"] == "1.50 TFLOP/s ± 3.0%" and a["buffers"] == "copy 256.0 MiB, LLC 32.0 MiB"
    assert fmt_flops(2.5e11) == "250 GFLOP/s" and fmt_sig(0.012345) == "0.0123"
    assert residual_rms("3 -4", 10.0) == pytest.approx(math.sqrt(12.5) / 10)
    assert math.isnan(residual_rms("", 10.0))


# ---------------------------------------------------------------------------------------------
# The section in the report


def write_wall_metrics(path: Path) -> Path:
    write_metrics(path, 3)
    wall_runs(co_bw=10 * GB).to_csv(path / METRICS_FILES["runs"], index=False)
    calibration().to_csv(path / METRICS_FILES["calibration"], index=False)
    points = contention()
    points.to_csv(path / METRICS_FILES["contention"], index=False)
    curve(points).to_csv(path / METRICS_FILES["contention_curve"], index=False)
    fits().to_csv(path / METRICS_FILES["contention_fits"], index=False)
    return path


@pytest.fixture(scope="module")
def wall_html(tmp_path_factory) -> str:
    metrics = write_wall_metrics(tmp_path_factory.mktemp("wall") / "metrics")
    out = metrics.parent / "report.html"
    write_report(metrics, out, "wall", DESCRIPTIONS, DEFINITIONS)
    return out.read_text(encoding="utf-8")


def test_section_sits_between_the_figures_and_the_details(wall_html):
    order = [wall_html.index(f'<section id="{s}"') for s in ("figures", "wall", "details")]
    assert order == sorted(order)
    assert '<a href="#wall">Where is the wall</a>' in wall_html


def test_section_has_its_sentences_figures_and_fit_tables(wall_html):
    wall = unescape(section(wall_html, "wall"))
    assert "the pair reaches 83% of the contended copy bandwidth: memory bandwidth is the wall" in (
        wall
    )
    words = " ".join(wall.split())
    assert "How to read a sentence" in words and "at 80% or more" in words
    # One curve figure per sweep (A's; B has only a failed fit), the pair figure, the roofline.
    assert wall.count('src="data:image/png;base64,') == 3
    assert "No curve points for this sweep" in wall  # sweep B: a fit row and nothing else
    headings = re.findall(r"<h3>([^<]*)</h3>", wall)
    assert headings[0].startswith("short/bf16, victim A: floor preferred")
    assert "Pair bandwidth against the neighbour's rate" in headings and "Roofline" in headings
    assert '<tr class="preferred"><td class="key">floor</td>' in wall
    assert "★ preferred" in wall and "could not be drawn" not in wall_html
    # + the Figures section's, and the verdict's of the one scenario
    assert wall_html.count('src="data:image/png;base64,') == FIGURES + 3 + 1


def test_calibration_table_in_the_environment_section(wall_html):
    env = unescape(section(wall_html, "environment"))
    assert "Calibration" in env and "copy traffic, read + write" in env
    assert "20.0 ± 2.0%" in env and "24.0 (2 slots)" in env and "1.50 TFLOP/s ± 3.0%" in env


def test_older_metrics_render_without_the_section(tmp_path):
    # The golden metrics as written before the roofline and the contention tables existed.
    older = tmp_path / "older"
    shutil.copytree(GOLDEN_METRICS, older)
    for name in ("calibration", "contention", "contention_curve", "contention_fits"):
        (older / METRICS_FILES[name]).unlink()
    runs = pd.read_csv(older / METRICS_FILES["runs"])
    runs.drop(columns=ROOFLINE_COLUMNS).to_csv(older / METRICS_FILES["runs"], index=False)
    out = tmp_path / "golden.html"
    write_report(older, out, "golden", {}, DEFINITIONS)
    html = out.read_text(encoding="utf-8")
    assert 'id="wall"' not in html and 'id="calibration"' not in html
    assert 'href="#wall"' not in html and "could not be drawn" not in html
    assert 'id="headline"' in html and 'id="details"' in html


def test_roofline_alone_shows_the_section_without_contention(tmp_path):
    metrics = write_metrics(tmp_path / "metrics", 3)
    wall_runs(co_bw=10 * GB).to_csv(metrics / METRICS_FILES["runs"], index=False)
    out = tmp_path / "report.html"
    write_report(metrics, out, "roofline only", DESCRIPTIONS, DEFINITIONS)
    wall = unescape(section(out.read_text(encoding="utf-8"), "wall"))
    assert wall.count('src="data:image/png;base64,') == 1  # the roofline only
    assert "no calibration.csv" in wall and "Pair bandwidth" not in wall


def test_the_section_says_when_the_models_are_below_the_bandwidth_roof(tmp_path):
    metrics = write_metrics(tmp_path / "metrics", 3)
    below_roof_runs().to_csv(metrics / METRICS_FILES["runs"], index=False)
    calibration().to_csv(metrics / METRICS_FILES["calibration"], index=False)
    out = tmp_path / "report.html"
    write_report(metrics, out, "below the roof", DESCRIPTIONS, DEFINITIONS)
    html = unescape(out.read_text(encoding="utf-8"))
    assert BELOW_ROOF_NOTE in section(html, "wall")
    assert "below both roofs (40% of bandwidth, 1.1% of compute)" in html
