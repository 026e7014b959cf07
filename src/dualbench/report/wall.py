"""The report's "Where is the wall" section and its calibration table, from runs.csv's roofline
columns, calibration.csv, contention.csv, contention_curve.csv, contention_fits.csv and
answers.csv (dualbench.analysis). It arranges and formats; every number comes from the tables.

One sentence per scenario × precision names the resource that limits it (``wall_sentence``):

- the regime: the most common ``regime`` of the valid alone runs, with the median of their
  utilisation (dualbench.report.wall_regime: MBU for bandwidth-bound, MFU for compute-bound,
  both for below both roofs, the nearer roof first);
- the co-location effect: answers.csv's "growth_per_model" of subject "colocated" (every model
  co-located), with its interval where it has one (two blocks or more);
- the reason, from the pair's memory traffic (with more than two models, the group's): per
  block, the sum over the slots of the
  co-located run (every slot valid) of analysis.contention.traffic_bytes_s (forward passes per
  second x bytes per decode step, contention.csv's measure), median over the blocks, as a share
  of the calibrated contended total ceiling (calibration.csv's ``copy_contended_total_bytes_s``
  for the precision's dtype; runs.csv's ``peak_bw_bytes_s`` is one slot's alone peak, not it):
  - share ≥ ``WALL_FRACTION`` → "the pair reaches N% of the contended copy bandwidth: memory
    bandwidth is the wall";
  - else, if a slowdown answer (``SLOWDOWN_ANSWERS``, subject "colocated/<slot>", any slot)
    has verdict kind "effect" and
    an estimate above 1 → "interference well below the bandwidth ceiling (pair at N%): not
    bandwidth alone", followed by that evidence;
  - else → "the pair uses N% of the contended bandwidth: room left" (where no slowdown was
    judged, e.g. one block, the sentence says so).

  A missing input (no roofline columns, no growth answer, no valid co-located run, no
  calibration for the dtype) makes the sentence say what is missing instead;
- where no measured slot of the scenario × precision is bandwidth-bound, a last line says its
  models are below the bandwidth roof, with their MBU range (wall_regime.below_roof_note): a
  flat contention curve there is no evidence about a bandwidth-bound model.

Bandwidths read in GB/s = ``GB`` bytes/s; calibration's copy bandwidth counts read + write
traffic (a copy of S bytes moves 2S).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dualbench.analysis.columns import FIT_PARAMS
from dualbench.analysis.contention import traffic_bytes_s
from dualbench.analysis.contention_fit import DISTINGUISHABLE, MODELS
from dualbench.config.vocabulary import COLOCATED, PRECISION_DTYPES
from dualbench.report.estimates import Estimates
from dualbench.report.figures import embedded_figure, figure_style, slot_colors
from dualbench.report.format import DASH, fmt_fixed, fmt_int, fmt_mib, fmt_pct, number, text_or
from dualbench.report.layouts import members, slot_names
from dualbench.report.wall_figures import (
    GB,
    Sweep,
    curve_figure,
    fit_title,
    fmt_flops,
    fmt_gbs,
    fmt_sig,
    has_roofline,
    median,
    pair_figure,
    roofline_ceilings,
    roofline_figure,
    sweeps,
)
from dualbench.report.wall_regime import alone_regime, below_roof_note, key_rows, regime_text

Key = tuple[str, str]
# The pair at or above this share of the contended total copy bandwidth: bandwidth is the wall.
WALL_FRACTION = 0.8
# Interference answers that can show an effect of co-location, with how a sentence names them.
SLOWDOWN_ANSWERS = {"slowdown_throughput": "throughput slowdown", "slowdown_tpot_p50": "TPOT p50"}
# The fit table's parameter columns: header, and the divisor that puts a value in its unit.
PARAM_UNITS = {
    "bw_max": ("BW_max (GB/s)", GB),
    "k": ("k (per req/s)", 1.0),
    "bw_inf": ("BW_inf (GB/s)", GB),
    "beta": ("β (GB/s per req/s)", GB),
}


def _spread(text: str, spread: Any) -> str:
    return f"{text} ± {fmt_pct(spread)}" if text != DASH and math.isfinite(number(spread)) else text


# ---------------------------------------------------------------------------------------------
# Calibration


def calibration_for(calibration: pd.DataFrame, precision: str) -> pd.DataFrame:
    """The calibration rows (one per slot) of the dtype ``precision`` computes in
    (vocabulary.PRECISION_DTYPES, as dualbench.analysis.calibration.run_peaks reads them)."""
    return calibration[calibration["dtype"] == PRECISION_DTYPES.get(precision, precision)]


def contended_total(calibration: pd.DataFrame, precision: str) -> float:
    """The contended total copy bandwidth (bytes/s) for ``precision``'s dtype: every slot's
    row carries the same total, so the median of them; NaN where uncalibrated."""
    return median(calibration_for(calibration, precision)["copy_contended_total_bytes_s"])


def alone_peak(calibration: pd.DataFrame, precision: str, slot: str) -> float:
    """One slot's alone copy bandwidth (bytes/s) for ``precision``'s dtype, NaN if none."""
    rows = calibration_for(calibration, precision)
    return median(rows[rows["slot"] == slot]["copy_alone_bytes_s"])


def calibration_rows(calibration: pd.DataFrame) -> list[dict[str, str]]:
    """The Environment section's calibration table, one row per slot × dtype."""
    rows = []
    for r in calibration.to_dict("records"):
        slots = number(r["contended_slots"])
        total = fmt_gbs(r["copy_contended_total_bytes_s"])
        buffers = [f"copy {fmt_mib(r['copy_bytes'])} MiB", f"LLC {fmt_mib(r['llc_bytes'])} MiB"]
        rows.append(
            {
                "slot": r["slot"],
                "device": text_or(r["device"]),
                "backend": text_or(r["backend"]),
                "dtype": text_or(r["dtype"]),
                "alone": _spread(fmt_gbs(r["copy_alone_bytes_s"]), r["copy_alone_spread"]),
                "contended": fmt_gbs(r["copy_contended_bytes_s"]),
                "total": f"{total} ({fmt_int(slots)} slots)" if math.isfinite(slots) else total,
                "matmul": _spread(fmt_flops(r["matmul_flop_s"]), r["matmul_spread"]),
                "matmul_n": fmt_int(r["matmul_n"]),
                "buffers": ", ".join(b for b in buffers if DASH not in b) or DASH,
                "repeats": fmt_int(r["repeats"]),
                "note": text_or(r["note"], ""),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# The sentences


def pair_bandwidth(runs: pd.DataFrame, key: Key) -> tuple[float, int]:
    """(median over blocks of the co-located run's memory traffic summed over its slots,
    blocks); a slot's traffic is analysis.contention.traffic_bytes_s (forward passes per
    second x bytes per decode step), the same figure as contention.csv's pair bandwidth. A
    block counts only with every model of the data valid in it and its traffic finite."""
    k = len(members(COLOCATED, slot_names(runs)))
    co = key_rows(runs, key)
    co = co[co["layout"] == COLOCATED]
    sums = []
    for _, block in co.groupby("repeat"):
        traffic = [traffic_bytes_s(row) for row in block.to_dict("records")]
        if len(traffic) == k and all(math.isfinite(t) for t in traffic):
            sums.append(float(sum(traffic)))
    return median(sums), len(sums)


def interference(est: Estimates, key: Key) -> tuple[list[str], bool]:
    """(evidence of interference, whether any slowdown was judged at all): each slowdown
    answer of a model co-located with every other (subject "colocated/<slot>") whose verdict
    is an effect with an estimate above 1 (a slowdown, not a speed-up)."""
    evidence, judged = [], False
    for answer, name in SLOWDOWN_ANSWERS.items():
        subjects = [s for s in est.subjects(key, answer) if s.startswith(f"{COLOCATED}/")]
        for subject in sorted(subjects):
            row = est.get(key, answer, subject)
            slot = subject.partition("/")[2]
            judged |= row["verdict_kind"] in ("effect", "equivalent", "inconclusive")
            if row["verdict_kind"] == "effect" and number(row["estimate"]) > 1:
                evidence.append(f"{slot} {name} {row['verdict']}")
    return evidence, judged


def _effect_text(est: Estimates, key: Key, k: int) -> str:
    growth = est.interval(key, "growth_per_model", COLOCATED)[0]
    if est.n(key, "growth_per_model", COLOCATED) <= 0 or not math.isfinite(growth):
        return "co-location effect unknown (no growth_per_model answer in answers.csv)"
    each = " per added model" if k > 2 else ""
    if growth >= 0:
        added = est.figure(key, "growth_per_model", COLOCATED, "growth")
        return f"co-location adds {added} total throughput{each}"
    fall = est.figure(key, "growth_per_model", COLOCATED, "pct", negated=True)
    return f"co-location lowers total throughput by {fall}{each}"


def wall_reason(
    runs: pd.DataFrame, calibration: pd.DataFrame, est: Estimates, key: Key, k: int
) -> tuple[str, str]:
    """(the reason, its kind: "wall" (bandwidth is the wall), "other" (interference below
    the ceiling), "room" (bandwidth to spare), or "" where an input is missing); ``k``: how
    many models co-located."""
    pair, _ = pair_bandwidth(runs, key)
    who = "the pair" if k == 2 else "the group"
    if not math.isfinite(pair):
        return "no valid co-located run with a decode bandwidth to compare with the ceiling", ""
    ceiling = contended_total(calibration, key[1])
    if not (math.isfinite(ceiling) and ceiling > 0):
        where = (
            "no calibration.csv"
            if calibration.empty
            else f"no contended total for {PRECISION_DTYPES.get(key[1], key[1])} in calibration.csv"
        )
        return f"{where}: {who}'s {fmt_gbs(pair)} GB/s has no ceiling to compare with", ""
    share = fmt_pct(pair / ceiling)
    if pair / ceiling >= WALL_FRACTION:
        wall = "memory bandwidth is the wall"
        return f"{who} reaches {share} of the contended copy bandwidth: {wall}", "wall"
    evidence, judged = interference(est, key)
    if evidence:
        below = f"interference well below the bandwidth ceiling ({who[4:]} at {share})"
        return f"{below}: not bandwidth alone — {'; '.join(evidence)}", "other"
    text = f"{who} uses {share} of the contended bandwidth: room left"
    return (text if judged else f"{text} (interference not judged: no slowdown verdict)"), "room"


def wall_sentence(
    key: Key, runs: pd.DataFrame, calibration: pd.DataFrame, est: Estimates
) -> dict[str, Any]:
    """``key``'s sentence (rules: the module docstring): {"text", "missing"}; ``missing``
    where some input was missing and the sentence says which."""
    k = len(members(COLOCATED, slot_names(runs)))
    found = alone_regime(runs, key)
    effect = _effect_text(est, key, k)
    reason, kind = wall_reason(runs, calibration, est, key, k)
    text = f"{'/'.join(key)}: {regime_text(found)}; {effect}; {reason}."
    if note := below_roof_note(runs, key):
        text += f" {note}"
    return {"text": text, "missing": not kind or found is None or "unknown" in effect}


# ---------------------------------------------------------------------------------------------
# The fits and the sweeps


def _interval(row: dict, param: str) -> str:
    _, scale = PARAM_UNITS[param]
    value, lo, hi = (number(row.get(f"{param}{side}")) / scale for side in ("", "_lo", "_hi"))
    text = fmt_sig(value)
    if text != DASH and math.isfinite(lo) and math.isfinite(hi):
        text += f" ({fmt_sig(lo)}–{fmt_sig(hi)})"
    return text


def residual_rms(residuals: Any, bw_max: Any) -> float:
    """The residuals' root mean square (``residuals``: space-separated bytes/s) over BW_max."""
    values = np.array([number(v) for v in str(residuals or "").split()], dtype=float)
    values = values[np.isfinite(values)]
    scale = number(bw_max)
    if not values.size or not (math.isfinite(scale) and scale > 0):
        return math.nan
    return float(np.sqrt(np.mean(values**2)) / scale)


def fit_table(fits: pd.DataFrame, sweep: Sweep) -> dict[str, Any]:
    """The sweep's fits, best AICc first: {"headers", "rows", "title"}; a row's ``marker``
    says "preferred" (distinguishable) or "leads" (within DISTINGUISHABLE of another)."""
    sel = fits[(fits["scenario"] == sweep[0]) & (fits["precision"] == sweep[1])]
    sel = sel[sel["victim"] == sweep[2]].sort_values("delta_aicc", na_position="last")
    rows = []
    for r in sel.to_dict("records"):
        marker = ""
        if r["preferred"]:
            marker = "★ preferred" if r["distinguishable"] else "leads (not distinguishable)"
        elif not r["converged"]:
            marker = "did not converge"
        rows.append(
            {
                "model": r["model"],
                "formula": r["formula"] or MODELS.get(r["model"], DASH),
                "params": [_interval(r, p) for p in FIT_PARAMS],
                "aicc": fmt_fixed(r["aicc"], 1),
                "delta": fmt_fixed(r["delta_aicc"], 2),
                "n": fmt_int(r["n"]),
                "marker": marker,
                "preferred": bool(r["preferred"]),
                "rms": fmt_pct(residual_rms(r["residuals"], r["bw_max"])),
                "note": text_or(r["note"], ""),
            }
        )
    return {"headers": [PARAM_UNITS[p][0] for p in FIT_PARAMS], "rows": rows,
            "title": fit_title(sel)}  # fmt: skip


def _ceilings(
    sweep: Sweep, runs: pd.DataFrame, calibration: pd.DataFrame, contention: pd.DataFrame
) -> tuple[float, float]:
    """(contended total, the victim slot alone) in bytes/s for the pair figure: contention.csv's
    own ceiling first (it is the calibrated contended total), then calibration.csv; the alone
    ceiling from calibration.csv, else the victim's alone runs' peak_bw_bytes_s."""
    rows = contention[(contention["scenario"] == sweep[0]) & (contention["precision"] == sweep[1])]
    total = median(rows[rows["victim"] == sweep[2]]["ceiling_bytes_s"])
    if not math.isfinite(total):
        total = contended_total(calibration, sweep[1])
    alone = alone_peak(calibration, sweep[1], sweep[2])
    if not math.isfinite(alone):
        own = key_rows(runs, sweep[:2])
        alone = median(own[own["slot"] == sweep[2]]["peak_bw_bytes_s"])
    return total, alone


def wall_section(
    runs: pd.DataFrame,
    keys: list[Key],
    calibration: pd.DataFrame,
    contention: pd.DataFrame,
    curve: pd.DataFrame,
    fits: pd.DataFrame,
    est: Estimates,
) -> dict[str, Any] | None:
    """The section's context, or None where there is neither contention nor roofline data.
    ``runs``: tables.prepare_roofline of prepare_runs; the others as tables.prepare_* return
    them (empty where the metrics lack the file)."""
    contended = not (contention.empty and curve.empty and fits.empty)
    if not (contended or has_roofline(runs)):
        return None
    found, conf, pair, roof = sweeps(keys, contention, curve, fits), est.confidence_text, None, None
    colors = slot_colors(slot_names(runs))
    with figure_style():
        parts = []
        for sweep in found:
            title = f"{sweep[0]}/{sweep[1]}, victim {sweep[2]}"
            caption = (
                f"The victim's achieved decode bandwidth (left, GB/s) and TPOT (right) while the "
                "neighbour's offered rate steps up (top axis: the fraction of its solo capacity). "
                f"Points: the estimate over blocks, whiskers its {conf} interval where two blocks "
                "or more; faint: each block's point. Lines: every converged fit, the preferred "
                "one solid, the others dashed."
            )
            figure = embedded_figure(
                title, caption, lambda s=sweep: curve_figure(s, curve, contention, fits, colors)
            )
            parts.append({"title": title, "figure": figure, "fit": fit_table(fits, sweep)})
        ceilings = {s: _ceilings(s, runs, calibration, contention) for s in found}
        if contended:
            pair = embedded_figure(
                "Pair bandwidth against the neighbour's rate",
                "The pair's total achieved bandwidth (GB/s) per sweep, with its interval; solid: "
                "the calibrated contended total ceiling (copy traffic, read + write, every slot "
                "copying); dotted: one slot's alone copy bandwidth.",
                lambda: pair_figure(found, curve, contention, ceilings),
            )
        if has_roofline(runs):
            roof = embedded_figure(
                "Roofline",
                "Achieved FLOP/s against arithmetic intensity, one point per valid run, slot and "
                "phase (decode: a step's FLOPs over the bytes it reads; prefill: the prompt's). "
                "Ceilings: min(peak FLOP/s, intensity × bandwidth) per calibrated dtype, the "
                "alone copy bandwidth solid, the contended per-slot one dashed. A single-thread "
                "run's points may rise above them: its one process has the cores of all its "
                "slots (its MBU and MFU are against their contended copy bandwidths and matmul "
                "peaks summed).",
                lambda: roofline_figure(runs, roofline_ceilings(runs, calibration)),
            )
    return {
        "threshold": fmt_pct(WALL_FRACTION),
        "distinguishable": f"{DISTINGUISHABLE:g}",
        "sentences": [wall_sentence(key, runs, calibration, est) for key in keys],
        "sweeps": parts,
        "pair_figure": pair,
        "roofline": roof,
    }
