"""The report's figures: seaborn drawings rendered to PNG and embedded as data URIs.

- the palette, built from the model names of the data (any number of them): a colour per
  model (``slot_colors``), a light and a dark one per model for its bars alone and co-located
  (``palette``), and the bars each figure draws, in order (``throughput_bars``,
  ``latency_bars``);
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
import math
import struct
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

from dualbench.config.vocabulary import COLOCATED, alone_layout  # noqa: E402
from dualbench.report.format import fmt_fixed, fmt_pct, is_finite  # noqa: E402
from dualbench.report.layouts import group_label, group_rows, run_label, slot_names
from dualbench.report.tables import unique_in_order

log = logging.getLogger(__name__)

# Alone bars light, co-located bars dark of the same hue, so each model reads as one colour:
# model i takes the light and dark colour of pair _SLOT_PAIRS[i] of "Paired" (A blue, B
# orange); from the seventh model on, a hue of "husl" and a light tint of it.
_PAIRED = sns.color_palette("Paired")
_SLOT_PAIRS = (0, 3, 1, 2, 4, 5)
GROUP_COLOR = "#555555"
DPI = 110
# Fonts of ticks and axis labels, in points, set on the axes (``readable``): tick labels are
# drawn when the PNG is saved, after any style context has closed. At DPI 110 a point is
# 1.53 px, so 10 pt is 15 px at 100% zoom, as long as the page does not shrink the image:
# figures stay within MAX_WIDTH_IN (the page's 1,150 px of content at DPI), and at any width
# up to it a label keeps well above 10 px.
TICK_PT = 10
LABEL_PT = 11
MAX_WIDTH_IN = 10.4
# The smallest label a reader is asked to read, in CSS pixels at 100% zoom.
READABLE_PX = 10


def _shades(i: int, n: int) -> tuple[Any, Any]:
    """(light, dark) colour of the ``i``-th of ``n`` models."""
    if i < len(_SLOT_PAIRS):
        pair = _SLOT_PAIRS[i]
        return _PAIRED[2 * pair], _PAIRED[2 * pair + 1]
    dark = sns.color_palette("husl", n)[i]
    light = tuple(0.55 + 0.45 * c for c in dark)
    return light, dark


def slot_colors(names) -> dict[str, Any]:
    """Each model's colour (the dark shade of its pair), in the order of ``names``."""
    names = list(names)
    return {s: _shades(i, len(names))[1] for i, s in enumerate(names)}


def alone_bar(slot: str) -> str:
    return run_label(alone_layout(slot), slot)


def co_bar(slot: str) -> str:
    """The bar of a model in the layout of every model (``colocated``)."""
    return run_label(COLOCATED, slot)


def total_bar(names) -> str:
    """The bar of every model's summed throughput co-located: "A+B co-located"."""
    return group_label(COLOCATED, names)


def palette(names) -> dict[str, Any]:
    """Bar label -> colour: each model alone (light) and co-located (dark), and the total."""
    names = list(names)
    colors: dict[str, Any] = {}
    for i, slot in enumerate(names):
        light, dark = _shades(i, len(names))
        colors[alone_bar(slot)], colors[co_bar(slot)] = light, dark
    if len(names) > 1:
        colors[total_bar(names)] = GROUP_COLOR
    return colors


def throughput_bars(names) -> list[str]:
    """The throughput figure's bars in order: every model alone, then co-located, then the
    co-located total (a single model has only its alone bar)."""
    names = list(names)
    if len(names) < 2:
        return [alone_bar(s) for s in names]
    return [*map(alone_bar, names), *map(co_bar, names), total_bar(names)]


def latency_bars(names) -> list[str]:
    """The latency figures' bars: each model alone then co-located, model by model."""
    names = list(names)
    several = len(names) > 1
    return [bar for s in names for bar in (alone_bar(s), *([co_bar(s)] if several else []))]


def readable(ax: plt.Axes) -> None:
    """Tick labels at TICK_PT points (minor ticks included: log axes), axis labels at
    LABEL_PT."""
    ax.tick_params(which="both", labelsize=TICK_PT)
    ax.xaxis.label.set_size(LABEL_PT)
    ax.yaxis.label.set_size(LABEL_PT)


def width(inches: float) -> float:
    """A figure's width, at most MAX_WIDTH_IN so the page shows it unshrunk."""
    return min(inches, MAX_WIDTH_IN)


def label_px(fig: plt.Figure) -> float:
    """The smallest tick or axis label of ``fig`` in pixels of its PNG (at DPI)."""
    fig.canvas.draw()
    sizes = [
        t.get_fontsize()
        for ax in fig.axes
        if ax.get_visible()
        for t in (*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label)
        if t.get_visible() and t.get_text()
    ]
    return min(sizes) * DPI / 72 if sizes else math.inf


def smallest_label_px(fig: plt.Figure) -> float:
    """The smallest tick or axis label of ``fig`` in pixels at 100% zoom: its size at DPI,
    shrunk as the page shrinks a figure wider than MAX_WIDTH_IN (for tests and checks)."""
    return label_px(fig) * min(1.0, MAX_WIDTH_IN / fig.get_figwidth())


def _png(fig: plt.Figure) -> tuple[str, int, int]:
    """(data URI, width px, height px) of ``fig`` as a PNG."""
    buf = io.BytesIO()
    # No Software/date metadata: the same data gives a byte-identical report.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    png = buf.getvalue()
    # A PNG's size is the first field of its IHDR chunk, big-endian, at bytes 16-24.
    width, height = struct.unpack(">II", png[16:24])
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii"), width, height


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
        smallest = label_px(fig_or_note)
        uri, width_px, height_px = _png(fig_or_note)
    finally:
        plt.close(fig_or_note)
    # The page may shrink a figure to its column, but never below the width at which its
    # smallest label reads READABLE_PX: narrower, the figure scrolls in its own box. (A
    # figure without tick or axis labels counts as one at READABLE_PX: it does not shrink.)
    smallest = round(smallest, 2) if math.isfinite(smallest) else READABLE_PX
    shrink_to = math.ceil(width_px * min(1.0, READABLE_PX / smallest))
    return {
        "title": title, "caption": caption, "uri": uri, "note": "",
        "width": width_px, "height": height_px, "min_width": shrink_to, "label_px": smallest,
    }  # fmt: skip


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The look of the Figures section: seaborn's whitegrid, its notebook context a bit smaller."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        yield


def tick(scenario: str, precision: str, flagged: set[tuple[str, str]]) -> str:
    return f"{scenario} ⚠" if (scenario, precision) in flagged else scenario


def legend(
    fig: plt.Figure, labels: list[str], present: Iterable[str], colors: dict[str, Any]
) -> None:
    """One legend for all facets, in a strip reserved above them: built from the palette
    ``colors``, so it lists every layout drawn in any facet, whatever each facet happens to
    contain."""
    present = set(present)
    shown = [lab for lab in labels if lab in present]
    handles = [Patch(facecolor=colors[lab], label=lab) for lab in shown]
    # One row up to five entries (two models: the row the report always had), else rows of
    # up to four, so the legend stays within the figure's width and the page keeps its size.
    ncol = max(len(handles), 1) if len(handles) <= 5 else 4
    rows = math.ceil(len(handles) / ncol)
    strip = (0.2 + 0.25 * rows) / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - strip))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=ncol,
        frameon=False,
    )


def timeline_figure(runs: pd.DataFrame) -> plt.Figure | str:
    """Per run of several models (any group layout), each slot's first submit to last token
    under the co-located window."""
    co = group_rows(runs)
    run_ids = unique_in_order(co["run_id"])
    if not run_ids:
        return "No co-located runs."
    colors = slot_colors(slot_names(runs))
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
                color = colors.get(r["slot"], "#888888")
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
        readable(ax)
    axes[-1, 0].set_xlabel("seconds since run start (shaded: co-located window)")
    fig.tight_layout()
    return fig


def ttft_figure(
    requests: pd.DataFrame, keys: list[tuple[str, str]], single_precision: bool, names: list[str]
) -> plt.Figure | str:
    """TTFT of the requests inside their window, per scenario: each model alone and co-located
    (``names``: the models of the data)."""
    if requests.empty:
        return "No per-request data."
    req = requests[requests["in_window"] & np.isfinite(requests["ttft_ms"])].copy()
    if req.empty:
        return "No request finished inside a measurement window."
    bars, colors = latency_bars(names), palette(names)
    req["bar"] = [run_label(lay, s) for lay, s in zip(req["layout"], req["slot"], strict=True)]
    req = req[req["bar"].isin(bars)]
    req["key"] = req["scenario"] if single_precision else req["scenario"] + "/" + req["precision"]
    order = unique_in_order(k[0] if single_precision else "/".join(k) for k in keys)
    order = [k for k in order if k in set(req["key"])]
    if not order:
        return "No request finished inside a measurement window."
    fig, ax = plt.subplots(figsize=(width(max(7.0, 2.2 * len(order))), 3.8))
    with warnings.catch_warnings():
        # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``; nothing for us to change.
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(
            req,
            x="key",
            y="ttft_ms",
            hue="bar",
            order=order,
            hue_order=[b for b in bars if b in set(req["bar"])],
            palette=colors,
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
    readable(ax)
    legend(fig, bars, req["bar"], colors)
    return fig
