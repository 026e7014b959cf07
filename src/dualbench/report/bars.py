"""The report's bar figures: throughput, latency, and scaling and interference, each bar an
estimate and its whisker the estimate's interval.

The models are the data's (``names``: tables.slot_names); the throughput and latency figures
draw each model alone and in the layout of every model (``colocated``), the scaling figure
every free co-located layout (subsets included).

Where the metrics have answers.csv (``Estimates``), a bar is the answer over the blocks
(``throughput``, ``ttft_p50``, ``tpot_p50`` of "<layout>/<slot>", ``v_total`` of "colocated"
for the co-located total, ``scaling_efficiency`` of a layout, ``slowdown_throughput`` of
"<layout>/<slot>") and its whisker the answer's interval where it pooled two blocks or more;
with one block a latency bar keeps the run's p50 → p90 whisker. Metrics without answers.csv
draw runs.csv, scaling.csv and interference.csv as they are, one block.

The ``*_data`` functions pick the numbers (columns ``x``, ``facet``, ``bar``, ``value``, ``lo``,
``hi``; lo/hi NaN where there is no whisker); the ``*_figure`` functions draw them, returning a
Figure or a sentence saying why there is none. Importing this module selects matplotlib's Agg
backend.
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

from dualbench.config.vocabulary import COLOCATED  # noqa: E402
from dualbench.report.estimates import Estimates  # noqa: E402
from dualbench.report.figures import (  # noqa: E402
    latency_bars,
    legend,
    palette,
    readable,
    slot_colors,
    throughput_bars,
    tick,
    total_bar,
    width,
)
from dualbench.report.format import is_finite, number  # noqa: E402
from dualbench.report.layouts import group_layouts_of, members, run_label
from dualbench.report.tables import unique_in_order

Key = tuple[str, str]
COLUMNS = ["x", "facet", "bar", "value", "lo", "hi"]
NAN = math.nan
WHISKER = {"ecolor": "#333333", "elinewidth": 1.0, "capsize": 2.5}
EFFICIENCY_COLOR = "#4c8c6a"


def _row(x: str, facet: str, bar: str, value: Any, lo: Any = NAN, hi: Any = NAN) -> dict:
    return {"x": x, "facet": facet, "bar": bar, "value": number(value), "lo": number(lo),
            "hi": number(hi)}  # fmt: skip


def _frame(rows: list[dict]) -> pd.DataFrame:
    data = pd.DataFrame(rows, columns=COLUMNS)
    return data[np.isfinite(data["value"].astype(float))].reset_index(drop=True)


def _subject(subject: str) -> tuple[str, str]:
    layout, _, slot = subject.partition("/")
    return layout, slot


def draw_bars(
    ax: plt.Axes,
    data: pd.DataFrame,
    order: list[str],
    hues: list[str],
    palette: dict[str, Any],
    label: str | None = None,
) -> float:
    """Grouped bars: a group per ``order`` entry on x, a place per hue in every group (so
    facets line up), a whisker from lo to hi where the row has them, and the value as
    ``label`` % value above the bar and its whisker. Returns the highest point drawn."""
    width = 0.8 / max(len(hues), 1)
    top = 0.0
    for j, hue in enumerate(hues):
        for r in data[data["bar"] == hue].to_dict("records"):
            if r["x"] not in order:
                continue
            pos = order.index(r["x"]) - 0.4 + width * (j + 0.5)
            value, lo, hi = r["value"], r["lo"], r["hi"]
            ax.bar(pos, value, width, color=palette[hue], edgecolor="white", linewidth=0.5)
            if math.isfinite(lo) or math.isfinite(hi):
                below = value - lo if math.isfinite(lo) else 0.0
                above = hi - value if math.isfinite(hi) else 0.0
                ax.errorbar(pos, value, yerr=[[max(below, 0.0)], [max(above, 0.0)]], fmt="none",
                            **WHISKER)  # fmt: skip
            peak = max(value, hi) if math.isfinite(hi) else value
            if label:
                ax.annotate(label % value, (pos, peak), xytext=(0, 1.5), fontsize=7,
                            textcoords="offset points", ha="center", va="bottom")  # fmt: skip
            top = max(top, peak)
    ax.set_xticks(range(len(order)))
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.grid(axis="x", visible=False)
    return top


# ---------------------------------------------------------------------------------------------
# The numbers


def throughput_data(
    runs: pd.DataFrame, scaling: pd.DataFrame, est: Estimates, names: list[str]
) -> pd.DataFrame:
    """Each model's output tok/s alone and co-located with every other, and the co-located
    total (V_total of ``colocated``; V2 for two models)."""
    total = total_bar(names)
    if est:
        rows = [
            _row(r["scenario"], r["precision"], run_label(*_subject(r["subject"])),
                 *est.interval((r["scenario"], r["precision"]), "throughput", r["subject"]))
            for r in est.rows("throughput")
        ]  # fmt: skip
        rows += [
            _row(r["scenario"], r["precision"], total,
                 *est.interval((r["scenario"], r["precision"]), "v_total", COLOCATED))
            for r in est.rows("v_total") if r["subject"] == COLOCATED
        ]  # fmt: skip
    else:
        rows = [
            _row(r["scenario"], r["precision"], r["label"], r["throughput_tok_s"])
            for r in runs.to_dict("records")
        ]
        rows += [
            _row(r["scenario"], r["precision"], total, r["v_total"])
            for r in scaling.to_dict("records")
            if r["layout"] == COLOCATED
        ]
    data = _frame(rows)
    return data[data["bar"].isin(throughput_bars(names))].reset_index(drop=True)


def latency_data(runs: pd.DataFrame, est: Estimates, names: list[str]) -> pd.DataFrame:
    """TTFT and TPOT p50 of each slot alone and co-located (``bar`` "<metric>|<label>");
    whiskers: the answer's interval, or with one block the run's p50 → p90."""
    by_run: dict[tuple, list[dict]] = {}
    for r in runs.to_dict("records"):
        by_run.setdefault((r["scenario"], r["precision"], r["layout"], r["slot"]), []).append(r)
    rows = []
    for metric in ("ttft", "tpot"):
        if est:
            for a in est.rows(f"{metric}_p50"):
                key, (layout, slot) = (a["scenario"], a["precision"]), _subject(a["subject"])
                value, lo, hi = est.interval(key, f"{metric}_p50", a["subject"])
                same = by_run.get((*key, layout, slot), [])
                if not math.isfinite(hi) and len(same) == 1 and a["n"] == 1:
                    hi = _p90(same[0], metric, value)
                rows.append(_row(key[0], key[1], f"{metric}|{run_label(layout, slot)}",
                                 value, lo, hi))  # fmt: skip
        else:
            for r in runs.to_dict("records"):
                value = r[f"{metric}_ms_p50"]
                rows.append(_row(r["scenario"], r["precision"], f"{metric}|{r['label']}", value,
                                 NAN, _p90(r, metric, number(value))))  # fmt: skip
    data = _frame(rows)
    bars = latency_bars(names)
    return data[data["bar"].str.split("|").str[1].isin(bars)].reset_index(drop=True)


def _p90(run: dict, metric: str, p50: float) -> float:
    p90 = number(run.get(f"{metric}_ms_p90"))
    return p90 if math.isfinite(p90) and math.isfinite(p50) and p90 >= p50 else NAN


def scaling_data(
    scaling: pd.DataFrame,
    interference: pd.DataFrame,
    keys: list[Key],
    flagged: set[Key],
    est: Estimates,
    single: bool,
    names: list[str],
) -> pd.DataFrame:
    """Scaling efficiency (in %, ``bar`` "efficiency") and each model's throughput slowdown
    (``bar`` the model) per scenario × precision and free co-located layout (``x``: the key,
    ⚠ where flagged, and the layout's models where the data have several such layouts);
    ``k``: the layout's number of models."""
    if est:
        found = [(key, lay) for key in keys for lay in est.subjects(key, "scaling_efficiency")]
    else:
        found = unique_in_order(
            ((r["scenario"], r["precision"]), r["layout"]) for r in scaling.to_dict("records")
        )
    found = [(key, lay) for key, lay in found if lay in group_layouts_of([lay], COLOCATED)]
    several = len({lay for _, lay in found}) > 1

    def name(key: Key, layout: str, bad: bool) -> str:
        x = key[0] if single else f"{key[0]}\n{key[1]}"
        if several:
            x += "\n" + "+".join(members(layout, names))
        return x + (" ⚠" if bad else "")

    rows = []
    if est:
        for key, layout in found:
            x, k = name(key, layout, key in flagged), len(members(layout, names))
            eff = [100 * v for v in est.interval(key, "scaling_efficiency", layout)]
            rows.append(_row(x, "", "efficiency", *eff) | {"k": k})
            rows += [
                _row(x, "", slot, *est.interval(key, "slowdown_throughput", f"{layout}/{slot}"))
                | {"k": k}
                for slot in members(layout, names)
            ]
    else:
        recs = {(r["scenario"], r["precision"], r["layout"]): r for r in scaling.to_dict("records")}
        slow = {
            (r["scenario"], r["precision"], r["layout"], r["victim"]): r["slowdown_throughput"]
            for r in interference.to_dict("records")
        }
        for key, layout in found:
            r = recs[(*key, layout)]
            x, k = name(key, layout, not r["valid"]), len(members(layout, names))
            rows.append(_row(x, "", "efficiency", 100 * number(r["scaling_efficiency"])) | {"k": k})
            rows += [
                _row(x, "", slot, slow.get((*key, layout, slot))) | {"k": k}
                for slot in members(layout, names)
            ]
    data = pd.DataFrame(rows, columns=[*COLUMNS, "k"])
    return data[np.isfinite(data["value"].astype(float))].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The figures


def _facets(rows: int, precisions: list[str], wide: float, height: float, **share):
    """A grid of ``rows`` x one column per precision; ``wide`` is one precision's width, and
    more precisions widen the figure less than in proportion (up to figures.MAX_WIDTH_IN)."""
    return plt.subplots(
        rows, len(precisions), figsize=(width(wide * len(precisions) ** 0.8), height),
        squeeze=False,
        **share,
    )  # fmt: skip


def throughput_figure(
    data: pd.DataFrame,
    scenarios: list[str],
    precisions: list[str],
    flagged: set[Key],
    names: list[str],
    compact: bool = False,
) -> plt.Figure | str:
    """Throughput bars per scenario, a facet per precision; ``compact``: the small version a
    verdict shows beside its text (one scenario)."""
    if data.empty:
        return "No run produced a throughput figure."
    bars, colors = throughput_bars(names), palette(names)
    wide, high = (3.2, 3.2) if compact else (max(7.0, 2.6 * len(scenarios)), 4.0)
    fig, axes = _facets(1, precisions, wide, high, sharey=True)
    top = 0.0
    for ax, precision in zip(axes[0], precisions, strict=True):
        sub = data[data["facet"] == precision]
        if sub.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        top = max(top, draw_bars(ax, sub, scenarios, bars, colors, "%.0f"))
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([tick(s, precision, flagged) for s in scenarios])
        ax.set_title(precision if len(precisions) > 1 else "")
        ax.set_ylabel("output tokens/s")
        readable(ax)
    axes[0][0].set_ylim(0, max(top, 1.0) * 1.12)
    legend(fig, bars, data["bar"], colors)
    return fig


def latency_figure(
    data: pd.DataFrame,
    scenarios: list[str],
    precisions: list[str],
    flagged: set[Key],
    names: list[str],
) -> plt.Figure | str:
    if data.empty:
        return "No run produced latency figures."
    bars, colors = latency_bars(names), palette(names)
    fig, axes = _facets(2, precisions, max(7.0, 2.2 * len(scenarios)), 6.0, sharex="col")
    metric_of = data["bar"].str.split("|").str[0]
    for col, precision in enumerate(precisions):
        for row, metric in enumerate(("ttft", "tpot")):
            ax = axes[row][col]
            sub = data[(data["facet"] == precision) & (metric_of == metric)].copy()
            sub["bar"] = sub["bar"].str.split("|").str[1]
            if sub.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            top = draw_bars(ax, sub, scenarios, bars, colors)
            ax.set_ylim(0, max(top, 1.0) * 1.08)
            ax.set_xticks(range(len(scenarios)))
            ax.set_xticklabels([tick(s, precision, flagged) for s in scenarios])
            ax.set_ylabel(f"{metric.upper()} p50 (ms)")
            if row == 0 and len(precisions) > 1:
                ax.set_title(precision)
            readable(ax)
    legend(fig, bars, data["bar"].str.split("|").str[1], colors)
    return fig


def scaling_figure(data: pd.DataFrame, names: list[str]) -> plt.Figure | str:
    """Scaling efficiency (left) and each model's throughput slowdown (right) per scenario ×
    precision and free co-located layout (``data``: scaling_data's)."""
    eff = data[data["bar"] == "efficiency"]
    slow = data[data["bar"] != "efficiency"]
    if data.empty:
        return "No scenario has both alone and co-located results, so there is no scaling yet."
    order = unique_in_order(data["x"])
    colors = slot_colors(names)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(width(max(8.0, 1.6 * len(order) * 2)), 3.6))
    top = draw_bars(ax1, eff, order, ["efficiency"], {"efficiency": EFFICIENCY_COLOR}, "%.0f%%")
    ax1.axhline(100, color="#333333", lw=1, ls="--")
    ks = set(data["k"].dropna().astype(int))
    # Where every layout drawn has k models, the k-th adds nothing at 100/k % efficiency.
    lines = [(100, " no interference")]
    if len(ks) == 1 and min(ks) > 1:
        (k,) = ks
        nothing = 100 / k
        ax1.axhline(nothing, color="#aa3333", lw=1, ls=":")
        lines.append((nothing, " no gain"))
    for y, text in lines:
        ax1.text(1.0, y, text, transform=ax1.get_yaxis_transform(), va="center", fontsize=8)
    ax1.set_ylim(0, max(110.0, top * 1.1))
    if len(names) == 2:
        ax1.set_title(f"Scaling efficiency V2 / ({' + '.join(f'V1_{s}' for s in names)})")
    else:
        ax1.set_title("Scaling efficiency V_total / (sum of the models' V1)")
    ax1.set_ylabel("%")
    hues = [s for s in names if s in set(slow["bar"])]
    top = draw_bars(ax2, slow, order, hues, colors, "%.2f")
    if not slow.empty:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in hues]
        ax2.legend(handles, hues, title="model", frameon=False, fontsize=8,
                   loc="upper left", bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    ax2.axhline(1.0, color="#333333", lw=1, ls="--")
    ax2.set_ylim(0, max(1.2, top * 1.15))
    ax2.set_title("Slowdown: alone / co-located throughput")
    ax2.set_ylabel("×")
    for ax in (ax1, ax2):
        ax.set_xticklabels(order)
        ax.set_xlabel("")
        readable(ax)
    fig.tight_layout()
    return fig


def has_whiskers(data: pd.DataFrame) -> bool:
    """Whether any bar of ``data`` has a whisker (for the caption)."""
    return bool(data[["lo", "hi"]].map(is_finite).any(axis=None)) if len(data) else False
