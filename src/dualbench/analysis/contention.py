"""The contention sweep's tables: contention.csv (one row per point of each block), its curve
over blocks (contention_curve.csv) and the fits of the victim's bandwidth against the
neighbour's offered rate (contention_fits.csv, dualbench.analysis.contention_fit).

Bandwidths (bytes/s), per point:
- the victim's, ``victim_bw_bytes_s``: bytes a decode step reads / its mean TPOT (the runs.csv
  roofline's ``decode_bw_bytes_s``): the curve the fits describe;
- a slot's traffic over the window: forward passes per second (output tokens per second /
  batch: each pass yields one token per sequence, prefill's pass the first) x bytes a decode
  step reads. ``neighbour_bw_bytes_s`` is the neighbour's; ``pair_bw_bytes_s`` the victim's
  plus the neighbour's: what the two draw from memory together, to hold against the
  calibrated contended ceiling ``ceiling_bytes_s``.

The rate axis is the neighbour's offered rate (fraction x its solo capacity, set before the
run), not its achieved one: at saturation the achieved rate stops rising while the offered one
goes on, and an x measured with noise would bias a least-squares fit. Both are in the table.
"""

from __future__ import annotations

import math

import pandas as pd

from dualbench.analysis.calibration import Peaks, as_number
from dualbench.analysis.columns import (
    CONTENTION_COLUMNS,
    CONTENTION_CURVE_COLUMNS,
    CONTENTION_FIT_COLUMNS,
    FIT_PARAMS,
)
from dualbench.analysis.contention_fit import MODELS, compare, distinguishable, preferred
from dualbench.analysis.intervals import value_interval
from dualbench.analysis.metrics import co_window, slot_metrics, validity

SWEEP_KEYS = ["scenario", "precision", "victim", "neighbour"]
CURVE_METRICS = (
    "victim_tpot_ms",
    "victim_bw_bytes_s",
    "neighbour_bw_bytes_s",
    "pair_bw_bytes_s",
    "neighbour_rps",
)
# Bootstrap refits per contention fit: enough for a 95% percentile interval's tails, and a
# fit of ~20 points with 200 refits takes ~20 ms (dualbench.analysis.contention_fit).
N_BOOT = 200


def solo_capacity(record: dict, slot: str) -> tuple[float | None, str]:
    """A slot's solo capacity in requests/s: its request rate in its alone run ``record``;
    (None, why) when that run failed or is invalid."""
    if record.get("status") != "ok":
        return None, f"its alone run ended {record.get('status')}: {record.get('error', '')}"
    results = {name: s["result"] for name, s in record["slots"].items()}
    if slot not in results or not results[slot]:
        return None, f"its alone run has no result for slot {slot}"
    window = co_window(results)
    reasons = validity(record, window)
    if reasons:
        return None, f"its alone run is invalid: {'; '.join(reasons)}"
    rate = slot_metrics(results[slot], record["slots"][slot]["settings"], window)[
        "request_rate_rps"
    ]
    if not (rate > 0 and math.isfinite(rate)):
        return None, f"its alone run finished no request in its window (rate {rate})"
    return float(rate), ""


def traffic_bytes_s(row: dict) -> float:
    """A slot's mean memory traffic over the window (see the module docstring)."""
    passes_per_s = as_number(row.get("throughput_tok_s")) / as_number(row.get("batch_size"))
    return passes_per_s * as_number(row.get("decode_bytes_per_step"))


def contention_row(record: dict, run_rows: list[dict], peaks: Peaks) -> dict:
    """contention.csv's row of one sweep point: ``record`` and its runs.csv rows (with the
    roofline columns); ``peaks``: the victim slot's calibration in the run's dtype."""
    spec = record["spec"]
    sweep = spec["sweep"]
    by_slot = {r["slot"]: r for r in run_rows}
    victim = by_slot.get(sweep["victim"], {})
    neighbour = by_slot.get(sweep["neighbour"], {})
    row = dict.fromkeys(CONTENTION_COLUMNS, math.nan)
    row.update(
        scenario=spec["scenario"],
        precision=spec["precision"],
        repeat=spec.get("repeat", 1),
        position=spec.get("position"),
        victim=sweep["victim"],
        neighbour=sweep["neighbour"],
        fraction=sweep["fraction"],
        offered_rps=sweep.get("offered_rps", math.nan),
        capacity_rps=sweep.get("capacity_rps", math.nan),
        ceiling_bytes_s=peaks.contended_total_bytes_s,
        note="",
    )
    if not victim:
        row.update(valid=False, invalid_reasons=record.get("error", "") or "no result")
        return row
    victim_traffic = traffic_bytes_s(victim)
    neighbour_traffic = traffic_bytes_s(neighbour) if neighbour else 0.0
    row.update(
        victim_tpot_ms=victim.get("tpot_ms_mean"),
        victim_throughput_tok_s=victim.get("throughput_tok_s"),
        victim_bw_bytes_s=victim.get("decode_bw_bytes_s"),
        neighbour_rps=neighbour.get("request_rate_rps", math.nan) if neighbour else math.nan,
        backlog=neighbour.get("backlog", math.nan) if neighbour else math.nan,
        neighbour_bw_bytes_s=neighbour_traffic if neighbour else math.nan,
        pair_bw_bytes_s=victim_traffic + neighbour_traffic,
        valid=bool(victim.get("valid")),
        invalid_reasons=victim.get("invalid_reasons", ""),
        note=neighbour.get("warnings", "") if neighbour else "",
    )
    return row


def contention_table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=CONTENTION_COLUMNS)
    return frame.sort_values([*SWEEP_KEYS, "fraction", "repeat"], kind="stable")


def curve_table(contention: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Each point's metrics over the blocks' valid rows: geometric mean and interval
    (intervals.value_interval); the offered rate is the blocks' mean (the capacity, and with
    it the rate, is measured per block)."""
    rows = []
    valid = contention[contention["valid"].astype(bool)]
    for key, group in valid.groupby([*SWEEP_KEYS, "fraction"], sort=True):
        ident = dict(zip([*SWEEP_KEYS, "fraction"], key, strict=True))
        offered = float(pd.to_numeric(group["offered_rps"], errors="coerce").mean())
        for metric in CURVE_METRICS:
            values = pd.to_numeric(group[metric], errors="coerce").dropna()
            if values.empty:
                continue
            interval = value_interval(values.tolist(), confidence)
            rows.append(
                {
                    **ident,
                    "offered_rps": offered,
                    "metric": metric,
                    "estimate": interval.estimate,
                    "lo": interval.lo,
                    "hi": interval.hi,
                    "n": interval.n,
                    "confidence": confidence,
                    "method": interval.method,
                }
            )
    return pd.DataFrame(rows, columns=CONTENTION_CURVE_COLUMNS)


def fits_table(contention: pd.DataFrame, confidence: float, seed: int = 0) -> pd.DataFrame:
    """The three models fitted to each sweep's valid (offered_rps, victim_bw_bytes_s) points,
    every block's point a point of its own (contention_fit.compare); fair_share's C is the
    victim slot's calibrated contended total, and it is left out without one."""
    rows = []
    valid = contention[contention["valid"].astype(bool)]
    for key, group in valid.groupby(SWEEP_KEYS, sort=True):
        ident = dict(zip(SWEEP_KEYS, key, strict=True))
        rates = pd.to_numeric(group["offered_rps"], errors="coerce").to_numpy()
        bandwidths = pd.to_numeric(group["victim_bw_bytes_s"], errors="coerce").to_numpy()
        ceiling = pd.to_numeric(group["ceiling_bytes_s"], errors="coerce").median()
        ceiling = float(ceiling) if math.isfinite(ceiling) and ceiling > 0 else None
        fits = compare(rates, bandwidths, ceiling, n_boot=N_BOOT, seed=seed, confidence=confidence)
        best, wins = preferred(fits), distinguishable(fits)
        for fit in fits:
            row = {**ident, "model": fit.model, "formula": MODELS[fit.model]}
            for name in FIT_PARAMS:
                lo, hi = fit.intervals.get(name, (math.nan, math.nan))
                row.update({name: fit.params.get(name, math.nan), f"{name}_lo": lo})
                row[f"{name}_hi"] = hi
            row.update(
                ceiling_bytes_s=ceiling if ceiling is not None else math.nan,
                aicc=fit.aic,
                delta_aicc=fit.delta_aic,
                n=fit.n,
                rss=fit.rss,
                residuals=" ".join(f"{r:.6g}" for r in fit.residuals),
                converged=fit.converged,
                preferred=best is not None and fit.model == best.model,
                distinguishable=best is not None and fit.model == best.model and wins,
                confidence=confidence,
                note=fit.note,
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=CONTENTION_FIT_COLUMNS)
