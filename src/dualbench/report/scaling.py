"""The scaling curve and the interference matrix: what each added model buys in total
throughput, and what each model pays next to each set of neighbours.

- ``curve_data`` / ``curve_figure``: per scenario × precision, total throughput against the
  number of co-located models k: at k = 1 each model's V1 and their mean; at each k the V_total
  of every group layout of k models (free co-location joined by a line through the mean per k,
  lockstep and single-thread as markers of their own), each with its interval whisker; for
  reference, ideal linear scaling (k × mean V1, dashed) and each layout's own ideal (the sum
  of its models' V1, hollow).
- ``matrix_data`` / ``matrix_figure``: per scenario × precision, a heatmap of the throughput
  slowdown (alone / in-layout) of each victim model (rows) in each group layout it ran in
  (columns), coloured by value (1× white, slower red, faster blue), each cell written with its
  interval and verdict.

From answers.csv where the metrics have it (``v1``, ``v_total``, ``slowdown_throughput`` of
"<layout>/<victim>", with their intervals and verdicts); else scaling.csv, interference.csv
and runs.csv as they are (their mean over blocks, without whiskers). The models are the
data's (``names``: tables.slot_names). Importing this module selects matplotlib's Agg backend.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

# Before pyplot is imported, as in dualbench.report.figures: this module may be imported first.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dualbench.config.vocabulary import COLOCATED, LOCKSTEP, SINGLE_THREAD, alone_layout  # noqa: E402
from dualbench.report.estimates import Estimates  # noqa: E402
from dualbench.report.figures import (  # noqa: E402
    LABEL_PT,
    TICK_PT,
    readable,
    slot_colors,
    width,
)
from dualbench.report.format import fmt_bounds, fmt_ratio, number  # noqa: E402
from dualbench.report.layouts import group_label, group_layouts_of, kind_label, kind_of, members

Key = tuple[str, str]
NAN = math.nan
CURVE_COLUMNS = ["key", "layout", "kind", "k", "value", "lo", "hi", "ideal"]
MATRIX_COLUMNS = ["key", "victim", "layout", "value", "lo", "hi", "verdict_kind"]
WHISKER = {"ecolor": "#333333", "elinewidth": 1.0, "capsize": 3}
# Marker and colour of each kind of group layout on the curve.
KIND_STYLE = {
    COLOCATED: {"marker": "o", "color": "#2f5f8a"},
    LOCKSTEP: {"marker": "s", "color": "#b5651d"},
    SINGLE_THREAD: {"marker": "^", "color": "#7a3b8f"},
}
# A cell's verdict, shortened to fit under its numbers.
VERDICT_WORDS = {
    "effect": "effect",
    "equivalent": "equivalent",
    "inconclusive": "inconclusive",
    "one repeat": "one block",
    "no data": "no data",
}
PANEL_COLUMNS = 3
# The matrix's colour scale reaches full colour at this slowdown (or speed-up) at least, so a
# few percent of noise reads pale rather than alarming.
SCALE_SPAN = 1.5


def _panel_name(key: Key, single: bool) -> str:
    return key[0] if single else "/".join(key)


# ---------------------------------------------------------------------------------------------
# The numbers


def curve_data(
    keys: list[Key],
    est: Estimates,
    scaling: pd.DataFrame,
    runs: pd.DataFrame,
    names: list[str],
) -> pd.DataFrame:
    """The curve's points (``CURVE_COLUMNS``): per key, each model's V1 at k = 1 (``layout``
    its alone layout, ``kind`` "alone") and each group layout's V_total at its k; ``ideal``:
    the sum of the layout's models' V1 (NaN at k = 1). lo/hi NaN where no interval."""
    rows = []
    for key in keys:
        v1 = {s: _v1(key, s, est, runs) for s in names}
        rows += [
            {"key": key, "layout": alone_layout(s), "kind": "alone", "k": 1,
             "value": v[0], "lo": v[1], "hi": v[2], "ideal": NAN}
            for s, v in v1.items()
        ]  # fmt: skip
        if est:
            found = est.subjects(key, "v_total")
        else:
            sel = scaling[(scaling["scenario"] == key[0]) & (scaling["precision"] == key[1])]
            found = list(sel["layout"])
        for layout in group_layouts_of(found):
            group = members(layout, names)
            if est:
                value, lo, hi = est.interval(key, "v_total", layout)
            else:
                value, lo, hi = _mean(sel[sel["layout"] == layout]["v_total"]), NAN, NAN
            ideal = sum(v1[s][0] for s in group) if group else NAN
            rows.append({"key": key, "layout": layout, "kind": kind_of(layout),
                         "k": len(group), "value": value, "lo": lo, "hi": hi,
                         "ideal": ideal})  # fmt: skip
    data = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return data[np.isfinite(data["value"].astype(float))].reset_index(drop=True)


def _v1(key: Key, slot: str, est: Estimates, runs: pd.DataFrame) -> tuple[float, float, float]:
    if est:
        return est.interval(key, "v1", slot)
    sel = runs[(runs["scenario"] == key[0]) & (runs["precision"] == key[1])]
    sel = sel[(sel["layout"] == alone_layout(slot)) & (sel["slot"] == slot) & sel["valid"]]
    return _mean(sel["throughput_tok_s"]), NAN, NAN


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else NAN


def matrix_data(
    keys: list[Key], est: Estimates, interference: pd.DataFrame, names: list[str]
) -> pd.DataFrame:
    """The matrix's cells (``MATRIX_COLUMNS``): per key, each victim's throughput slowdown in
    each group layout it is a member of, with its interval and verdict kind."""
    rows = []
    for key in keys:
        if est:
            subjects = est.subjects(key, "slowdown_throughput")
            layouts = group_layouts_of(s.partition("/")[0] for s in subjects)
        else:
            sel = interference[
                (interference["scenario"] == key[0]) & (interference["precision"] == key[1])
            ]
            layouts = group_layouts_of(sel["layout"])
        for layout in layouts:
            for victim in members(layout, names):
                if est:
                    subject = f"{layout}/{victim}"
                    value, lo, hi = est.interval(key, "slowdown_throughput", subject)
                    row = est.get(key, "slowdown_throughput", subject) or {}
                    kind = row.get("verdict_kind", "")
                else:
                    cells = sel[(sel["layout"] == layout) & (sel["victim"] == victim)]
                    value, lo, hi, kind = _mean(cells["slowdown_throughput"]), NAN, NAN, ""
                rows.append({"key": key, "victim": victim, "layout": layout, "value": value,
                             "lo": lo, "hi": hi, "verdict_kind": kind})  # fmt: skip
    data = pd.DataFrame(rows, columns=MATRIX_COLUMNS)
    return data[np.isfinite(data["value"].astype(float))].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The figures


def _panels(n: int, each: tuple[float, float]) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, PANEL_COLUMNS)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width(each[0] * cols), each[1] * rows), squeeze=False
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _whisker(ax: plt.Axes, x: float, r: dict[str, Any], color: Any) -> None:
    lo, hi, value = number(r["lo"]), number(r["hi"]), number(r["value"])
    if math.isfinite(lo) and math.isfinite(hi):
        ax.errorbar(x, value, yerr=[[max(value - lo, 0.0)], [max(hi - value, 0.0)]],
                    fmt="none", zorder=2, **WHISKER)  # fmt: skip


def curve_figure(data: pd.DataFrame, keys: list[Key], single: bool, names: list[str]):
    """Total throughput against k, a panel per key (``data``: curve_data's)."""
    drawn = [key for key in keys if (data[data["key"] == key]["k"] > 1).any()]
    if not drawn:
        return "No group layout has a total throughput, so there is no scaling curve."
    colors = slot_colors(names)
    fig, axes = _panels(len(drawn), (4.6, 3.9))
    for ax, key in zip(axes, drawn, strict=True):
        sel = data[data["key"] == key]
        alone = sel[sel["kind"] == "alone"]
        for r in alone.to_dict("records"):
            slot = r["layout"].removeprefix("alone_")
            ax.plot(1, r["value"], "o", ms=5, color=colors.get(slot, "#888888"), alpha=0.8,
                    zorder=3)  # fmt: skip
            _whisker(ax, 1, r, colors.get(slot, "#888888"))
            if len(alone) > 1:
                # Alternate sides, so two models of about the same V1 stay legible.
                side = -1 if names.index(slot) % 2 == 0 else 1
                ax.annotate(slot, (1, r["value"]), xytext=(6 * side, 0),
                            textcoords="offset points", ha="right" if side < 0 else "left",
                            va="center", fontsize=TICK_PT - 1)  # fmt: skip
        v1_mean = float(alone["value"].mean()) if len(alone) else NAN
        k_max = int(sel["k"].max())
        ks = np.arange(0, k_max + 1)
        if math.isfinite(v1_mean):
            ax.plot(ks, ks * v1_mean, ls="--", lw=1.2, color="#888888", zorder=1)
        free = sel[sel["kind"] == COLOCATED]
        means = free.groupby("k")["value"].mean()
        if math.isfinite(v1_mean) and len(means):
            ax.plot([1, *means.index], [v1_mean, *means.to_numpy(float)], "-", lw=1.6,
                    color=KIND_STYLE[COLOCATED]["color"], zorder=2)  # fmt: skip
        # Several layouts of one k and kind spread a little apart, so every whisker shows.
        groups = sel[sel["k"] > 1].groupby(["k", "kind"], sort=False)
        offsets = {COLOCATED: 0.0, LOCKSTEP: 0.12, SINGLE_THREAD: -0.12}
        for (k, kind), g in groups:
            style = KIND_STYLE.get(kind, {"marker": "D", "color": "#555555"})
            spread = np.linspace(-0.06, 0.06, len(g)) if len(g) > 1 else [0.0]
            for dx, r in zip(spread, g.to_dict("records"), strict=True):
                x = k + offsets.get(kind, 0.0) + dx
                ax.plot(x, r["value"], ls="", ms=7, zorder=3, **style)
                _whisker(ax, x, r, style["color"])
                if math.isfinite(r["ideal"]):
                    ax.plot(x, r["ideal"], ls="", marker=style["marker"], ms=7, mfc="none",
                            mec=style["color"], zorder=3)  # fmt: skip
                if len(g) > 1:
                    ax.annotate("+".join(members(r["layout"], names)), (x, r["value"]),
                                xytext=(4, -3), textcoords="offset points",
                                fontsize=TICK_PT - 1)  # fmt: skip
        ax.set_xticks(range(1, k_max + 1))
        ax.set_xlim(0.5, k_max + 0.5)
        top = np.nanmax(sel[["value", "hi", "ideal"]].to_numpy(float))
        ax.set_ylim(0, max(float(top), 1.0) * 1.1)
        ax.set_xlabel("co-located models k")
        ax.set_ylabel("total output tokens/s")
        ax.set_title(_panel_name(key, single), fontsize=LABEL_PT)
        readable(ax)
    kinds = [k for k in KIND_STYLE if (data["kind"] == k).any()]
    handles = [
        Line2D([], [], ls="", marker="o", color="#888888", label="V1 of each model (k = 1)"),
        *[Line2D([], [], ls="", label=f"V_total, {kind_label(k)}", **KIND_STYLE[k]) for k in kinds],
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="none",
            color="#555555",
            label="ideal: sum of its models' V1",
        ),  # fmt: skip
        Line2D([], [], ls="--", color="#888888", label="ideal linear: k × mean V1"),
    ]
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / fig.get_figheight()))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1.0), ncol=3,
               frameon=False, fontsize=TICK_PT)  # fmt: skip
    return fig


def cell_text(r: dict[str, Any]) -> str:
    """A matrix cell: "1.12×", its interval "(1.08–1.16)" where it has one, its verdict."""
    lines = [fmt_ratio(r["value"])]
    bounds = fmt_bounds(r["lo"], r["hi"], "ratio")
    if bounds:
        lines.append(f"({bounds})")
    words = VERDICT_WORDS.get(r["verdict_kind"], "")
    if words:
        lines.append(words)
    return "\n".join(lines)


def matrix_figure(data: pd.DataFrame, keys: list[Key], single: bool, names: list[str]):
    """The heatmap per key, a panel each, side by side up to PANEL_COLUMNS (``data``:
    matrix_data's), one colour scale for all: 1× white, at least ±SCALE_SPAN deep."""
    drawn = [key for key in keys if (data["key"] == key).any()]
    if not drawn:
        return "No group layout has a slowdown, so there is no interference matrix."
    values = data["value"].to_numpy(float)
    spread = max(float(np.nanmax(np.abs(np.log(values)))), math.log(SCALE_SPAN))
    norm = TwoSlopeNorm(vcenter=1.0, vmin=math.exp(-spread), vmax=math.exp(spread))
    cmap = plt.get_cmap("RdBu_r")
    n_layouts = max(len(set(data[data["key"] == key]["layout"])) for key in drawn)
    n_victims = max(len(set(data[data["key"] == key]["victim"])) for key in drawn)
    cols = min(len(drawn), max(1, PANEL_COLUMNS if n_layouts == 1 else 6 // n_layouts))
    rows = math.ceil(len(drawn) / cols)
    each = (1.2 + 1.6 * n_layouts, 1.3 + 0.75 * n_victims)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width(each[0] * cols + 1.4), each[1] * rows), squeeze=False
    )
    for ax in axes.flat[len(drawn) :]:
        ax.set_visible(False)
    image = None
    for n, (ax, key) in enumerate(zip(axes.flat, drawn, strict=False)):
        sel = data[data["key"] == key]
        layouts = group_layouts_of(sel["layout"])
        victims = [s for s in names if s in set(sel["victim"])]
        grid = np.full((len(victims), len(layouts)), np.nan)
        for r in sel.to_dict("records"):
            i, j = victims.index(r["victim"]), layouts.index(r["layout"])
            grid[i, j] = r["value"]
            shade = cmap(norm(r["value"]))
            dark = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] < 0.5
            ax.text(j, i, cell_text(r), ha="center", va="center", fontsize=TICK_PT - 1,
                    color="white" if dark else "black")  # fmt: skip
        ax.set_facecolor("#eeeeee")  # a model not in the layout
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(layouts)))
        tilt = {"rotation": 15, "ha": "right"} if len(layouts) > 2 else {}
        ax.set_xticklabels([group_label(lay, names) for lay in layouts], **tilt)
        ax.set_yticks(range(len(victims)))
        ax.set_yticklabels(victims)
        if n % cols == 0:
            ax.set_ylabel("victim model")
        ax.set_title(_panel_name(key, single), fontsize=LABEL_PT, loc="left")
        ax.grid(False)
        readable(ax)
    fig.supxlabel("layout it ran in (its neighbours: the other models)", fontsize=LABEL_PT)
    fig.tight_layout()
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes.flat[: len(drawn)]), shrink=0.9, pad=0.02)
        bar.set_label("throughput slowdown (alone / in layout)", fontsize=LABEL_PT)
        bar.ax.tick_params(labelsize=TICK_PT)
    return fig
