"""The closed loop, today's schedule of a worker: from the barrier release, one generate call
after another, the next starting when one returns, until the runner says stop.

A schedule is what a worker does between ``go`` and ``stop``: it waits for the release, drives
the calls, tells the runner when its own criteria are met and how far it is, and returns what
the analysis needs (release time, every call's timestamps, the worker's CPU clock, when it saw
``stop``). Other schedules go beside this one with the same inputs and result: open-loop
arrivals (dualbench.measure.open_loop); lockstep to come.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dualbench.measure.protocol import Event, WorkerChannel


@dataclass
class ScheduleResult:
    release_ns: int  # the barrier release: the slot's window starts here
    calls: list[dict]  # timed_generate's record of every call, in order
    cpu_times: list[tuple[int, float]]  # (perf_counter_ns, process CPU seconds)
    met_ns: int | None  # when the slot first met its criteria
    # "closed" or "open": how the analysis reads the calls (an open-loop slot's window ends
    # at stop_ns, and its calls carry arrival and queueing times).
    schedule: str = "closed"
    # When the schedule saw ``stop`` (closed loop: after the call in flight returned or was cut).
    stop_ns: int | None = None
    # Open loop only: every arrival due up to stop_ns, served or not (the backlog's input).
    arrivals_ns: list[int] = field(default_factory=list)

    def record_fields(self) -> dict:
        """The worker result's fields for the schedule: an open-loop slot's arrivals are
        only written for it, so a closed-loop result keeps its shape."""
        fields = {
            "schedule": self.schedule,
            "release_ns": self.release_ns,
            "met_ns": self.met_ns,
            "stop_ns": self.stop_ns,
            "calls": self.calls,
        }
        if self.schedule == "open":
            fields["arrivals_ns"] = self.arrivals_ns
        return fields


def criteria_met(calls: int, batch_size: int, min_requests: int, now_ns: int, deadline_ns: int):
    """A slot has been measured enough once duration_s has passed and it has completed
    min_requests requests; a call carries batch_size requests."""
    return now_ns >= deadline_ns and calls * batch_size >= min_requests


def remaining_s(
    elapsed_s: float, duration_s: float, calls: int, batch_size: int, min_requests: int
) -> float:
    """Seconds until a slot meets its criteria (criteria_met), estimated after ``calls`` calls
    in ``elapsed_s`` seconds of the window: the larger of the time left to duration_s and the
    calls still owed to min_requests at the mean call time so far."""
    owed_calls = math.ceil(max(0, min_requests - calls * batch_size) / batch_size)
    mean_call_s = elapsed_s / calls if calls else 0.0
    return max(0.0, duration_s - elapsed_s, owed_calls * mean_call_s)


def closed_loop(
    generate: Callable[[int], dict],
    channel: WorkerChannel,
    duration_s: float,
    batch_size: int,
    min_requests: int,
) -> ScheduleResult:
    """Wait for ``go``, then call ``generate(i)`` for i = 0, 1, ... back to back until
    ``stop``. ``generate`` runs one call and returns its record (dualbench.measure.engine).
    ``stop`` is checked between calls and cuts the call in flight (dualbench.measure.engine),
    so stop_ns is when that call returned, at its next forward pass at the latest. Once
    the runner has said ``last`` (every other slot has met its criteria), the loop ends as soon
    as this slot meets its own: a further call would end past the trial's window (it closes at
    the earliest last token, dualbench.analysis.metrics.co_window) or, alone, only lengthen it,
    and waiting for the stop's round trip would start one."""
    channel.wait_go()
    release_ns = time.perf_counter_ns()
    deadline_ns = release_ns + int(duration_s * 1e9)
    calls, met_ns = [], None
    # The worker's CPU seconds at release and after every call: the parent samples them too,
    # but cannot read them after the worker exits, and the window ends at a last token, just
    # before one does. process_time() is a vDSO clock read: nothing next to a generate call.
    cpu_times = [(release_ns, time.process_time())]
    while not channel.stop.is_set():
        calls.append(generate(len(calls)))
        now = time.perf_counter_ns()
        cpu_times.append((now, time.process_time()))
        if "cut_ns" in calls[-1]:
            break  # the stop cut the call (dualbench.measure.engine): nothing more to report
        if met_ns is None and criteria_met(len(calls), batch_size, min_requests, now, deadline_ns):
            met_ns = now
            channel.send(Event.MET)
        elapsed_s = (now - release_ns) / 1e9
        left_s = remaining_s(elapsed_s, duration_s, len(calls), batch_size, min_requests)
        channel.send(
            Event.PROGRESS,
            calls=len(calls),
            requests=len(calls) * batch_size,
            elapsed_s=round(elapsed_s, 3),
            remaining_s=round(left_s, 3),
            met=met_ns is not None,
        )
        if met_ns is not None and channel.last.is_set():
            break
    stop_ns = time.perf_counter_ns()
    return ScheduleResult(release_ns, calls, cpu_times, met_ns, "closed", stop_ns)
