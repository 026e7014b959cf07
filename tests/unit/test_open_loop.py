"""The open-loop schedule on a fake generate call and a fake channel: calls start at the later of
their arrival and the previous call's end, a stop is seen at once while idle, MET comes after
duration_s, the arrivals are those of the seed; and an open-loop slot's rows in the tables."""

from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np
import pytest

from dualbench.analysis.runs import record_rows
from dualbench.measure.arrivals import arrival_offsets
from dualbench.measure.closed_loop import closed_loop
from dualbench.measure.open_loop import Arrivals, open_loop
from dualbench.measure.protocol import Event

MS = 1_000_000
# How late a call may start after it could: a thread's wake-up on a busy 2-core machine.
SLACK_NS = 15 * MS


class FakeChannel:
    """The worker's channel without a runner: ``go`` at once, events kept with their time."""

    def __init__(self):
        self.stop = threading.Event()
        self.last = threading.Event()
        self.events: list[tuple[int, str, dict]] = []

    def wait_go(self) -> None:
        pass

    def send(self, event: str, **fields) -> None:
        self.events.append((time.perf_counter_ns(), event, fields))

    def of(self, kind: str) -> list[tuple[int, dict]]:
        return [(t, f) for t, e, f in self.events if e == kind]


def sleeping(durations_s: list[float]):
    """A generate call that takes durations_s[i] (the last one from then on) and delivers one
    token at its end."""

    def generate(i: int) -> dict:
        submit = time.perf_counter_ns()
        time.sleep(durations_s[min(i, len(durations_s) - 1)])
        return {"submit_ns": submit, "token_ns": [time.perf_counter_ns()], "delivered": 1}

    return generate


def run_until(stop_after_s: float, channel: FakeChannel, **kwargs):
    """open_loop in a thread, stopped ``stop_after_s`` after it starts; (result, when stop was
    set)."""
    out = {}
    thread = threading.Thread(
        target=lambda: out.update(result=open_loop(channel=channel, **kwargs))
    )
    thread.start()
    time.sleep(stop_after_s)
    set_ns = time.perf_counter_ns()
    channel.stop.set()
    thread.join(10)
    assert not thread.is_alive()
    return out["result"], set_ns


POISSON = {"process": "poisson", "rate_rps": 40.0, "burstiness": 1.0, "max_backlog": 0.1}


@pytest.fixture(scope="module")
def served():
    """40 requests/s in calls of 2 (20 calls/s) for 0.6 s: the first call takes 300 ms, so the
    arrivals behind it queue; the others 5 ms, so the slot idles between arrivals."""
    channel = FakeChannel()
    result, _ = run_until(
        0.6,
        channel,
        generate=sleeping([0.3, 0.005]),
        duration_s=0.4,
        batch_size=2,
        arrival=POISSON,
        seed=7,
        slot="B",
    )
    return result, channel


def test_calls_start_at_their_arrival_or_when_the_previous_one_ends(served):
    result, _ = served
    assert result.schedule == "open"
    calls = result.calls
    assert len(calls) >= 5
    previous_end = result.release_ns
    for i, c in enumerate(calls):
        assert c["arrival_ns"] == result.arrivals_ns[i]
        assert c["submit_ns"] == c["arrival_ns"]  # TTFT counts from the arrival
        assert c["queue_ns"] == c["start_ns"] - c["arrival_ns"] >= 0
        could_start = max(c["arrival_ns"], previous_end)
        assert could_start <= c["start_ns"] <= could_start + SLACK_NS, i
        previous_end = c["token_ns"][-1]
    # the schedule drew both cases: arrivals queued behind the long first call, and idle waits
    assert calls[1]["queue_ns"] > 100 * MS
    assert any(c["queue_ns"] < SLACK_NS and c["start_ns"] > p["token_ns"][-1] + SLACK_NS
               for p, c in itertools.pairwise(calls))  # fmt: skip


def test_the_arrivals_are_the_seeds_at_rate_per_batch_and_all_due_by_the_stop(served):
    result, _ = served
    due = np.asarray(result.arrivals_ns) - result.release_ns
    # 40 requests/s in calls of 2: calls arrive at 20/s
    offsets = arrival_offsets("poisson", 20.0, len(due) + 1, seed=7, slot="B")
    assert due.tolist() == [round(s * 1e9) for s in offsets[: len(due)]]
    assert result.arrivals_ns[-1] <= result.stop_ns < result.release_ns + round(offsets[-1] * 1e9)
    assert len(result.arrivals_ns) >= len(result.calls)


def test_met_once_after_duration_and_progress_after_every_call(served):
    result, channel = served
    met = channel.of(Event.MET)
    assert len(met) == 1
    assert met[0][0] >= result.release_ns + 0.4e9
    assert result.met_ns >= result.release_ns + 0.4e9
    progress = channel.of(Event.PROGRESS)
    assert len(progress) >= len(result.calls)
    last = progress[-1][1]
    assert last["requests"] == 2 * len(result.calls)
    assert last["met"] is True and last["remaining_s"] == 0
    before = [f for t, f in progress if t < result.met_ns]
    assert before and all(not f["met"] and f["remaining_s"] > 0 for f in before)


def test_a_stop_while_idle_is_seen_at_once_and_an_idle_slot_meets_its_duration():
    # 0.2 requests/s: the first arrival is seconds away
    slow = {**POISSON, "rate_rps": 0.2}
    assert arrival_offsets("poisson", 0.2, 1, seed=1, slot="A")[0] > 1.0
    channel = FakeChannel()
    result, set_ns = run_until(
        0.3,
        channel,
        generate=sleeping([0.005]),
        duration_s=0.1,
        batch_size=1,
        arrival=slow,
        seed=1,
        slot="A",
    )
    assert result.calls == [] and result.arrivals_ns == []
    assert 0 <= result.stop_ns - set_ns < 50 * MS
    # MET at the deadline although no call ended since
    assert 0.1e9 <= result.met_ns - result.release_ns < 0.1e9 + 50 * MS
    assert [f["met"] for _, f in channel.of(Event.PROGRESS)] == [True]


def test_a_stop_during_a_call_starts_nothing_more():
    channel = FakeChannel()
    # 100 calls/s behind a 300 ms call: ~30 arrivals wait when the stop comes at 150 ms
    result, set_ns = run_until(
        0.15,
        channel,
        generate=sleeping([0.3]),
        duration_s=0.1,
        batch_size=1,
        arrival={**POISSON, "rate_rps": 100.0},
        seed=0,
        slot="A",
    )
    assert len(result.calls) == 1
    assert result.stop_ns >= result.calls[0]["token_ns"][-1] > set_ns
    assert len(result.arrivals_ns) > 10


def test_lazy_arrivals_are_the_same_whatever_is_drawn_first():
    arrival = {"process": "gamma", "rate_rps": 6.0, "burstiness": 0.5}
    lazy = Arrivals(arrival, 3, seed=4, slot="B", release_ns=1_000)
    assert lazy[5] < lazy[2500]  # draws past the first chunk
    offsets = arrival_offsets("gamma", 2.0, 2600, seed=4, slot="B", burstiness=0.5)
    expected = [1_000 + round(s * 1e9) for s in offsets]
    assert [lazy[i] for i in range(2600)] == expected
    assert lazy.due_by(expected[9]) == expected[:10]
    assert Arrivals(arrival, 3, seed=4, slot="B", release_ns=1_000)[0] == expected[0]


def test_the_closed_loop_says_so_and_when_it_saw_stop():
    channel = FakeChannel()
    timed = sleeping([0.01])

    def generate(i: int) -> dict:
        channel.stop.set()  # the runner's stop comes during the first call
        return timed(i)

    result = closed_loop(generate, channel, 0.0, 1, 1)
    assert result.schedule == "closed"
    assert len(result.calls) == 1
    assert result.stop_ns >= result.calls[0]["token_ns"][-1]
    fields = result.record_fields()
    assert "arrivals_ns" not in fields
    assert fields["schedule"] == "closed" and fields["stop_ns"] == result.stop_ns


def test_the_last_slot_of_a_trial_stops_at_its_criteria_without_waiting_for_stop():
    """Told ``last`` (every other slot has met its criteria), a closed loop ends with the call
    that meets its own: no call starts after it, though no stop ever comes."""
    channel = FakeChannel()
    channel.last.set()
    # A stop long after: without ``last`` honoured, the loop would run to it, ~200 calls.
    backstop = threading.Timer(2.0, channel.stop.set)
    backstop.start()
    result = closed_loop(sleeping([0.01]), channel, 0.05, 1, 2)
    backstop.cancel()
    deadline_ns = result.release_ns + 50_000_000
    assert len(channel.of("met")) == 1
    # The call before the last ended short of the 0.05 s; the last one met the criteria ...
    assert result.calls[-2]["token_ns"][-1] < deadline_ns <= result.met_ns <= result.stop_ns
    # ... and no call started after it.
    assert all(c["submit_ns"] < result.met_ns for c in result.calls)


def test_without_last_a_met_slot_keeps_loading_until_stop():
    """Not told ``last``, a slot that met its criteria goes on calling (its neighbours still
    measure under its load) until the stop."""
    channel = FakeChannel()
    timed = sleeping([0.01])

    def generate(i: int) -> dict:
        if i == 5:
            channel.stop.set()
        return timed(i)

    result = closed_loop(generate, channel, 0.0, 1, 1)
    assert len(channel.of("met")) == 1 and len(result.calls) == 6


def test_a_cut_call_ends_the_closed_loop_at_once():
    """A call the stop cut (it carries ``cut_ns``, dualbench.measure.engine) is the loop's
    last: no progress is reported for it and no call follows."""
    channel = FakeChannel()
    timed = sleeping([0.001])

    def generate(i: int) -> dict:
        if i == 2:
            channel.stop.set()
            return {"submit_ns": time.perf_counter_ns(), "token_ns": [], "delivered": 0,
                    "cut_ns": time.perf_counter_ns()}  # fmt: skip
        return timed(i)

    result = closed_loop(generate, channel, 0.0, 1, 1)
    assert len(result.calls) == 3 and "cut_ns" in result.calls[-1]
    assert [f["calls"] for _, f in channel.of("progress")] == [1, 2]


class Told:
    """A worker process as tell_last sees it: its slots, and the commands sent to it."""

    def __init__(self, *slots):
        self.slots, self.sent = slots, []

    def send(self, command):
        self.sent.append(command)


@pytest.mark.parametrize(
    ("schedule", "told"), [("free", True), ("lockstep", True), ("single_thread", False)]
)
def test_last_goes_to_the_one_worker_still_short_once(schedule, told):
    from dualbench.measure.protocol import Command, tell_last

    workers = {"A": Told("A"), "B": Told("B")}
    sent_to: set = set()
    spec = {"schedule": schedule}
    tell_last(workers, set(), spec, sent_to)  # both short: nobody is last
    assert workers["A"].sent == workers["B"].sent == []
    tell_last(workers, {"A"}, spec, sent_to)
    tell_last(workers, {"A"}, spec, sent_to)  # once only
    assert workers["B"].sent == ([Command.LAST] if told else [])
    assert workers["A"].sent == []


# --- the tables -------------------------------------------------------------------------------


def one_token_calls(rows):
    """Open-loop calls from (arrival, start, token) in ms."""
    return [
        {
            "submit_ns": a * MS,
            "arrival_ns": a * MS,
            "start_ns": s * MS,
            "queue_ns": (s - a) * MS,
            "token_ns": [t * MS],
            "delivered": 1,
        }
        for a, s, t in rows
    ]


def sweep_record(sweep: bool) -> dict:
    """Victim A closed loop 0-1000 ms; neighbour B open loop at 4 requests/s, 2 of its 4
    arrivals in the window left queued; stop seen at 1000 ms."""
    settings = {"prompt_tokens": 4, "new_tokens": 1, "batch_size": 1, "min_requests": 1}
    arrival = {"process": "gamma", "rate_rps": 4.0, "burstiness": 0.5, "max_backlog": 0.1}
    a_calls = [{"submit_ns": t * MS, "token_ns": [(t + 250) * MS], "delivered": 1}
               for t in (0, 250, 500, 750)]  # fmt: skip
    b = {
        "schedule": "open",
        "release_ns": 0,
        "stop_ns": 1000 * MS,
        "calls": one_token_calls([(100, 100, 600), (200, 600, 1000)]),
        "arrivals_ns": [100 * MS, 200 * MS, 300 * MS, 400 * MS],
    }
    slots = {
        "A": (settings, {"release_ns": 0, "calls": a_calls}),
        "B": ({**settings, "arrival": arrival}, b),
    }
    spec = {"scenario": "s", "precision": "bf16", "layout": "colocated", "duration_s": 1.0}
    if sweep:
        spec["sweep"] = {"victim": "A", "neighbour": "B", "fraction": 0.4}
    return {
        "spec": spec,
        "status": "ok",
        "error": "",
        "backend": {"kind": "cpu"},
        "slots": {
            n: {
                "slot": {"name": n},
                "device": f"cpu:{n}",
                "model": n,
                "settings": s,
                "result": {
                    **r,
                    "load_s": 1.0,
                    "warmup_s": 0.5,
                    "memory": {"peak_mem_bytes": 1},
                },
            }
            for n, (s, r) in slots.items()
        },
    }


def test_an_open_loop_slots_rows():
    rows = record_rows(sweep_record(sweep=False))
    a, b = rows.runs
    assert (a["window_start_s"], a["window_end_s"]) == (0.0, 1.0)
    assert a["arrival"] == "" and a["queue_n"] == 0 and math.isnan(a["backlog"])
    assert b["arrival"] == "gamma 4.0 rps b=0.5"
    assert (b["offered_rps"], b["arrivals"], b["backlog"]) == (4.0, 4, 2)
    assert (b["queue_ms_mean"], b["queue_ms_max"], b["queue_n"]) == (200.0, 400.0, 2)
    assert b["ttft_ms_max"] == 800.0  # token at 1000 ms, arrived at 200 ms
    reason = (
        "slot B: 2 arrivals still queued at window end (50% of 4, limit 10%): "
        "it cannot keep up with 4.0 rps"
    )
    assert a["valid"] is b["valid"] is False
    assert a["invalid_reasons"] == b["invalid_reasons"] == reason
    queue = [(r["slot"], r["queue_ms"]) for r in rows.requests]
    assert queue[:4] == [("A", pytest.approx(math.nan, nan_ok=True))] * 4
    assert queue[4:] == [("B", 0.0), ("B", 400.0)]
    assert [r["submit_s"] for r in rows.requests[4:]] == [0.1, 0.2]  # the arrivals


def test_an_open_loop_slot_with_no_arrival_in_the_run_has_rows_without_a_span():
    # A low rate on a long scenario: the first arrival falls after the stop.
    record = sweep_record(sweep=True)
    b = record["slots"]["B"]["result"]
    b.update(calls=[], arrivals_ns=[])
    a, b = record_rows(record).runs
    assert (a["window_start_s"], a["window_end_s"]) == (0.0, 1.0)
    assert b["requests"] == 0 and b["arrivals"] == 0 and b["backlog"] == 0
    assert math.isnan(b["slot_start_s"]) and math.isnan(b["slot_end_s"])
    assert a["valid"] is True


def test_a_sweep_neighbours_backlog_reaches_the_warnings_column():
    record = sweep_record(sweep=True)
    record["warnings"] = ["bf16 is emulated"]
    a, b = record_rows(record).runs
    assert a["valid"] is b["valid"] is True
    assert b["backlog"] == 2
    assert (
        a["warnings"]
        == b["warnings"]
        == (
            "bf16 is emulated; slot B: 2 arrivals still queued at window end (50% of 4): the "
            "sweep's neighbour, driven to saturation at 4.0 rps on purpose; its backlog does not "
            "invalidate the run"
        )
    )


def test_a_failed_open_loop_run_keeps_its_arrival_settings():
    record = sweep_record(sweep=False)
    record["status"], record["error"] = "oom", "slot B: MemoryError"
    record["slots"]["B"]["result"] = None
    _, b = record_rows(record).runs
    assert (b["arrival"], b["offered_rps"]) == ("gamma 4.0 rps b=0.5", 4.0)
    assert "backlog" not in b


# --- a real worker ----------------------------------------------------------------------------


def test_a_real_worker_serves_its_arrivals(tiny_model, tmp_path):
    """The tiny model alone on slot B at 8 requests/s for 1 s: the worker picks the open loop
    from its settings and its result reaches the tables."""
    from dualbench import config
    from dualbench.measure import runner
    from dualbench.models.convert import convert
    from tests.helpers import tiny_config

    model = tmp_path / "bf16"
    convert(tiny_model, "bf16", model)
    cfg = tiny_config()
    cfg["run"]["timeout_s"] = 120
    spec = config.run_spec(config.validate(cfg), "short", "bf16", "alone_B")
    arrival = {"process": "poisson", "rate_rps": 8.0, "burstiness": 1.0, "max_backlog": 0.1}
    spec["slots"]["B"]["arrival"] = arrival
    record = runner.run(spec, {"B": str(model)}, tmp_path / "work")
    assert record["status"] == "ok", record["error"]
    result = record["slots"]["B"]["result"]
    assert result["schedule"] == "open"
    assert result["calls"] and len(result["arrivals_ns"]) >= len(result["calls"])
    assert result["met_ns"] - result["release_ns"] >= spec["duration_s"] * 1e9
    assert result["stop_ns"] >= result["met_ns"]
    whole = [c for c in result["calls"] if "cut_ns" not in c]
    # the stop may cut the call in flight, and only that one (its tokens may be none)
    assert len(result["calls"]) - len(whole) <= 1 and "cut_ns" not in result["calls"][0]
    for c in whole:
        assert c["submit_ns"] == c["arrival_ns"] <= c["start_ns"] < c["token_ns"][0]
    offsets = arrival_offsets("poisson", 8.0, len(result["arrivals_ns"]), spec["seed"], "B")
    assert [a - result["release_ns"] for a in result["arrivals_ns"]] == [
        round(s * 1e9) for s in offsets
    ]
    (row,) = record_rows(record).runs
    assert row["arrival"] == "poisson 8.0 rps"
    assert row["window_end_s"] == pytest.approx((result["stop_ns"] - result["release_ns"]) / 1e9)
    assert row["queue_n"] == row["requests"] > 0
