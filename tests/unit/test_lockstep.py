"""Lockstep: the turn figures of a run record (dualbench.analysis.lockstep) on hand-made
records, the token ring (dualbench.measure.lockstep) on real pipes, and a real lockstep run of
two tiny models through the runner."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time

import pytest

from dualbench.analysis.lockstep import count_overlaps, handoffs_ns, turn_intervals, turn_stats
from dualbench.measure.engine import TimestampStreamer
from dualbench.measure.lockstep import TokenRing, close_ring, ring_pipes

# --- the turn figures on hand-made records ----------------------------------------------------


def slot(release_ns: int, stop_ns: int, calls: list[list[tuple[int, int]]]) -> dict:
    """A closed-loop slot whose calls have these turns; each call's tokens at its releases."""
    return {
        "result": {
            "schedule": "closed",
            "release_ns": release_ns,
            "stop_ns": stop_ns,
            "calls": [
                {
                    "submit_ns": turns[0][0] - 1,
                    "token_ns": [released for _, released in turns],
                    "turns_ns": [list(t) for t in turns],
                    "delivered": len(turns),
                }
                for turns in calls
            ],
        }
    }


def lockstep_record() -> dict:
    """A releases at 0, B at 5; they alternate, each turn 10 ns, each hand-over 2 ns (B's
    first one 4 ns); A's last token at 130, B's at 142, so the window is 5..130."""
    a = slot(0, 131, [[(1, 11), (25, 35)], [(49, 59), (73, 83)], [(97, 107), (120, 130)]])
    b = slot(5, 143, [[(15, 23), (37, 47)], [(61, 71), (85, 95)], [(109, 118), (132, 142)]])
    return {"status": "ok", "slots": {"A": a, "B": b}}


def test_turns_are_those_inside_the_co_located_window_in_time_order():
    turns = turn_intervals(lockstep_record())
    # A's first turn began before B was released, B's last ended after A's last token
    assert turns[0] == ("B", 15, 23) and turns[-1] == ("A", 120, 130)
    assert len(turns) == 10
    assert [t[1] for t in turns] == sorted(t[1] for t in turns)
    assert [t[0] for t in turns] == ["B", "A"] * 5


def test_turn_stats_of_a_clean_alternation():
    stats = turn_stats(lockstep_record())
    assert stats["turns"] == 10
    assert stats["overlaps"] == 0
    # hand-overs: 23->25 (2), 35->37 (2), 47->49 (2), 59->61 (2), 71->73, 83->85, 95->97,
    # 107->109 (2 each), 118->120 (2): nine of 2 ns
    assert stats["handoff_us_p50"] == pytest.approx(0.002)
    assert stats["handoff_us_mean"] == pytest.approx(0.002)


def test_handoffs_skip_consecutive_turns_of_one_slot():
    turns = [("A", 0, 10), ("A", 12, 20), ("B", 26, 30), ("A", 31, 40)]
    assert handoffs_ns(turns) == [6, 1]


def test_overlapping_turns_of_different_slots_are_counted_per_pair():
    turns = [("A", 0, 10), ("B", 5, 15), ("C", 8, 9), ("A", 12, 20), ("B", 20, 30)]
    # A0-B, A0-C, B-C, B-A12; touching ends (A12 ends at 20, B starts at 20) do not overlap;
    # A0 and A12 are one slot
    assert count_overlaps(turns) == 4
    record = lockstep_record()
    record["slots"]["B"]["result"]["calls"][1]["turns_ns"][0] = [55, 71]  # into A's 49..59
    assert turn_stats(record)["overlaps"] == 1


def test_a_run_without_turns_has_no_lockstep_figures():
    record = lockstep_record()
    for s in record["slots"].values():
        for call in s["result"]["calls"]:
            del call["turns_ns"]
    stats = turn_stats(record)
    assert (stats["turns"], stats["overlaps"]) == (0, 0)
    assert math.isnan(stats["handoff_us_p50"]) and math.isnan(stats["handoff_us_mean"])
    failed = {"status": "error", "slots": {"A": {"result": None}, "B": {"result": None}}}
    assert turn_intervals(failed) == []
    assert turn_stats(failed)["turns"] == 0


# --- the token ring on real pipes --------------------------------------------------------------


def take_turns(ring: TokenRing, turns: int, log: list, stop_after: int | None = None) -> None:
    """A participant: ``turns`` acquire/release rounds (fewer once the ring breaks), logging
    (position, acquired_ns, released_ns); with ``stop_after``, leave the ring after that many
    turns, as a worker that stops."""
    for n in range(turns):
        if stop_after is not None and n == stop_after:
            ring.close()
            return
        acquired = ring.acquire()
        released = ring.release()
        if acquired is not None:
            log.append((ring.ends.position, acquired, released))


def run_ring(size: int, turns: int, stop_after: dict[int, int] | None = None) -> tuple:
    """``size`` participants in threads (each owning its two fds, as a worker does); returns
    (log in time order, rings). Fails rather than hangs if the ring deadlocks."""
    rings = [TokenRing(ends) for ends in ring_pipes(size)]
    log: list = []
    threads = [
        threading.Thread(
            target=take_turns, args=(r, turns, log, (stop_after or {}).get(i)), daemon=True
        )
        for i, r in enumerate(rings)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "the ring deadlocked"
    for r in rings:
        r.close()
    return sorted(log, key=lambda e: e[1]), rings


@pytest.mark.parametrize("size", [2, 3])
def test_the_turn_goes_round_the_ring_in_order_from_worker_0(size):
    log, rings = run_ring(size, turns=5)
    assert [position for position, _, _ in log] == list(range(size)) * 5
    # each acquisition follows the previous release
    assert all(b[1] > a[2] for a, b in zip(log, log[1:], strict=False))
    assert all(r.ended_ns is not None for r in rings)  # closed at the end


def test_a_worker_leaving_breaks_the_ring_and_the_others_run_free():
    # worker 1 of 3 leaves after 2 turns: 2 reads end-of-file, 0 cannot write to it; both go
    # on without turns instead of waiting for one
    log, rings = run_ring(3, turns=6, stop_after={1: 2})
    assert [p for p, _, _ in log][:6] == [0, 1, 2, 0, 1, 2]
    assert sum(p == 1 for p, _, _ in log) == 2
    assert all(r.ended_ns is not None for r in rings)
    assert rings[0].acquire() is None and rings[0].release() is None


def test_writing_to_a_gone_reader_breaks_the_ring_without_killing():
    first, second = (TokenRing(ends) for ends in ring_pipes(2))
    second.close()  # its read end, the one first writes to, is gone
    assert first.acquire() is not None  # the initial turn was already in the pipe
    released = first.release()  # EPIPE: BrokenPipeError, handled
    assert released is not None and first.ended_ns is not None
    assert first.acquire() is None


PARTICIPANT = """
import os, sys, time
from dualbench.measure.lockstep import RingEnds, TokenRing
read_fd, write_fd, position, size, crash_at = map(int, sys.argv[1:])
ring = TokenRing(RingEnds(read_fd, write_fd, position, size))
turns = 0
while ring.active and turns < 200:
    if ring.acquire() is None:
        break
    turns += 1
    if turns == crash_at:
        os._exit(3)  # dies holding the turn
    time.sleep(0.001)
    ring.release()
print(turns, ring.ended_ns is not None, flush=True)
"""


def test_a_process_dying_with_the_turn_frees_the_others():
    """Three interpreters as the runner starts them (pass_fds, its copies closed); the middle
    one dies holding the turn; the other two must end, free, with no SIGPIPE death."""
    ring = ring_pipes(3)
    crash_at = {0: 0, 1: 5, 2: 0}
    try:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    PARTICIPANT,
                    *map(str, e.to_dict().values()),
                    str(crash_at[i]),
                ],
                stdout=subprocess.PIPE,
                text=True,
                pass_fds=(e.read_fd, e.write_fd),
            )
            for i, e in enumerate(ring)
        ]
    finally:
        close_ring(ring)
    outs = [p.communicate(timeout=30)[0].split() for p in procs]
    assert procs[1].returncode == 3
    assert procs[0].returncode == procs[2].returncode == 0
    for out in (outs[0], outs[2]):
        turns, ended = int(out[0]), out[1]
        assert 4 <= turns <= 6 and ended == "True"


# --- the streamer takes and passes the turn ----------------------------------------------------


class FakeRing:
    def __init__(self):
        self.calls: list[str] = []
        self.clock = 0

    def acquire(self):
        self.calls.append("acquire")
        self.clock += 1
        return self.clock

    def release(self):
        self.calls.append("release")
        self.clock += 1
        return self.clock


def test_the_streamer_holds_the_turn_for_each_forward_pass():
    ring = FakeRing()
    syncs = []
    streamer = TimestampStreamer(lambda: syncs.append(len(ring.calls)), ring, steps=3)
    streamer.put("prompt")
    assert ring.calls == ["acquire"]  # before the prefill
    for _ in range(3):
        streamer.put("token")
    # the step's sync comes before its release; no acquisition after the last token
    assert ring.calls == ["acquire", "release", "acquire", "release", "acquire", "release"]
    assert syncs == [1, 3, 5]
    assert streamer.turns_ns == [[1, 2], [3, 4], [5, 6]]
    assert len(streamer.token_ns) == 3


# --- a real lockstep run -------------------------------------------------------------------------


def hand_spec(schedule: str, names=("A", "B"), new_tokens: int = 4) -> dict:
    """A run spec as config.run_spec makes it for a CPU run of ``schedule``, short."""
    settings = {
        "prompt_tokens": 16,
        "new_tokens": new_tokens,
        "batch_size": 1,
        "warmup_requests": 1,
        "min_requests": 2,
        "device": "auto",
    }
    return {
        "scenario": "short",
        "precision": "bf16",
        "layout": f"{schedule}:{'+'.join(names)}",
        "device": "cpu",
        "duration_s": 1.0,
        "seed": 0,
        "timeout_s": 180,
        "slots": {name: {**settings, "model": name} for name in names},
        "telemetry": {"enabled": False},
        "slot_names": list(names),
        "schedule": schedule,
    }


@pytest.fixture(scope="module")
def bf16_model(tiny_model, tmp_path_factory):
    from dualbench.models.convert import convert

    out = tmp_path_factory.mktemp("lockstep") / "bf16"
    convert(tiny_model, "bf16", out)
    return str(out)


@pytest.mark.parametrize("names", [("A", "B"), ("A", "B", "C")], ids=["two", "three"])
def test_a_real_lockstep_run_takes_its_forward_passes_in_turns(bf16_model, tmp_path, names):
    from dualbench.measure import runner

    spec = hand_spec("lockstep", names)
    record = runner.run(spec, dict.fromkeys(names, bf16_model), tmp_path / "work")
    assert record["status"] == "ok", record["error"]
    results = {name: s["result"] for name, s in record["slots"].items()}
    for position, name in enumerate(names):
        result = results[name]
        assert result["lockstep"]["position"] == position
        assert result["lockstep"]["size"] == len(names)
        assert result["lockstep"]["ended_ns"] >= result["release_ns"]
        # one turn per forward pass: a call fully in the ring has one per token
        full = [c for c in result["calls"] if c["turns_ns"] and len(c["turns_ns"]) == 4]
        assert full, result["calls"]
        for call in full:
            # a turn is passed on once its token exists, and ends before the next one starts
            pairs = zip(call["turns_ns"], call["token_ns"], strict=True)
            assert all(a < t <= r for (a, r), t in pairs)
            flat = [t for turn in call["turns_ns"] for t in turn]
            assert flat == sorted(flat)
    stats = turn_stats(record)
    turns = turn_intervals(record)
    assert stats["overlaps"] == 0
    for name in names:
        assert sum(t[0] == name for t in turns) > 2
    assert stats["turns"] == len(turns)
    assert stats["handoff_us_mean"] > 0 and stats["handoff_us_p50"] > 0
    # round the ring in slot order: every hand-over to the next slot
    following = {name: names[(i + 1) % len(names)] for i, name in enumerate(names)}
    assert all(following[a[0]] == b[0] for a, b in zip(turns, turns[1:], strict=False))
    # the worker specs carry the control socket the ring's ends come over; a free run's not
    worker_spec = json.loads((tmp_path / "work" / "worker-B.json").read_text())
    assert isinstance(worker_spec["control_fd"], int)


def test_a_lockstep_worker_dying_mid_run_ends_in_a_record(bf16_model, tmp_path, monkeypatch):
    """B exits at its second call in the window; A, whose turn can no longer come round,
    must not hang the run: the runner records B's failure and stops A."""
    from dualbench.measure import runner

    monkeypatch.setenv("DUALBENCH_FAULT", "B:crash_in_window")
    started = time.monotonic()
    record = runner.run(hand_spec("lockstep"), dict.fromkeys("AB", bf16_model), tmp_path)
    assert record["status"] == "error"
    assert record["error"].startswith("slot B (measuring): ") and "code 3" in record["error"]
    assert record["slots"]["A"]["result"] is None
    assert time.monotonic() - started < 120


def test_an_open_loop_slot_cannot_run_in_lockstep(bf16_model, tmp_path):
    from dualbench.measure import runner

    spec = hand_spec("lockstep")
    spec["slots"]["B"]["arrival"] = {"process": "poisson", "rate_rps": 2.0}
    record = runner.run(spec, dict.fromkeys("AB", bf16_model), tmp_path)
    assert record["status"] == "error"
    assert record["error"] == (
        "slot B: ValueError: slot B has arrival settings (an open loop) but its layout is "
        "lockstep, which runs closed-loop only; remove its arrival or run it in a colocated "
        "layout"
    )
