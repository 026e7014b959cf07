"""When a session has measured enough (rounds: auto): the verdict-bearing answers over the
rounds so far, each with its interval's relative half-width, and whether every one is within
the target.

The verdict-bearing answers are the ones the report's verdict table judges: in every group
layout (co-located, lockstep, single thread) each member's throughput and TPOT-p50 slowdown
and the layout's scaling efficiency, paired within a round; and in an INT4 session, the free
co-located models' summed throughput against the dense baseline (unpaired: the baseline's
rounds ran in another session). They are computed exactly as answers.csv computes them
(dualbench.analysis.answers), from the same run rows, so the session stops on the intervals
the report will print.

The half-width of an interval is (hi − lo) / (2 · estimate): on the log scale the intervals
are symmetric, so this is, to first order, the ± the report shows.

Stopping once every half-width is within the target is a sequential rule (a fixed-width
confidence interval, Chow and Robbins 1965). It is asymptotically consistent, but at the
round counts a benchmark reaches it under-covers: it tends to stop on rounds whose spread
happens to be small. Simulated with paired rounds of a known slowdown and 4% noise per trial,
stopping on the 95% interval itself after at least 3 rounds covered the truth in 89% of
sessions, after 5 in 91%. So the rule checks a stricter interval than it reports: it stops
once the ``CHECK_LEVEL`` (99%) interval's half-width is within the target, after at least
``MIN_AUTO_ROUNDS`` (5) rounds; the 95% intervals then covered in 93–95% of sessions for
noise of 1–6% per trial (tests/unit/test_stopping.py holds it to 92–97%).
"""

from __future__ import annotations

import math

import pandas as pd

from dualbench.analysis.answers import answers_table
from dualbench.analysis.columns import ENERGY_COLUMNS, RUN_COLUMNS
from dualbench.analysis.runs import record_rows

# answers.csv's answers that the verdict table judges, paired within a round.
PAIRED_ANSWERS = ("slowdown_throughput", "slowdown_tpot_p50", "scaling_efficiency")
INT4_ANSWER = "int4_throughput_tok_s_ratio"
# The confidence of the interval the rule checks (see the module docstring) and the fewest
# rounds it stops after; config.params.MIN_AUTO_ROUNDS puts the latter in the session spec.
CHECK_LEVEL = 0.99


def half_width(estimate: float, lo: float, hi: float) -> float:
    """The relative half-width of an interval; infinite where there is no interval."""
    if not all(math.isfinite(v) for v in (estimate, lo, hi)) or estimate <= 0:
        return math.inf
    return (hi - lo) / (2 * estimate)


def verdict_answers(answers: pd.DataFrame, precision: str | None = None) -> pd.DataFrame:
    """The verdict-bearing rows of an answers table (of ``precision`` only, where given),
    with their half-width."""
    paired = answers.answer.isin(PAIRED_ANSWERS)
    # INT4's: the free co-location's summed models ("colocated/A+B"), as "What INT4 buys".
    summed = answers.subject.str.startswith("colocated") & answers.subject.str.contains(r"\+")
    int4 = (answers.answer == INT4_ANSWER) & summed
    rows = answers[paired | int4].copy()
    if precision is not None:
        rows = rows[rows.precision == precision]
    rows["half_width"] = [
        half_width(e, lo, hi) for e, lo, hi in zip(rows.estimate, rows.lo, rows.hi, strict=True)
    ]
    return rows


def judge(records: list[dict], target: float, confidence: float = 0.95, baseline=()) -> dict:
    """Whether every verdict-bearing answer of ``records`` (one session's runs so far) is tight
    enough (its CHECK_LEVEL interval's half-width within ``target``); ``baseline``: the dense
    session's records, for INT4's ratio. Returns {"met": bool, "answers": {"<answer>
    <subject>": half-width of its ``confidence`` interval, None without one}}."""
    rows = [r for record in [*records, *baseline] for r in record_rows(record).runs]
    runs = pd.DataFrame(rows).reindex(columns=RUN_COLUMNS)
    if runs.empty:
        return {"met": False, "answers": {}}
    # The session's own precision (a resolved dtype: bf16, fp32, int4), not its baseline's.
    (precision,) = {r["spec"]["precision"] for r in records}
    energy = pd.DataFrame(columns=ENERGY_COLUMNS)
    shown = verdict_answers(answers_table(runs, energy, confidence), precision)
    check = verdict_answers(answers_table(runs, energy, max(CHECK_LEVEL, confidence)), precision)
    met = not check.empty and bool((check.half_width <= target).all())
    widths = {
        f"{a} {s}": round(w, 5) if math.isfinite(w) else None
        for a, s, w in zip(shown.answer, shown.subject, shown.half_width, strict=True)
    }
    return {"met": met, "answers": widths}
