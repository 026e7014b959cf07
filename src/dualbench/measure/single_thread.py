"""The single-thread schedule: one worker process hosts several slots' models and serves them
in rounds from one thread, as the origin note's own test code did (``dual_model_benchmark``:
model_a.generate, then model_b.generate, each under its own device stream, then a
synchronisation of the devices).

From the barrier release, each round makes one generate call per slot, in slot order (each
under its slot's stream where the device has streams), then waits for every device the
process uses. ``stop`` is checked between rounds; one that comes mid-round (the runner's
timeout, or the runner gone) cuts the call in flight (dualbench.measure.engine) and ends the
round. Each slot keeps its own result (``ScheduleResult``, closed loop): its calls, its
criteria (MET with the slot's name once it has met them), its progress.

The window is the process's span (dualbench.analysis.metrics.single_thread_window): from the
release to the end of its last call. After each round, every slot whose calls so far meet its
criteria over that span says MET; once all have, the process starts no further round and waits
for the stop, so the trial ends on whole rounds, every slot with the same number of calls.

The process's CPU clock is shared by its slots: each slot's ``cpu_times`` counts the process
CPU seconds spent during its own calls, which, the calls being serial, are that slot's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dualbench.measure.closed_loop import ScheduleResult, criteria_met, remaining_s
from dualbench.measure.protocol import Event, WorkerChannel


def single_thread_rounds(
    generates: dict[str, Callable[[int], dict]],
    synchronize_all: Callable[[], None],
    channel: WorkerChannel,
    duration_s: float,
    criteria: dict[str, tuple[int, int]],
) -> dict[str, ScheduleResult]:
    """Wait for ``go``, then run rounds until ``stop``: ``generates[slot](i)`` makes the
    slot's call i (stream and all) and returns its record; ``synchronize_all`` ends a round;
    ``criteria[slot]`` is the slot's (batch_size, min_requests). Returns each slot's result."""
    channel.wait_go()
    release_ns = time.perf_counter_ns()
    deadline_ns = release_ns + int(duration_s * 1e9)
    calls: dict[str, list[dict]] = {name: [] for name in generates}
    met_ns: dict[str, int | None] = dict.fromkeys(generates)
    cpu_s = dict.fromkeys(generates, 0.0)
    cpu_times = {name: [(release_ns, 0.0)] for name in generates}
    cut = False
    while not channel.stop.is_set():
        for name, generate in generates.items():
            before = time.process_time()
            calls[name].append(generate(len(calls[name])))
            cpu_s[name] += time.process_time() - before
            cpu_times[name].append((time.perf_counter_ns(), cpu_s[name]))
            # The stop cut this call (dualbench.measure.engine): the round ends here.
            cut = "cut_ns" in calls[name][-1]
            if cut:
                break
        synchronize_all()
        if cut:
            break
        now = time.perf_counter_ns()
        elapsed_s = (now - release_ns) / 1e9
        for name in generates:
            batch, min_requests = criteria[name]
            n = len(calls[name])
            met = criteria_met(n, batch, min_requests, now, deadline_ns)
            if met_ns[name] is None and met:
                met_ns[name] = now
                channel.send(Event.MET, slot=name)
            channel.send(
                Event.PROGRESS,
                slot=name,
                calls=n,
                requests=n * batch,
                elapsed_s=round(elapsed_s, 3),
                remaining_s=round(remaining_s(elapsed_s, duration_s, n, batch, min_requests), 3),
                met=met_ns[name] is not None,
            )
        if all(t is not None for t in met_ns.values()):
            # Every slot of the trial is in this process: the stop can only follow. Another
            # round would be cut, leaving the slots with unequal calls in the window.
            channel.stop.wait()
    stop_ns = time.perf_counter_ns()
    return {
        name: ScheduleResult(
            release_ns, calls[name], cpu_times[name], met_ns[name], "closed", stop_ns
        )
        for name in generates
    }
