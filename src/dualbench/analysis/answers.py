"""answers.csv: every per-scenario answer, a point estimate with its interval over blocks.

The per-block figures come from runs.csv (one block: every layout once, back to back); the
interval methods are dualbench.analysis.intervals':
- paired over blocks, for what compares runs of the same block (alone against co-located):
  growth, scaling efficiency and each slot's slowdown in throughput, TTFT, TPOT and E2E p50;
- unpaired, for what compares runs of different blocks: INT4 against its dense baseline
  (the two precisions' blocks ran at different times);
- over values, for a figure of one layout: V1 per slot, V2, tokens per joule, and each run's
  throughput and TTFT/TPOT/E2E p50 (subject ``<layout>/<slot>``).

A block enters an answer only where every run that answer needs is valid; ``n`` says how many
did. Interference answers (efficiency, slowdowns: 1.00 means none) carry a verdict in words.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from dualbench.analysis.columns import ANSWER_COLUMNS, INT4_RATIOS
from dualbench.analysis.int4 import PAIR, int4_baseline
from dualbench.analysis.intervals import (
    Interval,
    paired_ratio,
    unpaired_ratio,
    value_interval,
    verdict,
)
from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout

# The latency slowdowns: co-located p50 / alone p50 (above 1: slower when co-located).
LATENCY_SLOWDOWNS = ("ttft_ms_p50", "tpot_ms_p50", "e2e_ms_p50")
# Each run's own figures, as answers over blocks: runs.csv column -> (answer, unit).
RUN_FIGURES = {
    "throughput_tok_s": ("throughput", "tok/s"),
    "ttft_ms_p50": ("ttft_p50", "ms"),
    "tpot_ms_p50": ("tpot_p50", "ms"),
    "e2e_ms_p50": ("e2e_p50", "ms"),
}


def answers_table(
    runs: pd.DataFrame,
    energy: pd.DataFrame,
    confidence: float = 0.95,
    margin: float = 0.03,
) -> pd.DataFrame:
    """Every answer of every scenario and precision (and INT4 against its baseline)."""
    rows: list[dict] = []

    def add(key, answer, subject, unit, interval: Interval, judge=False, shift=0.0):
        judged = verdict(interval, margin=margin, confidence=confidence) if judge else None
        rows.append(
            {
                "scenario": key[0],
                "precision": key[1],
                "answer": answer,
                "subject": subject,
                "unit": unit,
                "estimate": interval.estimate + shift,
                "lo": interval.lo + shift,
                "hi": interval.hi + shift,
                "n": interval.n,
                "confidence": confidence,
                "method": interval.method,
                "verdict_kind": judged.kind if judged else "",
                "verdict": judged.text if judged else "",
            }
        )

    for key, group in runs.groupby(["scenario", "precision"], sort=False):
        blocks = _by_block(group)
        _scaling_answers(key, blocks, add, confidence)
        _energy_answers(key, energy, add, confidence)
    _int4_answers(runs, add, confidence)
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


def _scaling_answers(key, blocks: dict, add: Callable, confidence: float) -> None:
    def series(layout: str, slot: str, column: str = "throughput_tok_s") -> np.ndarray:
        return np.array([_value(b, layout, slot, column) for b in blocks.values()])

    alone = {s: series(alone_layout(s), s) for s in SLOT_NAMES}
    together = {s: series(COLOCATED, s) for s in SLOT_NAMES}
    # Each run's own figures over the blocks, for the report's bars and whiskers.
    for layout, s in [(alone_layout(s), s) for s in SLOT_NAMES] + [
        (COLOCATED, s) for s in SLOT_NAMES
    ]:
        for column, (name, unit) in RUN_FIGURES.items():
            add(
                key,
                name,
                f"{layout}/{s}",
                unit,
                value_interval(series(layout, s, column), confidence),
            )
    # Sums and means stay NaN where any slot is: such a block pairs with nothing.
    v1_sum = np.sum([alone[s] for s in SLOT_NAMES], axis=0)
    v2 = np.sum([together[s] for s in SLOT_NAMES], axis=0)
    for s in SLOT_NAMES:
        add(key, "v1", s, "tok/s", value_interval(alone[s], confidence))
    add(key, "v2", "all", "tok/s", value_interval(v2, confidence))
    v1_mean = v1_sum / len(SLOT_NAMES)
    add(key, "growth", "all", "fraction", paired_ratio(v2, v1_mean, confidence), shift=-1.0)
    add(
        key,
        "scaling_efficiency",
        "all",
        "ratio",
        paired_ratio(v2, v1_sum, confidence),
        judge=True,
    )
    for s in SLOT_NAMES:
        interval = paired_ratio(alone[s], together[s], confidence)
        add(key, "slowdown_throughput", s, "ratio", interval, judge=True)
        for column in LATENCY_SLOWDOWNS:
            co = series(COLOCATED, s, column)
            interval = paired_ratio(co, series(alone_layout(s), s, column), confidence)
            add(key, f"slowdown_{column.removesuffix('_ms_p50')}_p50", s, "ratio", interval, True)


def _energy_answers(key, energy: pd.DataFrame, add: Callable, confidence: float) -> None:
    """Tokens per joule of each layout, over blocks, where the run had an energy source."""
    if energy is None or energy.empty:
        return
    sel = energy[(energy.scenario == key[0]) & (energy.precision == key[1])]
    for layout, runs in sel.groupby("layout", sort=False):
        values = pd.to_numeric(runs["tokens_per_j"], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(values).any():
            add(key, "tokens_per_j", layout, "tok/J", value_interval(values, confidence))


def _int4_answers(runs: pd.DataFrame, add: Callable, confidence: float) -> None:
    """INT4 / baseline of every layout, slot and the co-located pair, per scenario: unpaired
    over blocks, since the precisions' blocks did not run side by side."""
    baseline = int4_baseline(runs["precision"].unique()) if len(runs) else None
    if baseline is None:
        return
    for scenario, group in runs.groupby("scenario", sort=False):
        base, int4 = (_by_block(group[group.precision == p]) for p in (baseline, "int4"))
        subjects = [(layout, s) for layout in _layouts(group) for s in _slots(group, layout)]
        for metric in INT4_RATIOS:
            for layout, s in subjects:
                q = [_value(b, layout, s, metric) for b in int4.values()]
                d = [_value(b, layout, s, metric) for b in base.values()]
                add(
                    (scenario, "int4"),
                    f"int4_{metric}_ratio",
                    f"{layout}/{s}",
                    f"ratio to {baseline}",
                    unpaired_ratio(q, d, confidence),
                )
            if metric in ("throughput_tok_s", "peak_mem_bytes"):
                q = [_pair_sum(b, metric) for b in int4.values()]
                d = [_pair_sum(b, metric) for b in base.values()]
                add(
                    (scenario, "int4"),
                    f"int4_{metric}_ratio",
                    PAIR,
                    f"ratio to {baseline}",
                    unpaired_ratio(q, d, confidence),
                )


def _pair_sum(block: dict, metric: str) -> float:
    return float(sum(_value(block, COLOCATED, s, metric) for s in SLOT_NAMES))


def _layouts(group: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(group["layout"]))


def _slots(group: pd.DataFrame, layout: str) -> list[str]:
    return list(dict.fromkeys(group.loc[group.layout == layout, "slot"]))
