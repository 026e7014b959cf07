"""The worker's stop rule and its estimate of the time left, its tie to the runner's life, and
its protocol channel kept apart from library output."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from dualbench.measure.closed_loop import criteria_met, remaining_s
from dualbench.measure.lifetime import ORPHANED_EXIT
from dualbench.measure.protocol import Event


def test_criteria_need_both_duration_and_requests():
    assert not criteria_met(calls=5, batch_size=1, min_requests=3, now_ns=99, deadline_ns=100)
    assert not criteria_met(calls=2, batch_size=1, min_requests=3, now_ns=100, deadline_ns=100)
    assert criteria_met(calls=3, batch_size=1, min_requests=3, now_ns=100, deadline_ns=100)


def test_min_requests_counts_requests_not_calls():
    # batch 8: two calls are 16 requests
    assert not criteria_met(calls=1, batch_size=8, min_requests=16, now_ns=1, deadline_ns=0)
    assert criteria_met(calls=2, batch_size=8, min_requests=16, now_ns=1, deadline_ns=0)


def test_library_prints_cannot_corrupt_the_protocol_channel():
    code = (
        "from dualbench.measure.protocol import Event, WorkerChannel\n"
        "p = WorkerChannel()\n"
        "print('chatter from a library')\n"
        "p.send(Event.READY, load_s=1.5)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input="", capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"event": Event.READY, "load_s": 1.5}
    ]
    assert "chatter from a library" in out.stderr


def test_remaining_time_is_the_duration_left_while_requests_are_ahead_of_it():
    # 2 calls in 2 s: 1 call (1 s) still owed to min_requests, but 8 s of duration_s left
    assert remaining_s(elapsed_s=2, duration_s=10, calls=2, batch_size=1, min_requests=3) == 8


def test_remaining_time_is_the_owed_calls_at_the_mean_call_time_past_the_duration():
    # 3 calls in 12 s (4 s each), 7 requests owed: 7 calls, 28 s; duration_s already passed
    assert remaining_s(elapsed_s=12, duration_s=10, calls=3, batch_size=1, min_requests=10) == 28


def test_remaining_time_counts_whole_calls_of_a_batch():
    # batch 4: 1 call in 3 s is 4 requests; 6 owed need 2 more calls (6 s), not 1.5
    assert remaining_s(elapsed_s=3, duration_s=5, calls=1, batch_size=4, min_requests=10) == 6


def test_remaining_time_is_zero_once_the_criteria_are_met():
    assert remaining_s(elapsed_s=11, duration_s=10, calls=5, batch_size=1, min_requests=3) == 0


def orphan_after_parent_sigkill(child_code: str) -> psutil.Process:
    """Start a parent that starts ``child_code`` (the parent's pid in argv[1]) and sleeps;
    once the child prints "tied", SIGKILL the parent. Returns the child, no longer ours to
    wait for (it was the parent's)."""
    parent_code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, child_code], stdout=subprocess.PIPE, text=True
    )
    try:
        # The child shares the parent's stdout: its pid (from the parent) and "tied".
        lines = {parent.stdout.readline().strip() for _ in range(2)}
        assert "tied" in lines, lines
        child = psutil.Process(int(next(line for line in lines if line != "tied")))
    finally:
        parent.kill()
        parent.wait()
    return child


def gone_within(proc: psutil.Process, seconds: float) -> bool:
    """Whether ``proc`` exits within ``seconds``; a zombie computes nothing and counts as gone."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "tie",
    [
        "from dualbench.measure.lifetime import die_with_parent\n"
        "die_with_parent(int(sys.argv[1]))\n",
        # The fallback off Linux, run here on its own: no prctl, only the polling thread.
        "import threading\nfrom dualbench.measure.lifetime import watch_parent\n"
        "threading.Thread(target=watch_parent, args=(int(sys.argv[1]), 0.1), daemon=True)"
        ".start()\n",
    ],
    ids=["pdeathsig", "watchdog"],
)
def test_a_worker_dies_with_its_parent(tie):
    child = orphan_after_parent_sigkill(
        f"import sys, time\n{tie}print('tied', flush=True)\ntime.sleep(60)\n"
    )
    try:
        assert gone_within(child, 5)
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()


def test_a_worker_whose_parent_died_before_it_was_tied_exits_at_once():
    # The pid handed down is not the child's parent (this test is): as if the runner had died
    # while the worker started, and the worker had been re-parented.
    not_our_parent = os.getppid()
    code = (
        "import sys, time\n"
        "from dualbench.measure.lifetime import die_with_parent\n"
        "die_with_parent(int(sys.argv[1]))\n"
        "time.sleep(60)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(not_our_parent)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == ORPHANED_EXIT
    assert "is gone" in out.stderr


def test_a_session_plan_holds_the_processes_its_trials_need():
    """A session's processes: one per slot of its free and lockstep trials, one more for a
    single-thread trial's slots; a trial's arrivals are not the worker's (the trial sets
    them); an int4 run's kernel reaches the workers (int4.kernel: reference was once dropped,
    so every int4 run used the native kernel whatever the config said)."""
    from dualbench.measure.session_plan import session_plan

    def spec(layout, slots, schedule=None, **extra):
        settings = {n: {"model": n, "batch_size": 1, "device": "auto"} for n in slots}
        out = {"scenario": "s", "precision": "bf16", "layout": layout, "device": "cpu"}
        out.update(seed=3, timeout_s=60, slots=settings)
        return {**out, **({"schedule": schedule} if schedule else {}), **extra}

    sweep = spec("colocated", "AB")
    sweep["slots"]["B"]["arrival"] = {"process": "poisson", "rate_rps": 2.0}
    plan = session_plan([spec("alone_A", "A"), sweep, spec("lockstep", "AB", "lockstep")])
    assert plan["solo"] == ["A", "B"] and plan["group"] == [] and plan["lockstep"]
    assert "arrival" not in plan["slots"]["B"]
    assert "int4_kernel" not in plan
    plan = session_plan([spec("single_thread_streams", "AB", "single_thread")])
    assert plan["solo"] == [] and plan["group"] == ["A", "B"] and not plan["lockstep"]
    plan = session_plan([spec("alone_B", "B", int4_kernel="reference")])
    assert plan["solo"] == ["B"] and plan["int4_kernel"] == "reference"
