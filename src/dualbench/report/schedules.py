"""The report's "Schedules" section: where lockstep or single-thread layouts ran, how their
schedule compares with the same models co-located free-running in the same blocks.

- a table of answers.csv's schedule comparisons per scenario × precision and scheduled layout
  L against its free layout F (vocabulary.group_layout("colocated", members)): total
  throughput L / F (``schedule_throughput_ratio``), tokens per joule L / F
  (``schedule_tokens_per_j_ratio``), lockstep's hand-off per turn (``handoff_us``), and per
  model TPOT p50 and TPOT sd L / F (``schedule_tpot_p50_ratio``, ``schedule_tpot_sd_ratio``
  of "L/<slot>"), each with its interval and verdict;
- one sentence per L saying whether alternation paid for its hand-off on this machine
  (``pay_sentence``): the throughput ratio's verdict decides ("effect" above or below 1×,
  "equivalent"), else its interval where it excludes 1×, else it is not settled;
- for single-thread layouts, a timeline of one block's run (``timeline_figure``): each
  model's generate calls as bars from submit to last token (requests.csv: ``submit_s``,
  ``queue_ms``, ``ttft_ms``, ``e2e_ms`` of each call), beside the free co-located run of the
  same block, so a reader sees the calls take turns instead of overlapping. The view is the
  start of the co-located window, long enough for a few calls of each model (``CALLS_SHOWN``).

Every number comes from the tables; the section is None where no such layout ran.
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

from dualbench.config.vocabulary import COLOCATED, LOCKSTEP, SINGLE_THREAD, group_layout  # noqa: E402
from dualbench.report.estimates import Estimates, blocks_note, cell, verdict_class  # noqa: E402
from dualbench.report.figures import (  # noqa: E402
    LABEL_PT,
    embedded_figure,
    figure_style,
    readable,
    slot_colors,
    width,
)
from dualbench.report.format import DASH, is_finite, number  # noqa: E402
from dualbench.report.layouts import group_label, group_layouts_of, kind_of, members

Key = tuple[str, str]
SCHEDULED = (LOCKSTEP, SINGLE_THREAD)
# Calls per model in a timeline's view: enough to see the pattern, few enough to see each call.
CALLS_SHOWN = 6
CALL_COLUMNS = ["slot", "call", "start_s", "first_s", "end_s"]


def scheduled_layouts(runs: pd.DataFrame) -> list[str]:
    """The lockstep and single-thread layouts of the data, in table order."""
    return [lay for lay in group_layouts_of(runs["layout"]) if kind_of(lay) in SCHEDULED]


def free_layout(layout: str, names: list[str]) -> str:
    """The free co-located layout of ``layout``'s models."""
    return group_layout(COLOCATED, members(layout, names), names)


# ---------------------------------------------------------------------------------------------
# The table and the sentences


def _th(text: str, colspan: int = 1, rowspan: int = 1) -> dict[str, Any]:
    return {"text": text, "colspan": colspan, "rowspan": rowspan}


def _blank() -> dict[str, Any]:
    return cell("", "text")


def schedule_table(
    pairs: list[tuple[Key, str]], est: Estimates, names: list[str]
) -> dict[str, Any]:
    """A row per (key, scheduled layout) and model: the layout's figures on its first row."""
    rows = []
    for key, layout in pairs:
        lockstep = kind_of(layout) == LOCKSTEP
        for i, slot in enumerate(members(layout, names)):
            first = i == 0
            subject = f"{layout}/{slot}"
            rows.append(
                [
                    cell(key[0] if first else "", "key"),
                    cell(key[1] if first else "", "text"),
                    cell(group_label(layout, names) if first else "", "text"),
                    cell(group_label(free_layout(layout, names), names) if first else "", "text"),
                    cell(blocks_note(est.n(key, "schedule_throughput_ratio", layout)), "text")
                    if first
                    else _blank(),
                    est.cell(key, "schedule_throughput_ratio", layout, "ratio", strong=True)
                    if first
                    else _blank(),
                    est.cell(key, "schedule_tokens_per_j_ratio", layout, "ratio")
                    if first
                    else _blank(),
                    (est.cell(key, "handoff_us", layout, "ms") if lockstep else cell(DASH))
                    if first
                    else _blank(),
                    cell(slot, "text"),
                    est.cell(key, "schedule_tpot_p50_ratio", subject, "ratio"),
                    est.cell(key, "schedule_tpot_sd_ratio", subject, "ratio"),
                ]
            )
    return {
        "title": "Schedule against free co-location",
        "note": (
            "Each ratio is the scheduled layout over the same models co-located free-running "
            "in the same blocks (paired by block), with its "
            f"{est.confidence_text} interval where two blocks or more and its verdict; above "
            "1× the schedule gives more throughput, more tokens per joule, or a longer / less "
            "steady decode step (TPOT p50, TPOT sd). Hand-off: the time from one model "
            "releasing the turn to the next taking it (lockstep only)."
        ),
        "head": [
            [
                _th("Scenario", rowspan=2),
                _th("Precision", rowspan=2),
                _th("Layout", rowspan=2),
                _th("Against", rowspan=2),
                _th("Blocks", rowspan=2),
                _th("Per layout", 3),
                _th("Slot", rowspan=2),
                _th("Per model", 2),
            ],
            [
                _th("Throughput ratio"),
                _th("Tokens/J ratio"),
                _th("Hand-off (µs)"),
                _th("TPOT p50 ratio"),
                _th("TPOT sd ratio"),
            ],
        ],
        "rows": rows,
    }


def _paid(est: Estimates, key: Key, layout: str) -> str | None:
    """ "paid", "cost", "even" or "open" (not settled); None without a comparison."""
    row = est.get(key, "schedule_throughput_ratio", layout)
    if row is None or row["n"] <= 0:
        return None
    value, lo, hi = est.interval(key, "schedule_throughput_ratio", layout)
    kind = row["verdict_kind"]
    if kind == "effect" and math.isfinite(value):
        return "paid" if value > 1 else "cost"
    if kind == "equivalent":
        return "even"
    # Without a verdict (older answers), an interval that excludes 1× still decides.
    if not kind and math.isfinite(lo) and lo > 1:
        return "paid"
    if not kind and math.isfinite(hi) and hi < 1:
        return "cost"
    return "open"


def pay_sentence(key: Key, layout: str, est: Estimates, names: list[str]) -> dict[str, Any]:
    """Whether the schedule of ``layout`` paid for its hand-off against free co-location, as
    (text, CSS class) parts like the headline's sentences."""
    lockstep = kind_of(layout) == LOCKSTEP
    name = f"{'/'.join(key)}, {group_label(layout, names)}"
    free = group_label(free_layout(layout, names), names)
    outcome = _paid(est, key, layout)
    if outcome is None:
        text = (
            f"{name}: no comparison with free co-location (no block holds a valid run of both "
            f"this layout and {free}: see the failed and invalid runs)."
        )
        return {"parts": [(text, "")], "text": text, "warn": True, "outcome": None}
    what = "alternation" if lockstep else "driving the models from one thread"
    cost = "its hand-off" if lockstep else "giving up one process per model"
    claim = {
        "paid": f"{what} paid for {cost} on this machine",
        "cost": f"{what} did not pay for {cost} on this machine",
        "even": f"{what} neither paid nor cost on this machine",
        "open": f"whether {what} pays for {cost} on this machine is not settled",
    }[outcome]
    cls = {"paid": "v-equivalent", "cost": "v-effect"}.get(outcome, verdict_class("inconclusive"))
    parts: list[tuple[str, str]] = [(f"{name}: ", ""), (claim, cls), (" — total throughput ", "")]
    parts += est.judged(key, "schedule_throughput_ratio", layout, "ratio")
    parts.append((f" of {free}", ""))
    if lockstep:
        handoff = est.figure(key, "handoff_us", layout, "ms")
        if handoff != DASH:
            parts.append((f", hand-off {handoff} µs per turn", ""))
    steadier = []
    for slot in members(layout, names):
        figure = est.figure(key, "schedule_tpot_sd_ratio", f"{layout}/{slot}", "ratio")
        if figure != DASH:
            steadier.append(f"{slot} {figure}")
    if steadier:
        parts.append(("; TPOT sd " + ", ".join(steadier), ""))
    parts.append((".", ""))
    return {"parts": parts, "text": "".join(t for t, _ in parts), "warn": False, "outcome": outcome}


# ---------------------------------------------------------------------------------------------
# The timeline


def call_bars(requests: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """One row per generate call of the run (``CALL_COLUMNS``), in seconds from the run's
    time origin: its start (submit, plus its queueing where open-loop), first token and last
    token, from requests.csv (a call's sequences share them)."""
    sel = requests[requests["run_id"] == run_id]
    if sel.empty:
        return pd.DataFrame(columns=CALL_COLUMNS)
    queue = sel["queue_ms"].where(np.isfinite(sel["queue_ms"]), 0.0) / 1e3
    start = sel["submit_s"] + queue
    frame = pd.DataFrame(
        {
            "slot": sel["slot"],
            "call": sel["call"],
            "start_s": start,
            "first_s": sel["submit_s"] + sel["ttft_ms"] / 1e3,
            "end_s": sel["submit_s"] + sel["e2e_ms"] / 1e3,
        }
    )
    calls = frame.groupby(["slot", "call"], as_index=False).agg(
        start_s=("start_s", "min"), first_s=("first_s", "min"), end_s=("end_s", "max")
    )
    calls = calls[np.isfinite(calls["start_s"]) & np.isfinite(calls["end_s"])]
    return calls.sort_values(["start_s", "slot"]).reset_index(drop=True)[CALL_COLUMNS]


def _run_of(runs: pd.DataFrame, key: Key, layout: str, repeat: int) -> dict[str, Any] | None:
    sel = runs[
        (runs["scenario"] == key[0])
        & (runs["precision"] == key[1])
        & (runs["layout"] == layout)
        & (runs["repeat"] == repeat)
    ]
    return sel.iloc[0].to_dict() if len(sel) else None


def _view(calls: pd.DataFrame, start: float, k: int) -> float:
    """How long a view from ``start`` must be to hold CALLS_SHOWN calls of each of k models."""
    after = calls[calls["end_s"] >= start].sort_values("start_s")
    if after.empty:
        return math.nan
    shown = after.head(CALLS_SHOWN * k)
    return float(shown["end_s"].max() - start)


def timeline_figure(
    runs: pd.DataFrame, requests: pd.DataFrame, key: Key, layout: str, names: list[str]
):
    """The single-thread run of ``layout`` (left) and the free co-located run of the same
    block (right), their calls as bars; a sentence where requests.csv lacks them."""
    group = members(layout, names)
    free = free_layout(layout, names)
    sel = runs[(runs["scenario"] == key[0]) & (runs["precision"] == key[1])]
    repeats = sorted(set(sel[sel["layout"] == layout]["repeat"]))
    both = [r for r in repeats if r in set(sel[sel["layout"] == free]["repeat"])]
    if not repeats:
        return "No run of this layout."
    repeat = (both or repeats)[0]
    panels = [(layout, _run_of(runs, key, layout, repeat))]
    if both:
        panels.append((free, _run_of(runs, key, free, repeat)))
    bars = {lay: call_bars(requests, run["run_id"]) for lay, run in panels if run}
    if all(b.empty for b in bars.values()):
        return "requests.csv holds no call of these runs."
    # One view length for both panels, so their bars compare: the single-thread run's.
    starts = {lay: number(run["window_start_s"]) for lay, run in panels if run}
    for lay in starts:
        if not math.isfinite(starts[lay]):
            first = bars[lay]["start_s"]
            starts[lay] = float(first.min()) if len(first) else 0.0
    span = _view(bars[layout], starts[layout], len(group)) if layout in bars else math.nan
    if not math.isfinite(span):
        span = max((_view(b, starts[lay], len(group)) for lay, b in bars.items()), default=1.0)
    colors = slot_colors(names)
    fig, axes = plt.subplots(1, len(panels), figsize=(width(5.0 * len(panels)), 0.9 + 0.55 *
                             len(group) + 0.6), squeeze=False, sharey=True)  # fmt: skip
    for ax, (lay, _) in zip(axes[0], panels, strict=True):
        calls = bars.get(lay, pd.DataFrame(columns=CALL_COLUMNS))
        lo, hi = starts.get(lay, 0.0), starts.get(lay, 0.0) + span
        shown = calls[(calls["end_s"] >= lo) & (calls["start_s"] <= hi)]
        for r in shown.to_dict("records"):
            y = group.index(r["slot"]) if r["slot"] in group else None
            if y is None:
                continue
            color = colors.get(r["slot"], "#888888")
            ax.barh(y, r["end_s"] - r["start_s"], left=r["start_s"], height=0.6, color=color,
                    edgecolor="white", linewidth=0.6)  # fmt: skip
            if is_finite(r["first_s"]):
                ax.plot([r["first_s"]] * 2, [y - 0.3, y + 0.3], color="#222222", lw=1.0)
        ax.set_xlim(lo, hi)
        ax.set_yticks(range(len(group)))
        ax.set_yticklabels(group)
        ax.set_ylim(len(group) - 0.4, -0.6)
        ax.set_xlabel("seconds since run start")
        ax.set_title(f"{group_label(lay, names)} · r{repeat}", fontsize=LABEL_PT, loc="left")
        ax.grid(axis="y", visible=False)
        readable(ax)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# The section


def schedules_section(
    runs: pd.DataFrame,
    requests: pd.DataFrame,
    keys: list[Key],
    est: Estimates,
    names: list[str],
) -> dict[str, Any] | None:
    """The section's context, or None where no lockstep or single-thread layout ran.
    ``runs``, ``requests``: as tables.prepare_runs / prepare_requests return them."""
    layouts = scheduled_layouts(runs)
    if not layouts:
        return None
    ran = set(zip(runs["scenario"], runs["precision"], runs["layout"], strict=True))
    pairs = [(key, lay) for key in keys for lay in layouts if (*key, lay) in ran]
    figures = []
    with figure_style():
        for key, lay in pairs:
            if kind_of(lay) != SINGLE_THREAD:
                continue
            title = f"{'/'.join(key)}: {group_label(lay, names)} against free co-location"
            figures.append(
                embedded_figure(
                    title,
                    "Each model's generate calls in one block, from submit to last token "
                    "(tick: first token), at the start of the co-located window: left, every "
                    "model in one thread, its calls one after the other; right, the same "
                    "models co-located free-running, their calls overlapping. Same view "
                    "length on both sides.",
                    lambda k=key, lay=lay: timeline_figure(runs, requests, k, lay, names),
                )
            )
    return {
        "table": schedule_table(pairs, est, names),
        "sentences": [pay_sentence(key, lay, est, names) for key, lay in pairs],
        "figures": figures,
        "kinds": sorted({kind_of(lay) for lay in layouts}),
        "answered": bool(est.rows("schedule_")),
    }
