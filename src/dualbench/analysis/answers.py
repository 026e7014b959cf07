"""answers.csv: every per-scenario answer, a point estimate with its interval over blocks.

The per-block figures come from runs.csv (one block: every layout once, back to back) and, for
tokens per joule, energy.csv; the interval methods are dualbench.analysis.intervals':
- paired over blocks, for what compares runs of the same block: for each group layout L of k
  models (dualbench.analysis.scaling's curve and matrix), its growth per added model, scaling
  efficiency and each member's slowdown in throughput, TTFT, TPOT and E2E p50 (subject
  ``L/<victim>``); and the schedule comparisons, a lockstep or single-thread layout against
  the free co-location of the same models (``schedule_*_ratio``);
- unpaired, for what compares runs of different blocks: INT4 against its dense baseline
  (the two precisions' blocks ran at different times);
- over values, for a figure of one layout: V1 per model, V_total per group layout, tokens
  per joule, a lockstep layout's hand-over time, and each run's throughput, TTFT/TPOT/E2E p50
  and TPOT sd (subject ``<layout>/<slot>``).

Model names come from the data (dualbench.analysis.layouts). A block enters an answer only
where every run that answer needs is valid; ``n`` says how many did. Interference answers
(efficiency, slowdowns: 1.00 means none) and schedule comparisons (1.00: the schedule changes
nothing) carry a verdict in words.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from dualbench.analysis.columns import ANSWER_COLUMNS, INT4_RATIOS
from dualbench.analysis.int4 import SUMMED, int4_baseline
from dualbench.analysis.intervals import (
    NO_INTERFERENCE,
    Interval,
    paired_ratio,
    unpaired_ratio,
    value_interval,
    verdict,
)
from dualbench.analysis.layouts import data_layouts, data_models, group_layouts, members, sum_slot
from dualbench.analysis.scaling import LATENCY_SLOWDOWNS
from dualbench.config.vocabulary import (
    COLOCATED,
    LOCKSTEP,
    alone_layout,
    group_layout,
    layout_kind,
    layout_schedule,
)

# Each run's own figures, as answers over blocks: runs.csv column -> (answer, unit).
RUN_FIGURES = {
    "throughput_tok_s": ("throughput", "tok/s"),
    "ttft_ms_p50": ("ttft_p50", "ms"),
    "tpot_ms_p50": ("tpot_p50", "ms"),
    "e2e_ms_p50": ("e2e_p50", "ms"),
    "tpot_ms_sd": ("tpot_sd", "ms"),
}
# A schedule comparison's words where its interval lies inside 1 ± the margin.
SAME_AS_FREE = "no detectable difference from free co-location"
# Per member of a scheduled layout: runs.csv column -> the answer comparing it with free.
SCHEDULE_SLOT_RATIOS = {
    "tpot_ms_p50": "schedule_tpot_p50_ratio",
    "tpot_ms_sd": "schedule_tpot_sd_ratio",
}


def answers_table(
    runs: pd.DataFrame,
    energy: pd.DataFrame,
    confidence: float = 0.95,
    margin: float = 0.03,
) -> pd.DataFrame:
    """Every answer of every scenario and precision (and INT4 against its baseline)."""
    rows: list[dict] = []

    def add(
        key,
        answer,
        subject,
        unit,
        interval: Interval,
        judge: str | None = None,
        shift=0.0,
        per=1,
    ):
        """One answer; ``judge``: the words for "no effect" when the ratio gets a verdict;
        ``shift``, ``per``: the estimate and bounds reported as (value + shift) / per."""
        judged = verdict(interval, margin, 1.0, confidence, judge) if judge else None
        rows.append(
            {
                "scenario": key[0],
                "precision": key[1],
                "answer": answer,
                "subject": subject,
                "unit": unit,
                "estimate": (interval.estimate + shift) / per,
                "lo": (interval.lo + shift) / per,
                "hi": (interval.hi + shift) / per,
                "n": interval.n,
                "confidence": confidence,
                "method": interval.method,
                "verdict_kind": judged.kind if judged else "",
                "verdict": judged.text if judged else "",
            }
        )

    names = data_models(runs)
    for key, group in runs.groupby(["scenario", "precision"], sort=False):
        blocks = _Blocks(_by_block(group))
        _run_answers(key, group, blocks, add, confidence)
        _scaling_answers(key, group, blocks, names, add, confidence)
        _schedule_answers(key, group, blocks, names, energy, add, confidence)
        _energy_answers(key, energy, add, confidence)
    _int4_answers(runs, names, add, confidence)
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def _by_block(group: pd.DataFrame) -> dict[int, dict[tuple[str, str], dict]]:
    """{repeat: {(layout, slot): runs.csv row}} of one scenario and precision."""
    blocks: dict[int, dict] = {}
    for row in group.to_dict("records"):
        blocks.setdefault(int(row["repeat"]), {})[(row["layout"], row["slot"])] = row
    return dict(sorted(blocks.items()))


def _value(block: dict, layout: str, slot: str, column: str) -> float:
    """A valid run's figure, NaN where the run is missing, failed or invalid (the paired
    intervals then drop the block)."""
    row = block.get((layout, slot))
    if row is None or not _is_true(row.get("valid")):
        return math.nan
    value = pd.to_numeric(row.get(column), errors="coerce")
    return float(value) if value is not None and not pd.isna(value) else math.nan


def _is_true(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


class _Blocks:
    """One scenario and precision's blocks, read as per-block series (one entry per block,
    NaN where the run is missing, failed or invalid)."""

    def __init__(self, blocks: dict[int, dict]):
        self.blocks = blocks

    def series(self, layout: str, slot: str, column: str = "throughput_tok_s") -> np.ndarray:
        return np.array([_value(b, layout, slot, column) for b in self.blocks.values()])

    def total(self, layout: str, group, column: str = "throughput_tok_s") -> np.ndarray:
        """The sum over ``group``'s runs in ``layout``: NaN in a block where any is (such a
        block pairs with nothing)."""
        return np.sum([self.series(layout, m, column) for m in group], axis=0)

    def all_valid(self, layout: str, group) -> list[bool]:
        """Per block, whether every run of ``group`` in ``layout`` is there and valid."""
        return [
            all(_is_true((b.get((layout, m)) or {}).get("valid")) for m in group)
            for b in self.blocks.values()
        ]


def _run_answers(key, group: pd.DataFrame, blocks: _Blocks, add: Callable, confidence) -> None:
    """Each run's own figures over the blocks, for the report's bars and whiskers."""
    for layout in data_layouts(group):
        for slot in sorted(set(group.loc[group.layout == layout, "slot"])):
            for column, (name, unit) in RUN_FIGURES.items():
                interval = value_interval(blocks.series(layout, slot, column), confidence)
                add(key, name, f"{layout}/{slot}", unit, interval)


def _scaling_answers(
    key, group: pd.DataFrame, blocks: _Blocks, names, add: Callable, confidence: float
) -> None:
    """V1 per model; per group layout its V_total, growth per added model, scaling efficiency
    and each member's slowdowns (scaling.csv and interference.csv over the blocks)."""
    alone = {m: blocks.series(alone_layout(m), m) for m in data_models(group)}
    for m, values in alone.items():
        add(key, "v1", m, "tok/s", value_interval(values, confidence))
    for layout in group_layouts(group):
        team = members(layout, names)
        k = len(team)
        v1_sum = np.sum([blocks.series(alone_layout(m), m) for m in team], axis=0)
        v_total = blocks.total(layout, team)
        add(key, "v_total", layout, "tok/s", value_interval(v_total, confidence))
        # (v_total / v1_mean - 1) / (k - 1): the paired ratio's bounds map through it too.
        growth = paired_ratio(v_total, v1_sum / k, confidence)
        add(key, "growth_per_model", layout, "fraction", growth, shift=-1.0, per=k - 1)
        efficiency = paired_ratio(v_total, v1_sum, confidence)
        add(key, "scaling_efficiency", layout, "ratio", efficiency, judge=NO_INTERFERENCE)
        for victim in team:
            subject = f"{layout}/{victim}"
            alone_v = blocks.series(alone_layout(victim), victim)
            interval = paired_ratio(alone_v, blocks.series(layout, victim), confidence)
            add(key, "slowdown_throughput", subject, "ratio", interval, judge=NO_INTERFERENCE)
            for column in LATENCY_SLOWDOWNS:
                inside = blocks.series(layout, victim, column)
                interval = paired_ratio(
                    inside, blocks.series(alone_layout(victim), victim, column), confidence
                )
                name = f"slowdown_{column.removesuffix('_ms_p50')}_p50"
                add(key, name, subject, "ratio", interval, judge=NO_INTERFERENCE)


def free_layout(layout: str, names) -> str:
    """The free co-location of the models of ``layout`` (itself for a free layout)."""
    return group_layout(COLOCATED, members(layout, names), names)


def _schedule_answers(
    key,
    group: pd.DataFrame,
    blocks: _Blocks,
    names,
    energy: pd.DataFrame | None,
    add: Callable,
    confidence: float,
) -> None:
    """Each lockstep or single-thread layout against the free co-location of the same models
    in the same blocks (paired): total throughput, tokens per joule, and per model its TPOT
    p50 and TPOT sd; for lockstep, the hand-over time of its turns."""
    present = set(group["layout"])
    for layout in group_layouts(group):
        if layout_schedule(layout) == "free":
            continue
        team = members(layout, names)
        free = free_layout(layout, names)
        if free not in present:
            continue
        ratio = paired_ratio(blocks.total(layout, team), blocks.total(free, team), confidence)
        add(key, "schedule_throughput_ratio", layout, "ratio", ratio, judge=SAME_AS_FREE)
        tokens_j = {
            lay: _run_tokens_per_j(key, lay, team, blocks, energy) for lay in (layout, free)
        }
        ratio = paired_ratio(tokens_j[layout], tokens_j[free], confidence)
        add(key, "schedule_tokens_per_j_ratio", layout, "ratio", ratio, judge=SAME_AS_FREE)
        for slot in team:
            for column, name in SCHEDULE_SLOT_RATIOS.items():
                ratio = paired_ratio(
                    blocks.series(layout, slot, column),
                    blocks.series(free, slot, column),
                    confidence,
                )
                add(key, name, f"{layout}/{slot}", "ratio", ratio, judge=SAME_AS_FREE)
        if layout_kind(layout) == LOCKSTEP:
            # Every slot row of a run holds the run's hand-overs: the first member's will do.
            handoff = blocks.series(layout, team[0], "handoff_us_mean")
            add(key, "handoff_us", layout, "us", value_interval(handoff, confidence))


def _run_tokens_per_j(key, layout: str, team, blocks: _Blocks, energy) -> np.ndarray:
    """Per block, energy.csv's tokens per joule of the run of ``layout``; NaN where it has
    none or a run of it is missing or invalid."""
    out = np.full(len(blocks.blocks), math.nan)
    if energy is None or energy.empty:
        return out
    sel = energy[
        (energy.scenario == key[0]) & (energy.precision == key[1]) & (energy.layout == layout)
    ]
    by_repeat = {
        int(r["repeat"]): pd.to_numeric(r.get("tokens_per_j"), errors="coerce")
        for r in sel.to_dict("records")
    }
    valid = blocks.all_valid(layout, team)
    for i, repeat in enumerate(blocks.blocks):
        value = by_repeat.get(repeat)
        if valid[i] and value is not None and not pd.isna(value):
            out[i] = float(value)
    return out


def _energy_answers(key, energy: pd.DataFrame, add: Callable, confidence: float) -> None:
    """Tokens per joule of each layout, over blocks, where the run had an energy source."""
    if energy is None or energy.empty:
        return
    sel = energy[(energy.scenario == key[0]) & (energy.precision == key[1])]
    for layout, runs in sel.groupby("layout", sort=False):
        values = pd.to_numeric(runs["tokens_per_j"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(values).any():
            add(key, "tokens_per_j", layout, "tok/J", value_interval(values, confidence))


def _int4_answers(runs: pd.DataFrame, names, add: Callable, confidence: float) -> None:
    """INT4 / baseline of every layout and slot, and of each group layout's sum (subject
    "<layout>/A+B"), per scenario: unpaired over blocks, since the precisions' blocks did not
    run side by side."""
    baseline = int4_baseline(runs["precision"].unique()) if len(runs) else None
    if baseline is None:
        return
    unit = f"ratio to {baseline}"
    for scenario, group in runs.groupby("scenario", sort=False):
        base, int4 = (_Blocks(_by_block(group[group.precision == p])) for p in (baseline, "int4"))
        subjects = [
            (layout, s)
            for layout in data_layouts(group)
            for s in sorted(set(group.loc[group.layout == layout, "slot"]))
        ]
        for metric in INT4_RATIOS:
            for layout, s in subjects:
                interval = unpaired_ratio(
                    int4.series(layout, s, metric), base.series(layout, s, metric), confidence
                )
                add((scenario, "int4"), f"int4_{metric}_ratio", f"{layout}/{s}", unit, interval)
            if metric not in SUMMED:
                continue
            for layout in group_layouts(group):
                team = members(layout, names)
                interval = unpaired_ratio(
                    int4.total(layout, team, metric), base.total(layout, team, metric), confidence
                )
                subject = f"{layout}/{sum_slot(team)}"
                add((scenario, "int4"), f"int4_{metric}_ratio", subject, unit, interval)
