"""The single-thread schedule: one process hosting several slots (its environment, pinning and
device calls on every backend, with fake devices where there are none), its rounds, and a real
run of two tiny models through the runner."""

from __future__ import annotations

import json
import sys
import threading
import types

import pytest
import torch

from dualbench.backends import DeviceError, Slot
from dualbench.backends.base import CoreLimit
from dualbench.backends.cpu import CpuBackend
from dualbench.backends.cuda import CudaBackend
from dualbench.measure.protocol import Event
from dualbench.measure.single_thread import single_thread_rounds

# --- the group's environment and pinning ------------------------------------------------------


def test_a_cpu_group_is_pinned_to_all_its_cores_with_a_thread_each(monkeypatch):
    slots = [Slot("A", "cpu", None, (0, 1)), Slot("B", "cpu", None, (4, 5))]
    backend = CpuBackend()
    assert backend.group_env(slots) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    pinned, threads = [], []
    monkeypatch.setattr("os.sched_setaffinity", lambda pid, cores: pinned.append(cores))
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    backend.pin_group(slots)
    assert pinned == [(0, 1, 4, 5)] and threads == [4]
    # every model on the one CPU device, with nothing to stream on
    assert backend.group_device(slots, slots[1]) == torch.device("cpu")
    assert backend.new_stream(torch.device("cpu")) is None
    with backend.on_stream(None):
        pass


def test_a_cuda_group_sees_each_of_its_gpus_once_in_slot_order(monkeypatch):
    slots = [Slot("A", "cuda", 3), Slot("B", "cuda", 1), Slot("C", "cuda", 3)]
    backend = CudaBackend()
    env = backend.group_env(slots, "expandable_segments:True")
    assert env == {
        "CUDA_VISIBLE_DEVICES": "3,1",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    # each model on its GPU's index among the visible ones
    assert [backend.group_device(slots, s) for s in slots] == [
        torch.device("cuda", 0),
        torch.device("cuda", 1),
        torch.device("cuda", 0),
    ]


class FakeStream:
    def __init__(self, device=None):
        self.device = device


def fake_torch_npu(calls: list):
    """torch_npu as far as a group uses it: the torch.cuda-like device and stream calls."""

    def record(name, ret=None):
        return lambda *args, **kwargs: calls.append((name, args, kwargs)) or ret

    class Switch:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            calls.append(("enter", (self.stream.device,), {}))

        def __exit__(self, *exc):
            calls.append(("exit", (self.stream.device,), {}))

    mod = types.ModuleType("torch_npu")
    mod.npu = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 2,
        set_device=record("set_device"),
        synchronize=record("synchronize"),
        max_memory_allocated=record("max_memory_allocated", 100),
        max_memory_reserved=record("max_memory_reserved", 400),
        utilization=record("utilization", 55),
        Stream=FakeStream,
        stream=Switch,
    )
    return mod


def test_an_npu_group_calls_each_device_by_its_local_index(monkeypatch):
    from dualbench.backends.npu import NpuBackend

    calls: list = []
    monkeypatch.setitem(sys.modules, "torch_npu", fake_torch_npu(calls))
    slots = [Slot("A", "npu", 1), Slot("B", "npu", 0)]
    backend = NpuBackend()
    assert backend.group_env(slots)["ASCEND_RT_VISIBLE_DEVICES"] == "1,0"
    # torch.device("npu", 1) needs the real torch_npu (group_device's indices are the CUDA
    # test's): its string stands in, passed through to each call unchanged
    b = "npu:1"
    backend.synchronizer(b)()
    stream = backend.new_stream(b)
    assert stream.device == b
    with backend.on_stream(stream):
        pass
    assert backend.utilization_reader(b)() == 55.0
    memory = backend.device_memory(b)
    assert (memory["peak_mem_bytes"], memory["mem_reserved_peak_bytes"]) == (100, 400)
    assert memory["fragmentation"] == pytest.approx(0.75)
    assert calls == [
        ("synchronize", (b,), {}),
        ("enter", (b,), {}),
        ("exit", (b,), {}),
        ("utilization", (b,), {}),
        ("max_memory_allocated", (b,), {}),
        ("max_memory_reserved", (b,), {}),
    ]


def test_slots_of_one_process_must_agree_on_their_core_limit():
    slots = [
        Slot("A", "npu", 0, core_limit=CoreLimit(12, 24)),
        Slot("B", "npu", 0, core_limit=CoreLimit(8, 16)),
    ]
    with pytest.raises(DeviceError, match="different core_limit"):
        CpuBackend().group_slot(slots)
    same = [slots[0], Slot("B", "npu", 0, core_limit=CoreLimit(12, 24))]
    assert CpuBackend().group_slot(same).core_limit == CoreLimit(12, 24)


# --- the rounds ----------------------------------------------------------------------------------


class FakeChannel:
    """The worker's protocol end: released at once; ``stop`` set after ``stop_after`` MET."""

    def __init__(self, stop_after_met: int):
        self.stop = threading.Event()
        self.sent: list[tuple[str, dict]] = []
        self._stop_after = stop_after_met

    def wait_go(self):
        pass

    def send(self, event, **fields):
        self.sent.append((event, fields))
        if sum(e == Event.MET for e, _ in self.sent) == self._stop_after:
            self.stop.set()


def test_rounds_serve_each_slot_once_then_synchronise_until_stop():
    order: list[str] = []

    def generate_for(name):
        def generate(i):
            order.append(f"{name}{i}")
            return {"submit_ns": i, "token_ns": [i + 1], "delivered": 1}

        return generate

    channel = FakeChannel(stop_after_met=2)
    results = single_thread_rounds(
        {"A": generate_for("A"), "B": generate_for("B")},
        lambda: order.append("sync"),
        channel,
        duration_s=0.0,
        # A needs 2 requests, B (batch 2) 4: B meets its criteria in round 2 as well
        criteria={"A": (1, 2), "B": (2, 4)},
    )
    assert order == ["A0", "B0", "sync", "A1", "B1", "sync"]
    mets = [f["slot"] for e, f in channel.sent if e == Event.MET]
    assert mets == ["A", "B"]
    progress = [(f["slot"], f["requests"]) for e, f in channel.sent if e == Event.PROGRESS]
    assert progress == [("A", 1), ("B", 2), ("A", 2), ("B", 4)]
    a, b = results["A"], results["B"]
    assert len(a.calls) == len(b.calls) == 2
    assert a.release_ns == b.release_ns and a.stop_ns == b.stop_ns
    assert a.met_ns == b.met_ns  # both met at the end of round 2
    # each slot's CPU seconds: its own calls only, starting from 0 at the release
    assert a.cpu_times[0] == (a.release_ns, 0.0) and len(a.cpu_times) == 3


def test_once_every_slot_has_met_the_process_waits_for_the_stop_without_another_round():
    order: list[str] = []

    def generate(i):
        order.append(i)
        return {"submit_ns": i, "token_ns": [i + 1], "delivered": 1}

    channel = FakeChannel(stop_after_met=99)  # the stop comes late, from the runner
    threading.Timer(0.3, channel.stop.set).start()
    results = single_thread_rounds(
        {"A": generate, "B": generate}, lambda: None, channel, 0.0, {"A": (1, 2), "B": (1, 2)}
    )
    assert order == [0, 0, 1, 1]  # two whole rounds, none cut
    assert all(len(r.calls) == 2 and "cut_ns" not in r.calls[-1] for r in results.values())


# --- a real run --------------------------------------------------------------------------------


def test_a_real_single_thread_run_serves_two_models_one_after_the_other(tiny_model, tmp_path):
    from dualbench.measure import runner
    from dualbench.models.convert import convert

    model = tmp_path / "bf16"
    convert(tiny_model, "bf16", model)
    settings = {
        "prompt_tokens": 16,
        "new_tokens": 4,
        "batch_size": 1,
        "warmup_requests": 1,
        "min_requests": 2,
        "device": "auto",
    }
    spec = {
        "scenario": "short",
        "precision": "bf16",
        "layout": "single_thread_streams",
        "device": "cpu",
        "duration_s": 1.0,
        "seed": 0,
        "timeout_s": 180,
        "slots": {name: {**settings, "model": name} for name in ("A", "B")},
        "telemetry": {"enabled": False},
        "slot_names": ["A", "B"],
        "schedule": "single_thread",
    }
    work = tmp_path / "work"
    record = runner.run(spec, {"A": str(model), "B": str(model)}, work)
    assert record["status"] == "ok", record["error"]
    results = {name: s["result"] for name, s in record["slots"].items()}
    assert set(results) == {"A", "B"}
    for name, result in results.items():
        assert record["slots"][name]["phase"] == "done"
        assert result["single_thread"] == {"process_slots": ["A", "B"], "streams": False}
        assert result["slot"]["name"] == name and result["calls"]
        assert result["met_ns"] is not None and result["stop_ns"] >= result["met_ns"]
        assert "lockstep" not in result
    a, b = results["A"]["calls"], results["B"]["calls"]
    assert len(a) == len(b)  # whole rounds
    # serial: every call ends before the next one starts, alternating A, B, A, B...
    spans = sorted(
        [(c["submit_ns"], c["token_ns"][-1], name) for name in "AB" for c in results[name]["calls"]]
    )
    assert [s[2] for s in spans] == ["A", "B"] * len(a)
    assert all(x[1] < y[0] for x, y in zip(spans, spans[1:], strict=False))
    # one process, one spec and one log; a result per slot
    assert sorted(p.name for p in work.glob("worker-*")) == ["worker-A+B.json", "worker-A+B.log"]
    worker_spec = json.loads((work / "worker-A+B.json").read_text())
    assert [m["slot"]["name"] for m in worker_spec["members"]] == ["A", "B"]
    assert {p.name for p in work.glob("result-*.json")} == {"result-A.json", "result-B.json"}
    # The duration counts inside the window the analysis reads (a round shorter than the
    # release-to-stop span), so the run is never too short for validity.
    from dualbench.analysis.metrics import co_window

    start, end = co_window(results)
    assert end - start >= spec["duration_s"] * 1e9
    # ...and holds every call of both slots: whole rounds, each slot's min_requests in it
    from dualbench.analysis.metrics import validity

    assert validity(record, (start, end)) == []


def test_a_single_thread_slot_is_utilised_over_its_process_cores():
    """The one process is pinned to every core of its slots, so each slot's CPU time is
    divided by all of them, not by its own (which could pass 100%)."""
    from dualbench.analysis.telemetry import process_cores

    def slot(cores, group=None):
        result = {"single_thread": {"process_slots": group}} if group else {}
        return {"slot": {"cores": cores}, "result": result}

    together = {"slots": {"A": slot([0], ["A", "B"]), "B": slot([1], ["A", "B"])}}
    apart = {"slots": {"A": slot([0]), "B": slot([1])}}
    assert process_cores(together, "A") == process_cores(together, "B") == 2
    assert process_cores(apart, "A") == process_cores(apart, "B") == 1
