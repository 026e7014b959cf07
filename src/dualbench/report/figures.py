"""The report's figures: seaborn drawings rendered to PNG and embedded as data URIs.

- the palette: a colour per slot and layout (``PALETTE``, ``SLOT_COLORS``) and the bars each
  figure draws, in order (``THROUGHPUT_BARS``, ``LATENCY_BARS``);
- ``figure_style``: the look of the Figures section's figures;
- ``embedded_figure``: runs one figure function and returns the template's figure (title,
  caption, PNG data URI or the note saying why there is none);
- ``tick`` and ``legend``: a scenario's tick (⚠ where flagged) and the one legend of faceted
  figures, shared with dualbench.report.bars (the bar figures: throughput, latency, scaling);
- the other figures of the report's Figures section: ``timeline_figure``, ``ttft_figure``.
  Each takes the tables as dualbench.report.tables normalises them and returns a Figure, or a
  sentence saying why there is none.

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


def tick(scenario: str, precision: str, flagged: set[tuple[str, str]]) -> str:
    return f"{scenario} ⚠" if (scenario, precision) in flagged else scenario


def legend(fig: plt.Figure, labels: list[str], present: Iterable[str]) -> None:
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
    legend(fig, LATENCY_BARS, req["bar"])
    return fig
