"""The turns of a lockstep run (dualbench.measure.lockstep): when each slot held the ring's
turn, whether two slots ever computed at once, and what handing the turn over cost. Pure
functions: a run record in, numbers out.

A lockstep worker records, per call, ``turns_ns``: one ``[acquired_ns, released_ns]`` pair
per forward pass (the prefill, then each decode step), from the moment it got the turn to the
moment it passed it on, after its device finished the step. Only the co-located window counts
(dualbench.analysis.metrics.co_window): before every slot is released, and once one has
stopped, the ring is not (yet, any more) what paces the slots.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from dualbench.analysis.metrics import co_window

NS_PER_US = 1_000


def turn_intervals(record: dict) -> list[tuple[str, int, int]]:
    """Every turn (slot, acquired_ns, released_ns) lying wholly inside the run's co-located
    window, in time order. Empty for a run without turns (not lockstep, or failed before
    any): slots without a result are left out."""
    results = {name: s["result"] for name, s in record.get("slots", {}).items() if s.get("result")}
    if not results:
        return []
    start, end = co_window(results)
    turns = [
        (name, int(acquired), int(released))
        for name, result in results.items()
        for call in result.get("calls", [])
        for acquired, released in call.get("turns_ns") or []
        if acquired >= start and released <= end
    ]
    return sorted(turns, key=lambda t: (t[1], t[2]))


def count_overlaps(turns: list[tuple[str, int, int]]) -> int:
    """How many pairs of turns of different slots overlap in time (share more than an end
    point). A sweep in start order keeps only the turns still open, so a correct run (at most
    one open turn) costs n log n, not n²."""
    overlaps = 0
    open_turns: list[tuple[int, str]] = []  # (released_ns, slot), a heap on the end
    for slot, acquired, released in sorted(turns, key=lambda t: t[1]):
        while open_turns and open_turns[0][0] <= acquired:
            heapq.heappop(open_turns)
        overlaps += sum(1 for _, other in open_turns if other != slot)
        heapq.heappush(open_turns, (released, slot))
    return overlaps


def handoffs_ns(turns: list[tuple[str, int, int]]) -> list[int]:
    """The coordination cost of each hand-over: for consecutive turns in time order that belong
    to different slots, the next turn's acquisition minus the previous one's release."""
    ordered = sorted(turns, key=lambda t: t[1])
    return [
        nxt[1] - prev[2]
        for prev, nxt in zip(ordered, ordered[1:], strict=False)
        if nxt[0] != prev[0]
    ]


def turn_stats(record: dict) -> dict:
    """The lockstep figures of a run: ``turns`` (turns in the co-located window, all slots),
    ``overlaps`` (pairs of turns of different slots that overlap: 0 in a correct lockstep run),
    ``handoff_us_p50`` and ``handoff_us_mean`` (the hand-over times of handoffs_ns in
    microseconds; NaN without any hand-over, as for a run that is not lockstep)."""
    turns = turn_intervals(record)
    handoffs = np.asarray(handoffs_ns(turns), dtype=float) / NS_PER_US
    return {
        "turns": len(turns),
        "overlaps": count_overlaps(turns),
        "handoff_us_p50": float(np.median(handoffs)) if handoffs.size else math.nan,
        "handoff_us_mean": float(handoffs.mean()) if handoffs.size else math.nan,
    }
