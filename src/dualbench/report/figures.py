"""The report's figures: seaborn drawings rendered to PNG and embedded as data URIs.

- the palette: a colour per slot and layout (``PALETTE``, ``SLOT_COLORS``) and the bars each
  figure draws, in order (``THROUGHPUT_BARS``, ``LATENCY_BARS``);
- ``figure_style``: the look of the Figures section's figures;
- ``embedded_figure``: runs one figure function and returns the template's figure (title,
  caption, PNG data URI or the note saying why there is none);
- the figure functions of the report's Figures section: ``throughput_figure``,
  ``latency_figure``, ``scaling_figure``, ``timeline_figure``, ``ttft_figure``. Each takes the
  tables as dualbench.report.tables normalises them and returns a Figure, or a sentence saying
  why there is none.

Importing this module selects matplotlib's Agg backend: import it before pyplot.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

# Before pyplot is imported: reports are rendered on headless CI runners and cluster nodes.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout  # noqa: E402
from dualbench.report.format import fmt_fixed, fmt_pct, is_finite  # noqa: E402
from dualbench.report.tables import run_label, unique_in_order  # noqa: E402

log = logging.getLogger(__name__)

ALONE_BARS = {slot: run_label(alone_layout(slot), slot) for slot in SLOT_NAMES}
CO_BARS = {slot: run_label(COLOCATED, slot) for slot in SLOT_NAMES}
PAIR_BAR = "+".join(SLOT_NAMES) + " co-located"
# Alone bars light, co-located bars dark of the same hue, so each slot reads as one colour:
# slot i takes the light and dark colour of pair _SLOT_PAIRS[i] of "Paired" (A blue, B orange).
_PAIRED = sns.color_palette("Paired")
_SLOT_PAIRS = (0, 3, 1, 2, 4, 5)
SLOT_COLORS = {slot: _PAIRED[2 * _SLOT_PAIRS[i] + 1] for i, slot in enumerate(SLOT_NAMES)}
PALETTE = {
    **{
        bar: _PAIRED[2 * _SLOT_PAIRS[i] + dark]
        for i, slot in enumerate(SLOT_NAMES)
        for dark, bar in enumerate((ALONE_BARS[slot], CO_BARS[slot]))
    },
    PAIR_BAR: "#555555",
}
THROUGHPUT_BARS = [*ALONE_BARS.values(), *CO_BARS.values(), PAIR_BAR]
LATENCY_BARS = [bar for slot in SLOT_NAMES for bar in (ALONE_BARS[slot], CO_BARS[slot])]
DPI = 110


def _png_uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    # No Software/date metadata: the same data gives a byte-identical report.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def embedded_figure(
    title: str, caption: str, draw: Callable[[], plt.Figure | str]
) -> dict[str, Any]:
    """Run one figure function: it returns a Figure, or a sentence saying why there is none.

    A figure that raises becomes a note instead of aborting the report: the report is the last
    stage of a long pipeline, and the tables still carry every number.
    """
    fig_or_note: plt.Figure | str
    try:
        fig_or_note = draw()
    except Exception as exc:
        log.exception("figure %r failed", title)
        fig_or_note = f"This figure could not be drawn: {type(exc).__name__}: {exc}"
    if isinstance(fig_or_note, str):
        return {"title": title, "caption": caption, "uri": None, "note": fig_or_note}
    try:
        return {"title": title, "caption": caption, "uri": _png_uri(fig_or_note), "note": ""}
    finally:
        plt.close(fig_or_note)


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The look of the Figures section: seaborn's whitegrid, its notebook context a bit smaller."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        yield


def _tick(scenario: str, precision: str, flagged: set[tuple[str, str]]) -> str:
    return f"{scenario} ⚠" if (scenario, precision) in flagged else scenario


def _legend(fig: plt.Figure, labels: list[str], present: Iterable[str]) -> None:
    """One legend for all facets, in a strip reserved above them: built from the palette, so
    it lists every layout drawn in any facet, whatever each facet happens to contain."""
    present = set(present)
    shown = [lab for lab in labels if lab in present]
    handles = [Patch(facecolor=PALETTE[lab], label=lab) for lab in shown]
    strip = 0.45 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - strip))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        frameon=False,
    )


def throughput_figure(
    runs: pd.DataFrame,
    scaling: pd.DataFrame,
    scenarios: list[str],
    precisions: list[str],
    flagged: set[tuple[str, str]],
) -> plt.Figure | str:
    rows = [
        {
            "scenario": r["scenario"],
            "precision": r["precision"],
            "bar": r["label"],
            "value": r["throughput_tok_s"],
        }
        for r in runs.to_dict("records")
    ]
    rows += [
        {
            "scenario": r["scenario"],
            "precision": r["precision"],
            "bar": PAIR_BAR,
            "value": r["v2"],
        }
        for r in scaling.to_dict("records")
    ]
    data = pd.DataFrame(rows, columns=["scenario", "precision", "bar", "value"])
    data = data[data["bar"].isin(THROUGHPUT_BARS) & np.isfinite(data["value"].astype(float))]
    if data.empty:
        return "No run produced a throughput figure."
    fig, axes = plt.subplots(
        1,
        len(precisions),
        figsize=(max(7.0, 2.6 * len(scenarios)) * len(precisions) ** 0.8, 4.0),
        sharey=True,
        squeeze=False,
    )
    for ax, precision in zip(axes[0], precisions, strict=True):
        sub = data[data["precision"] == precision]
        if sub.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.barplot(
                sub,
                x="scenario",
                y="value",
                hue="bar",
                order=scenarios,
                hue_order=THROUGHPUT_BARS,
                palette=PALETTE,
                errorbar=None,
                legend=False,
                ax=ax,
            )
            for container in ax.containers:
                ax.bar_label(container, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([_tick(s, precision, flagged) for s in scenarios])
        ax.set_title(precision if len(precisions) > 1 else "")
        ax.set_xlabel("")
        ax.set_ylabel("output tokens/s")
    _legend(fig, THROUGHPUT_BARS, data["bar"])
    return fig


def latency_figure(
    runs: pd.DataFrame,
    scenarios: list[str],
    precisions: list[str],
    flagged: set[tuple[str, str]],
) -> plt.Figure | str:
    # Two rows per bar (p50 and p90) and estimator=min with a min..max interval: seaborn then
    # draws the bar at p50 and a whisker up to p90, aligned with its bar by seaborn itself.
    rows = []
    for r in runs.to_dict("records"):
        if r["label"] not in LATENCY_BARS:
            continue
        for metric in ("ttft", "tpot"):
            p50, p90 = r[f"{metric}_ms_p50"], r[f"{metric}_ms_p90"]
            if not is_finite(p50):
                continue
            base = {"scenario": r["scenario"], "precision": r["precision"], "bar": r["label"]}
            rows.append({**base, "metric": metric, "value": p50})
            if is_finite(p90) and p90 >= p50:
                rows.append({**base, "metric": metric, "value": p90})
    data = pd.DataFrame(rows, columns=["scenario", "precision", "bar", "metric", "value"])
    if data.empty:
        return "No run produced latency figures."
    fig, axes = plt.subplots(
        2,
        len(precisions),
        figsize=(max(7.0, 2.2 * len(scenarios)) * len(precisions) ** 0.8, 6.0),
        sharex=True,
        squeeze=False,
    )
    for col, precision in enumerate(precisions):
        for row, metric in enumerate(("ttft", "tpot")):
            ax = axes[row][col]
            sub = data[(data["precision"] == precision) & (data["metric"] == metric)]
            if sub.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.barplot(
                    sub,
                    x="scenario",
                    y="value",
                    hue="bar",
                    order=scenarios,
                    hue_order=LATENCY_BARS,
                    palette=PALETTE,
                    estimator="min",
                    errorbar=lambda v: (v.min(), v.max()),
                    capsize=0.2,
                    err_kws={"linewidth": 1, "color": "#333333"},
                    legend=False,
                    ax=ax,
                )
            ax.set_xticks(range(len(scenarios)))
            ax.set_xticklabels([_tick(s, precision, flagged) for s in scenarios])
            ax.set_xlabel("")
            ax.set_ylabel(f"{metric.upper()} p50 (ms)")
            if row == 0 and len(precisions) > 1:
                ax.set_title(precision)
    _legend(fig, LATENCY_BARS, data["bar"])
    return fig


def scaling_figure(
    scaling: pd.DataFrame, keys: list[tuple[str, str]], single_precision: bool
) -> plt.Figure | str:
    def name(s: str, p: str) -> str:
        return s if single_precision else f"{s}\n{p}"

    recs = {(r["scenario"], r["precision"]): r for r in scaling.to_dict("records")}
    eff, slow = [], []
    for key in keys:
        r = recs.get(key)
        if r is None:
            continue
        label = name(*key) + ("" if r["valid"] else " ⚠")
        if is_finite(r["scaling_efficiency"]):
            eff.append({"key": label, "value": 100 * r["scaling_efficiency"]})
        for slot in SLOT_NAMES:
            if is_finite(r[f"slowdown_{slot}"]):
                slow.append({"key": label, "slot": slot, "value": r[f"slowdown_{slot}"]})
    if not eff and not slow:
        return "No scenario has both alone and co-located results, so there is no scaling yet."
    order = unique_in_order([e["key"] for e in eff] + [s["key"] for s in slow])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(order) * 2), 3.6))
    if eff:
        sns.barplot(pd.DataFrame(eff), x="key", y="value", order=order, color="#4c8c6a", ax=ax1)
        for container in ax1.containers:
            ax1.bar_label(container, fmt="%.0f%%", fontsize=8, padding=1)
    ax1.axhline(100, color="#333333", lw=1, ls="--")
    ax1.axhline(50, color="#aa3333", lw=1, ls=":")
    for y, text in ((100, " no interference"), (50, " no gain")):
        ax1.text(1.0, y, text, transform=ax1.get_yaxis_transform(), va="center", fontsize=7)
    ax1.set_ylim(0, max([110.0] + [e["value"] * 1.1 for e in eff]))
    ax1.set_title(f"Scaling efficiency V2 / ({' + '.join(f'V1_{s}' for s in SLOT_NAMES)})")
    ax1.set_ylabel("%")
    ax1.set_xlabel("")
    if slow:
        sns.barplot(
            pd.DataFrame(slow),
            x="key",
            y="value",
            hue="slot",
            order=order,
            hue_order=list(SLOT_NAMES),
            palette=SLOT_COLORS,
            ax=ax2,
        )
        for container in ax2.containers:
            ax2.bar_label(container, fmt="%.2f", fontsize=8, padding=1)
        ax2.legend(
            title="slot", frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0)
        )
    ax2.axhline(1.0, color="#333333", lw=1, ls="--")
    ax2.set_ylim(0, max([1.2] + [s["value"] * 1.15 for s in slow]))
    ax2.set_title("Slowdown: alone / co-located throughput")
    ax2.set_ylabel("×")
    ax2.set_xlabel("")
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order)
    fig.tight_layout()
    return fig


def timeline_figure(runs: pd.DataFrame) -> plt.Figure | str:
    co = runs[runs["layout"] == COLOCATED]
    run_ids = unique_in_order(co["run_id"])
    if not run_ids:
        return "No co-located runs."
    fig, axes = plt.subplots(
        len(run_ids), 1, figsize=(10.0, 0.3 + 1.15 * len(run_ids)), squeeze=False
    )
    for ax, run_id in zip(axes[:, 0], run_ids, strict=True):
        sel = co[co["run_id"] == run_id].sort_values("slot")
        slots = list(sel["slot"])
        drew = False
        for y, r in enumerate(sel.to_dict("records")):
            start, end = r["slot_start_s"], r["slot_end_s"]
            if is_finite(start) and is_finite(end):
                color = SLOT_COLORS.get(r["slot"], "#888888")
                ax.barh(y, end - start, left=start, height=0.55, color=color)
                drew = True
            else:
                note = f"{r['slot']}: {r['status']}, no timing"
                ax.text(
                    0.01, y, note, va="center", color="#aa3333", transform=ax.get_yaxis_transform()
                )
        starts = sel["window_start_s"].dropna()
        ends = sel["window_end_s"].dropna()
        if len(starts) and len(ends):
            ax.axvspan(starts.max(), ends.min(), color="#4c8c6a", alpha=0.18, lw=0)
        ax.set_yticks(range(len(slots)))
        ax.set_yticklabels(slots)
        ax.set_ylim(len(slots) - 0.4, -0.6)  # first slot on top
        ax.set_xlim(left=0)
        overlap = sel["overlap_frac"].dropna()
        window = sel["window_s"].dropna()
        title = run_id
        if len(window):
            title += f" · window {fmt_fixed(window.iloc[0], 2)} s"
        if len(overlap):
            title += f" · overlap {fmt_pct(overlap.iloc[0])}"
        ax.set_title(title, fontsize=9, loc="left")
        if not drew:
            ax.set_xticks([])
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("seconds since run start (shaded: co-located window)")
    fig.tight_layout()
    return fig


def ttft_figure(
    requests: pd.DataFrame, keys: list[tuple[str, str]], single_precision: bool
) -> plt.Figure | str:
    if requests.empty:
        return "No per-request data."
    req = requests[requests["in_window"] & np.isfinite(requests["ttft_ms"])].copy()
    if req.empty:
        return "No request finished inside a measurement window."
    req["bar"] = [run_label(lay, s) for lay, s in zip(req["layout"], req["slot"], strict=True)]
    req = req[req["bar"].isin(LATENCY_BARS)]
    req["key"] = req["scenario"] if single_precision else req["scenario"] + "/" + req["precision"]
    order = unique_in_order(k[0] if single_precision else "/".join(k) for k in keys)
    order = [k for k in order if k in set(req["key"])]
    if not order:
        return "No request finished inside a measurement window."
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(order)), 3.8))
    with warnings.catch_warnings():
        # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``; nothing for us to change.
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(
            req,
            x="key",
            y="ttft_ms",
            hue="bar",
            order=order,
            hue_order=LATENCY_BARS,
            palette=PALETTE,
            fliersize=1.5,
            linewidth=0.8,
            legend=False,
            ax=ax,
        )
    lo, hi = req["ttft_ms"].min(), req["ttft_ms"].max()
    if lo > 0 and hi / lo > 30:  # mixed short/long prompts span decades
        ax.set_yscale("log")
    ax.set_xlabel("")
    ax.set_ylabel("TTFT (ms)")
    _legend(fig, LATENCY_BARS, req["bar"])
    return fig
