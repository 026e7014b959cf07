"""The figures of the report's "Where is the wall" section (dualbench.report.wall):

- ``curve_figure``: one contention sweep, the victim's achieved bandwidth and its TPOT against
  the neighbour's offered rate, with every converged fit of contention_fits.csv;
- ``pair_figure``: the pair's total bandwidth against the rate, one panel per sweep, under the
  calibrated contended ceiling and one slot's alone ceiling;
- ``roofline_figure``: achieved FLOP/s against arithmetic intensity, per run, slot and phase,
  under each calibrated dtype's roofline (``roofline_ceilings``, ``roofline_points``).

A sweep is (scenario, precision, victim) (``Sweep``; ``sweeps`` lists them in order).

The units the section writes its numbers in live here too (``fmt_sig``, ``fmt_gbs``,
``fmt_flops``), so figure labels and tables agree. Each figure takes the tables as
dualbench.report.tables normalises them and returns a Figure, or a sentence saying why there
is none (dualbench.report.figures.embedded_figure). Bandwidths are drawn in GB/s (``GB``
bytes). Fonts are set on the axes, not through rcParams: tick labels are drawn when the PNG
is saved, after any style context has closed. Importing this module selects matplotlib's Agg
backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

# Before pyplot is imported, as in dualbench.report.figures: this module may be imported first.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dualbench.analysis.contention_fit import curve  # noqa: E402
from dualbench.config.vocabulary import SINGLE_THREAD  # noqa: E402
from dualbench.report.figures import LABEL_PT, TICK_PT, readable  # noqa: E402
from dualbench.report.format import DASH, fmt_fixed, number  # noqa: E402
from dualbench.report.layouts import is_group_layout

GB = 1e9
Sweep = tuple[str, str, str]  # (scenario, precision, victim)
FAINT = {"alpha": 0.3, "s": 14, "linewidths": 0}
WHISKER = {"ecolor": "#333333", "elinewidth": 1.0, "capsize": 3}
PHASE_MARKERS = {"decode": "o", "prefill": "^"}
# One colour per contention model (seaborn "Dark2"), apart from the slot colour of the points.
MODEL_COLORS = dict(
    zip(("exponential", "floor", "fair_share"), sns.color_palette("Dark2"), strict=False)
)
CEILING_COLOR = "#333333"
ALONE_COLOR = "#7a7a7a"


def model_curve(
    model: str, params: Mapping[str, Any], rates: np.ndarray, ceiling: float = math.nan
) -> np.ndarray | None:
    """A fitted model (dualbench.analysis.contention_fit) at ``rates``; None for an unknown
    model or a missing parameter. ``ceiling``: fair_share's C (bytes/s)."""
    values = {k: number(params.get(k)) for k in ("bw_max", "k", "bw_inf", "beta")}
    return curve(model, values, rates, number(ceiling))


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def median(values) -> float:
    """The median of the finite ``values``, NaN where none is."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(np.median(arr)) if arr.size else math.nan


def fmt_sig(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (thousands separated; an exponent only below
    1e-3, where a fixed notation would print a row of zeros, e.g. a fitted k of 4e-18)."""
    v = number(value)
    if not math.isfinite(v):
        return DASH
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        return f"{v:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def fmt_gbs(bytes_s: Any) -> str:
    """Bytes/s in GB/s (1e9), three significant digits."""
    return fmt_sig(number(bytes_s) / GB)


def fmt_flops(flop_s: Any) -> str:
    """FLOP/s in TFLOP/s from 1e12 up, else GFLOP/s."""
    v = number(flop_s)
    if not math.isfinite(v):
        return DASH
    return f"{fmt_sig(v / 1e12)} TFLOP/s" if v >= 1e12 else f"{fmt_sig(v / 1e9)} GFLOP/s"


def roofline_ceilings(
    runs: pd.DataFrame, calibration: pd.DataFrame
) -> list[tuple[str, float, float, float]]:
    """(dtype, peak FLOP/s, alone bytes/s, contended bytes/s per slot) per calibrated dtype,
    medians over the slots; without calibration.csv, runs.csv's peaks per precision, less a
    single-thread run's (its process's cores together, not one slot's)."""
    if not calibration.empty:
        return [
            (dtype, median(g["matmul_flop_s"]), median(g["copy_alone_bytes_s"]),
             median(g["copy_contended_bytes_s"]))
            for dtype, g in calibration.groupby("dtype", sort=False)
        ]  # fmt: skip
    one_slot = runs[~runs["layout"].str.startswith(SINGLE_THREAD)]
    return [
        (f"{p} (runs.csv peak)", median(g["peak_flop_s"]), median(g["peak_bw_bytes_s"]), math.nan)
        for p, g in one_slot.groupby("precision", sort=False)
    ]


def has_roofline(runs: pd.DataFrame) -> bool:
    """Whether runs.csv carries roofline data (metrics before it have the columns empty)."""
    numbers = runs[["mbu", "mfu", "decode_intensity", "prefill_intensity"]].to_numpy(float)
    return bool(np.isfinite(numbers).any() or (runs["regime"] != "").any())


def sweeps(keys: list[tuple[str, str]], *tables: pd.DataFrame) -> list[Sweep]:
    """Every (scenario, precision, victim) of the contention tables: in the order of ``keys``
    (the runs'), then victims in model (sorted name) order; a sweep of no known key comes
    last."""
    found = list(
        dict.fromkeys(
            (r["scenario"], r["precision"], r["victim"])
            for t in tables
            for r in t[["scenario", "precision", "victim"]].to_dict("records")
        )
    )
    rank = {key: i for i, key in enumerate(keys)}
    return sorted(found, key=lambda s: (rank.get(s[:2], len(rank)), s[2]))


def _sweep_rows(table: pd.DataFrame, sweep: Sweep) -> pd.DataFrame:
    scenario, precision, victim = sweep
    sel = (table["scenario"] == scenario) & (table["precision"] == precision)
    return table[sel & (table["victim"] == victim)]


def _metric(curve: pd.DataFrame, metric: str) -> pd.DataFrame:
    return curve[curve["metric"] == metric].sort_values("offered_rps")


def _draw_curve(ax: plt.Axes, rows: pd.DataFrame, scale: float, color: Any, label: str) -> None:
    """Estimates as points joined by a thin line, whiskers from lo to hi where the curve has
    an interval (two blocks or more); NaN bounds draw no whisker rather than a zero one."""
    x = rows["offered_rps"].to_numpy(float)
    y = rows["estimate"].to_numpy(float) / scale
    ax.plot(x, y, "o", color=color, ms=6, label=label, zorder=3)
    lo, hi = rows["lo"].to_numpy(float) / scale, rows["hi"].to_numpy(float) / scale
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    if ok.any():
        err = [np.maximum(y[ok] - lo[ok], 0), np.maximum(hi[ok] - y[ok], 0)]
        ax.errorbar(x[ok], y[ok], yerr=err, fmt="none", zorder=2, **WHISKER)


def _capacity_axis(ax: plt.Axes, curve: pd.DataFrame) -> None:
    """A top axis in fractions of the neighbour's solo capacity: offered_rps / fraction over
    the curve's points (capacity differs a little per block; the curve's points are the
    blocks' mean rate at each fraction)."""
    pos = curve[(curve["fraction"] > 0) & (curve["offered_rps"] > 0)]
    caps = (pos["offered_rps"] / pos["fraction"]).to_numpy(float)
    caps = caps[np.isfinite(caps)]
    if not caps.size:
        return
    cap = float(np.median(caps))
    top = ax.secondary_xaxis("top", functions=(lambda r: r / cap, lambda f: f * cap))
    top.set_xlabel("fraction of the neighbour's solo capacity", fontsize=LABEL_PT)
    top.tick_params(labelsize=TICK_PT)
    top.xaxis.set_major_formatter(plt.FuncFormatter(lambda f, _: f"{f:.0%}"))


def fit_title(fits: pd.DataFrame) -> str:
    """Names the preferred model and whether the data distinguish it (ΔAICc ≥ 2 to every
    other converged fit) or it only leads."""
    best = fits[fits["preferred"] & fits["converged"]]
    if best.empty:
        if fits.empty:
            return "no fit in contention_fits.csv"
        if fits["converged"].any():
            return "no model preferred: too few points for an AICc (see the notes)"
        return "no converged fit"
    row = best.iloc[0]
    if row["distinguishable"]:
        return f"{row['model']} preferred (distinguishable: ΔAICc ≥ 2 to the others)"
    return f"{row['model']} only leads (not distinguishable: ΔAICc < 2)"


def curve_figure(
    sweep: Sweep,
    curve: pd.DataFrame,
    points: pd.DataFrame,
    fits: pd.DataFrame,
    colors: Mapping[str, Any] | None = None,
) -> plt.Figure | str:
    """Victim bandwidth (left) and TPOT (right) against the neighbour's offered rate;
    ``colors``: each model's colour (figures.slot_colors of the data's models), the victim's
    drawing its points."""
    curve, points, fits = (_sweep_rows(t, sweep) for t in (curve, points, fits))
    bw = _metric(curve, "victim_bw_bytes_s")
    tpot = _metric(curve, "victim_tpot_ms")
    if bw.empty and tpot.empty:
        return "No curve points for this sweep in contention_curve.csv."
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.0, 4.2))
    color = (colors or {}).get(sweep[2], "#1f77b4")
    valid = points[points["valid"]]
    for ax, metric, scale in ((ax1, "victim_bw_bytes_s", GB), (ax2, "victim_tpot_ms", 1.0)):
        ax.scatter(valid["offered_rps"], valid[metric] / scale, color=color, **FAINT)
    _draw_curve(ax1, bw, GB, color, "estimate over blocks")
    _draw_curve(ax2, tpot, 1.0, color, "estimate over blocks")
    rates = pd.concat([curve["offered_rps"], points["offered_rps"]]).to_numpy(float)
    rates = rates[np.isfinite(rates)]
    grid = np.linspace(0.0, float(rates.max()) * 1.02 if rates.size else 1.0, 200)
    drawn = fits[fits["converged"]].sort_values("delta_aicc", na_position="last")
    for r in drawn.to_dict("records"):
        y = model_curve(r["model"], r, grid, number(r["ceiling_bytes_s"]))
        if y is None:
            continue
        style = {"lw": 2.6, "ls": "-"} if r["preferred"] else {"lw": 1.4, "ls": "--"}
        ax1.plot(grid, y / GB, label=f"{r['model']} (ΔAICc {fmt_fixed(r['delta_aicc'])})",
                 color=MODEL_COLORS.get(r["model"], "#555555"), zorder=4, **style)  # fmt: skip
    ax1.set_ylabel("victim achieved bandwidth (GB/s)")
    ax2.set_ylabel("victim TPOT (ms)")
    for ax in (ax1, ax2):
        ax.set_xlabel("neighbour offered rate (req/s)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        _capacity_axis(ax, curve)
        readable(ax)
    ax1.legend(fontsize=TICK_PT, frameon=False, loc="lower left")
    scenario, precision, victim = sweep
    neighbour = next((n for n in curve["neighbour"] if n), "")
    who = f"victim {victim}" + (f", neighbour {neighbour}" if neighbour else "")
    fig.suptitle(f"{scenario}/{precision}, {who}: {fit_title(fits)}", fontsize=LABEL_PT)
    fig.tight_layout()
    return fig


def pair_figure(
    sweeps: Sequence[Sweep],
    curve: pd.DataFrame,
    points: pd.DataFrame,
    ceilings: Mapping[Sweep, tuple[float, float]],
) -> plt.Figure | str:
    """The pair's total bandwidth against the rate, a panel per sweep; ``ceilings``: per sweep
    (contended total, one slot alone) in bytes/s, NaN where unknown (that line is left out)."""
    drawn = [s for s in sweeps if not _metric(_sweep_rows(curve, s), "pair_bw_bytes_s").empty]
    if not drawn:
        return "No pair bandwidth in contention_curve.csv."
    cols = min(len(drawn), 3)
    rows = math.ceil(len(drawn) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(drawn) :]:
        ax.set_visible(False)
    for ax, sweep in zip(axes.flat, drawn, strict=False):
        pair = _metric(_sweep_rows(curve, sweep), "pair_bw_bytes_s")
        raw = _sweep_rows(points, sweep)
        raw = raw[raw["valid"]]
        ax.scatter(raw["offered_rps"], raw["pair_bw_bytes_s"] / GB, color="#555555", **FAINT)
        _draw_curve(ax, pair, GB, "#555555", "pair total")
        contended, alone = ceilings.get(sweep, (math.nan, math.nan))
        for value, style, text in (
            (contended, {"ls": "-", "color": CEILING_COLOR}, "contended total ceiling"),
            (alone, {"ls": ":", "color": ALONE_COLOR}, "one slot alone"),
        ):
            if math.isfinite(value):
                ax.axhline(value / GB, lw=1.6, **style)
                ax.annotate(
                    f"{text} {fmt_gbs(value)}",
                    (0.01, value / GB),
                    xycoords=("axes fraction", "data"),
                    xytext=(0, 4),
                    textcoords="offset points",
                    fontsize=TICK_PT,
                    color=style["color"],
                )
        top = max([value for value in (contended, alone) if math.isfinite(value)] or [0.0])
        ymax = max(float(np.nanmax(pair[["estimate", "hi"]].to_numpy(float))), top) / GB
        ax.set_ylim(0, max(ymax, 1e-9) * 1.15)
        ax.set_xlim(left=0)
        ax.set_title("/".join(sweep[:2]) + f", victim {sweep[2]}", fontsize=LABEL_PT)
        ax.set_xlabel("neighbour offered rate (req/s)")
        ax.set_ylabel("pair total bandwidth (GB/s)")
        readable(ax)
    fig.tight_layout()
    return fig


def roofline_points(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per valid run × slot × phase with a finite, positive intensity and FLOP/s:
    scenario, layout, slot, phase, intensity, flop_s, alone (bool)."""
    rows = []
    ok = runs[runs["valid"] & runs["ok"]] if "ok" in runs else runs[runs["valid"]]
    for r in ok.to_dict("records"):
        for phase in PHASE_MARKERS:
            x, y = number(r.get(f"{phase}_intensity")), number(r.get(f"{phase}_flop_s"))
            if x > 0 and y > 0 and _finite(x, y):
                rows.append({"scenario": r["scenario"], "layout": r["layout"], "slot": r["slot"],
                             "phase": phase, "intensity": x, "flop_s": y,
                             "alone": not is_group_layout(r["layout"])})  # fmt: skip
    return pd.DataFrame(rows, columns=["scenario", "layout", "slot", "phase", "intensity",
                                       "flop_s", "alone"])  # fmt: skip


def roofline_figure(
    runs: pd.DataFrame, ceilings: Sequence[tuple[str, float, float, float]]
) -> plt.Figure | str:
    """Log-log roofline. ``ceilings``: (dtype, peak FLOP/s, alone bytes/s, contended bytes/s
    per slot) per calibrated dtype; each draws min(peak, AI × bandwidth), the alone bandwidth
    solid and the contended one dashed. Points: colour by scenario, marker by phase, filled
    alone and hollow co-located."""
    pts = roofline_points(runs)
    if pts.empty:
        return "No valid run has roofline columns (intensity and FLOP/s) in runs.csv."
    ridges = [peak / bw for _, peak, *bws in ceilings for bw in bws if _finite(peak, bw) and bw > 0]
    xs = np.concatenate([pts["intensity"].to_numpy(float), np.array(ridges, dtype=float)])
    grid = np.logspace(math.log10(xs.min() / 4), math.log10(xs.max() * 4), 300)
    fig, ax = plt.subplots(figsize=(9.0, 5.4))
    handles = []
    greys = sns.color_palette("Greys_d", max(len(ceilings), 1))
    for (dtype, peak, alone, contended), grey in zip(ceilings, greys, strict=False):
        for bw, ls, what in ((alone, "-", "alone"), (contended, "--", "contended, per slot")):
            if _finite(peak, bw) and bw > 0:
                ax.plot(grid, np.minimum(peak, grid * bw), ls=ls, lw=1.6, color=grey)
                label = f"{dtype} {what}: {fmt_gbs(bw)} GB/s, {fmt_flops(peak)}"
                handles.append(Line2D([], [], ls=ls, lw=1.6, color=grey, label=label))
    scenarios = list(dict.fromkeys(pts["scenario"]))
    colors = dict(zip(scenarios, sns.color_palette("colorblind", len(scenarios)), strict=True))
    for r in pts.to_dict("records"):
        c = colors[r["scenario"]]
        ax.scatter(r["intensity"], r["flop_s"], marker=PHASE_MARKERS[r["phase"]], s=55,
                   facecolors=c if r["alone"] else "none", edgecolors=c, linewidths=1.5,
                   zorder=3)  # fmt: skip
    handles += [Line2D([], [], ls="", marker="s", color=colors[s], label=s) for s in scenarios]
    handles += [Line2D([], [], ls="", marker=m, color="#333333", label=p)
                for p, m in PHASE_MARKERS.items()]  # fmt: skip
    handles += [
        Line2D([], [], ls="", marker="o", color="#333333", label="alone (filled)"),
        Line2D([], [], ls="", marker="o", mfc="none", color="#333333", label="co-located (hollow)"),
    ]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved FLOP/s")
    readable(ax)
    ax.legend(handles=handles, fontsize=TICK_PT, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    fig.tight_layout()
    return fig
