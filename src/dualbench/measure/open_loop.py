"""The open loop: a slot driven by seeded arrivals (dualbench.measure.arrivals) instead of by
its own previous call's end; beside dualbench.measure.closed_loop, with the same inputs and
result (``ScheduleResult``, ``schedule="open"``).

A slot's settings carry ``arrival = {"process", "rate_rps", "burstiness", "max_backlog"}``.
``rate_rps`` counts requests and one arrival is one generate call of ``batch_size`` requests,
so calls arrive at rate_rps / batch_size. After ``go``, arrival i is due at release_ns +
offset_i, the offsets drawn with the run's seed and the slot's name.

The slot serves its calls one at a time in arrival order: a call starts at the later of its
arrival and the previous call's end. While idle it waits for the next arrival or ``stop``,
whichever comes first, so a stop is seen at once rather than at the next arrival. Each call's
record (dualbench.measure.engine.timed_generate) gains ``arrival_ns``, ``start_ns`` (the real
start: timed_generate's submit) and ``queue_ns = start_ns - arrival_ns``, and its
``submit_ns`` becomes the arrival: a request's TTFT is from when it arrived, queueing
included, as a user of a server sees it.

The slot meets its criteria (MET) once duration_s has passed, also while idle; min_requests
does not apply, its request count is the rate's business. It serves on until ``stop``; the
result's ``stop_ns`` is when it saw the stop and ``arrivals_ns`` every arrival due by then,
started or not (the analysis counts the backlog from them).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dualbench.measure.arrivals import CHUNK, arrival_offsets
from dualbench.measure.closed_loop import ScheduleResult, remaining_s
from dualbench.measure.protocol import Event, WorkerChannel


class Arrivals:
    """A slot's arrival times in ns, drawn lazily: a window's length is not known in advance,
    and a prefix of the offsets does not depend on how many are drawn, so drawing more
    later never moves an arrival already due."""

    def __init__(self, arrival: dict, batch_size: int, seed: int, slot: str, release_ns: int):
        self._args = (
            arrival["process"],
            arrival["rate_rps"] / batch_size,  # calls per second: a call is batch_size requests
        )
        self._seed, self._slot = seed, slot
        self._burstiness = arrival.get("burstiness", 1.0)
        self._release_ns = release_ns
        self._due: list[int] = []

    def __getitem__(self, i: int) -> int:
        """When arrival i (0-based) is due, in perf_counter_ns."""
        if i >= len(self._due):
            # Doubling keeps the redraws (each from the start) linear in the arrivals used.
            count = max(CHUNK, 2 * len(self._due), i + 1)
            offsets = arrival_offsets(
                *self._args, count, self._seed, self._slot, burstiness=self._burstiness
            )
            self._due = [self._release_ns + round(float(s) * 1e9) for s in offsets]
        return self._due[i]

    def due_by(self, t_ns: int) -> list[int]:
        """Every arrival due at or before ``t_ns``."""
        i = 0
        while self[i] <= t_ns:
            i += 1
        return self._due[:i]


def open_loop(
    generate: Callable[[int], dict],
    channel: WorkerChannel,
    duration_s: float,
    batch_size: int,
    arrival: dict,
    seed: int,
    slot: str,
) -> ScheduleResult:
    """Wait for ``go``, then serve arrival i = 0, 1, ... with ``generate(i)`` (one call, its
    record as dualbench.measure.engine returns it) in order, each at the later of its arrival
    and the previous call's end, until ``stop`` (see the module docstring)."""
    channel.wait_go()
    release_ns = time.perf_counter_ns()
    deadline_ns = release_ns + int(duration_s * 1e9)
    arrivals = Arrivals(arrival, batch_size, seed, slot, release_ns)
    calls: list[dict] = []
    met_ns = None
    # As in the closed loop: the worker's CPU clock at release and after every call.
    cpu_times = [(release_ns, time.process_time())]

    def report(now: int) -> None:
        """MET once duration_s has passed; then where the slot stands."""
        nonlocal met_ns
        if met_ns is None and now >= deadline_ns:
            met_ns = now
            channel.send(Event.MET)
        elapsed_s = (now - release_ns) / 1e9
        # No min_requests here: the time left is duration_s's.
        left_s = remaining_s(elapsed_s, duration_s, len(calls), batch_size, 0)
        channel.send(
            Event.PROGRESS,
            calls=len(calls),
            requests=len(calls) * batch_size,
            elapsed_s=round(elapsed_s, 3),
            remaining_s=round(left_s, 3),
            met=met_ns is not None,
        )

    while True:
        due_ns = arrivals[len(calls)]
        now = time.perf_counter_ns()
        # Idle until the arrival; wake at the deadline too, so that an idle slot is not late
        # to say MET, and on stop at once (Event.wait returns True when it is set).
        while now < due_ns:
            wake_ns = due_ns if met_ns is not None else min(due_ns, deadline_ns)
            if channel.stop.wait(max(0, wake_ns - now) / 1e9):
                break
            now = time.perf_counter_ns()
            if met_ns is None and now >= deadline_ns:
                report(now)
        if channel.stop.is_set():
            stop_ns = time.perf_counter_ns()
            break
        record = generate(len(calls))
        start_ns = record["submit_ns"]
        calls.append(
            {
                **record,
                "submit_ns": due_ns,
                "arrival_ns": due_ns,
                "start_ns": start_ns,
                "queue_ns": start_ns - due_ns,
            }
        )
        now = time.perf_counter_ns()
        cpu_times.append((now, time.process_time()))
        report(now)
    return ScheduleResult(
        release_ns, calls, cpu_times, met_ns, "open", stop_ns, arrivals.due_by(stop_ns)
    )
