"""Device backends on a CPU-only machine: selection with the device modules absent or faked,
slot parsing, worker environments, and the wiring of NPU/CUDA calls to torch_npu / torch.cuda
(checked against recording fakes, since no accelerator is present)."""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch

import dualbench.backends as backends
from dualbench.backends import DeviceError, Slot, detect, resolve
from dualbench.backends.base import parse_cores
from dualbench.backends.cpu import CpuBackend
from dualbench.backends.cuda import CudaBackend
from dualbench.backends.npu import NpuBackend

# --- fakes ----------------------------------------------------------------------------------


class Calls(list):
    """Records (function name, args) of every fake device call."""

    def fn(self, name, ret=None):
        def record(*args, **kwargs):
            self.append((name, args))
            return ret

        return record


def _fake_torch_npu(calls: Calls, *, available: bool = True, count: int = 2):
    mod = types.ModuleType("torch_npu")
    mod.__version__ = "2.5.1.post1"
    mod.npu = types.SimpleNamespace(
        is_available=lambda: available,
        device_count=lambda: count,
        set_device=calls.fn("set_device"),
        synchronize=calls.fn("synchronize"),
        max_memory_allocated=calls.fn("max_memory_allocated", 1234),
        max_memory_reserved=calls.fn("max_memory_reserved", 5678),
        get_device_name=calls.fn("get_device_name", "Ascend910B2"),
        utilization=calls.fn("utilization", 73),
        utils=types.SimpleNamespace(get_cann_version=lambda: "8.0.RC3"),
    )
    return mod


@pytest.fixture
def no_npu(monkeypatch):
    # A None entry makes `import torch_npu` raise ImportError, as on a machine without it.
    monkeypatch.setitem(sys.modules, "torch_npu", None)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def fake_npu(monkeypatch):
    """Install a fake torch_npu; returns (module, calls)."""

    def install(**kwargs):
        calls = Calls()
        mod = _fake_torch_npu(calls, **kwargs)
        monkeypatch.setitem(sys.modules, "torch_npu", mod)
        return mod, calls

    return install


@pytest.fixture
def cores(monkeypatch):
    """Pretend this process may use the given cores."""

    def set_cores(usable):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(usable))

    return set_cores


class _RaisingFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import torch_npu` fail the way it does on a CUDA build of torch."""

    def find_spec(self, name, path, target=None):
        if name == "torch_npu":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError(
            "Two accelerators cannot be used at the same time in PyTorch: npu and cuda.\n"
            "[ERROR] 2025-01-01 ERR00007 PTA feature not supported"
        )


# --- selection ------------------------------------------------------------------------------


def test_detect_cpu_without_torch_npu_or_cuda(no_npu, no_cuda):
    assert detect() == "cpu"


def test_detect_npu_when_torch_npu_sees_a_device(fake_npu, no_cuda):
    fake_npu(available=True, count=1)
    assert detect() == "npu"


def test_detect_npu_wins_over_cuda(fake_npu, monkeypatch):
    fake_npu(available=True, count=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert detect() == "npu"


@pytest.mark.parametrize(("available", "count"), [(False, 0), (True, 0), (False, 2)])
def test_detect_skips_npu_without_devices(fake_npu, no_cuda, available, count):
    fake_npu(available=available, count=count)
    assert detect() == "cpu"


def test_detect_cuda_when_no_npu(no_npu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert detect() == "cuda"


def test_detect_cuda_needs_a_device(no_npu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert detect() == "cpu"


def test_detect_survives_torch_npu_raising_on_import(monkeypatch, no_cuda):
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    assert NpuBackend.available() is False
    assert detect() == "cpu"


def test_resolve_npu_without_torch_npu_is_one_clear_line(no_npu):
    with pytest.raises(DeviceError) as info:
        resolve("npu", {"A": "npu:0", "B": "npu:1"})
    msg = str(info.value)
    assert "\n" not in msg
    assert "torch_npu" in msg and "device: cpu" in msg
    assert torch.__version__.split("+")[0] in msg


def test_resolve_npu_import_error_keeps_first_line_only(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch_npu", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(), *sys.meta_path])
    with pytest.raises(DeviceError) as info:
        resolve("npu", "auto", ("A", "B"))
    msg = str(info.value)
    assert "\n" not in msg
    assert "Two accelerators" in msg and "ERR00007" not in msg


def test_resolve_auto_slots_from_slot_kinds_without_detecting(no_npu, no_cuda, cores):
    cores(range(4))
    backend, slots = resolve("auto", {"A": "cpu:0-1", "B": "cpu:2-3"})
    assert backend.kind == "cpu"
    assert slots["A"].cores == (0, 1) and slots["B"].cores == (2, 3)


def test_resolve_auto_auto_on_this_machine_gives_disjoint_cpu_slots(no_npu, no_cuda):
    backend, slots = resolve("auto", "auto", ("A", "B"))
    assert backend.kind == "cpu"
    assert set(slots) == {"A", "B"}
    usable = set(os.sched_getaffinity(0))
    a, b = set(slots["A"].cores), set(slots["B"].cores)
    assert a | b <= usable
    if len(usable) >= 2:
        assert a and b and not a & b
        assert len(a) == len(b)


def test_cpu_auto_slots_split_eight_cores_in_halves(cores):
    cores(range(8))
    slots = CpuBackend().auto_slots(("A", "B"))
    assert slots["A"].cores == (0, 1, 2, 3)
    assert slots["B"].cores == (4, 5, 6, 7)
    assert slots["A"].label == "cpu:0-3" and slots["B"].label == "cpu:4-7"


def test_cpu_auto_slots_take_their_names_from_the_caller(cores):
    cores(range(8))
    slots = CpuBackend().auto_slots(("x", "y", "z"))
    # 8 // 3 = 2 cores each, in order; the two left over stay unused.
    assert [slots[n].cores for n in "xyz"] == [(0, 1), (2, 3), (4, 5)]


def test_accelerator_auto_slots_wrap_around_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    slots = CudaBackend().auto_slots(("x", "y", "z"))
    assert [slots[n].index for n in "xyz"] == [0, 1, 0]


def test_cpu_auto_slots_share_a_single_core(cores):
    cores([5])
    slots = CpuBackend().auto_slots(("A", "B"))
    assert slots["A"].cores == slots["B"].cores == (5,)


def test_resolve_npu_auto_slots_with_fake(fake_npu):
    fake_npu(count=2)
    backend, slots = resolve("npu", "auto", ("A", "B"))
    assert isinstance(backend, NpuBackend)
    assert [slots["A"].index, slots["B"].index] == [0, 1]


# --- auto_slots / parse_slot ----------------------------------------------------------------


@pytest.mark.parametrize(("count", "expected"), [(1, (0, 0)), (2, (0, 1)), (8, (0, 1))])
def test_npu_auto_slots(fake_npu, count, expected):
    fake_npu(count=count)
    slots = NpuBackend().auto_slots(("A", "B"))
    assert (slots["A"].index, slots["B"].index) == expected
    assert slots["A"].kind == slots["B"].kind == "npu"


@pytest.mark.parametrize(
    ("count", "expected"), [(1, (0, 0, 0, 0)), (2, (0, 1, 0, 1)), (8, (0, 1, 2, 3))]
)
def test_npu_auto_slots_of_four_models(fake_npu, count, expected):
    """N models: one NPU each while there are enough, then they share in turn."""
    fake_npu(count=count)
    backend, slots = resolve("npu", "auto", ("A", "B", "C", "D"))
    assert tuple(slots[n].index for n in "ABCD") == expected
    assert {name: s.name for name, s in slots.items()} == {n: n for n in "ABCD"}


@pytest.mark.parametrize(("count", "expected"), [(1, (0, 0)), (2, (0, 1))])
def test_cuda_auto_slots(monkeypatch, count, expected):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    slots = CudaBackend().auto_slots(("A", "B"))
    assert (slots["A"].index, slots["B"].index) == expected


def test_auto_slots_without_devices_raises(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(DeviceError, match="no cuda device"):
        CudaBackend().auto_slots(("A", "B"))


def test_parse_slot_accepts_visible_index(fake_npu):
    fake_npu(count=4)
    assert NpuBackend().parse_slot("B", "npu:3") == Slot("B", "npu", 3)


def test_parse_slot_index_beyond_count(fake_npu, monkeypatch):
    fake_npu(count=2)
    with pytest.raises(DeviceError, match="only 2 npu"):
        NpuBackend().parse_slot("A", "npu:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="only 1 cuda"):
        CudaBackend().parse_slot("B", "cuda:1")


def test_parse_slot_wrong_kind(fake_npu):
    fake_npu(count=2)
    with pytest.raises(DeviceError, match="backend is npu"):
        NpuBackend().parse_slot("A", "cuda:0")
    with pytest.raises(DeviceError, match="backend is cuda"):
        CudaBackend().parse_slot("A", "npu:0")
    with pytest.raises(DeviceError, match="backend is cpu"):
        CpuBackend().parse_slot("A", "npu:0")


def test_parse_slot_core_range_backwards(cores):
    cores(range(8))
    with pytest.raises(DeviceError, match="backwards"):
        CpuBackend().parse_slot("A", "cpu:3-1")


def test_parse_slot_cores_not_usable(cores):
    cores([0, 1])
    with pytest.raises(DeviceError, match=r"\[2, 3\]"):
        CpuBackend().parse_slot("A", "cpu:0-3")


def test_parse_slot_cpu_ok(cores):
    cores(range(8))
    assert CpuBackend().parse_slot("B", "cpu:4-5,7") == Slot("B", "cpu", None, (4, 5, 7))


def test_unknown_device_kind():
    with pytest.raises(DeviceError, match="unknown"):
        backends.backend_class("tpu")


# --- worker environment ---------------------------------------------------------------------


def test_npu_worker_env_is_exact(fake_npu):
    fake_npu(count=4)
    env = NpuBackend().worker_env(Slot("B", "npu", 3), "expandable_segments:True")
    assert env == {
        "ASCEND_RT_VISIBLE_DEVICES": "3",
        "PYTORCH_NPU_ALLOC_CONF": "expandable_segments:True",
    }


def test_npu_worker_env_without_allocator(fake_npu):
    fake_npu(count=4)
    assert NpuBackend().worker_env(Slot("A", "npu", 0)) == {"ASCEND_RT_VISIBLE_DEVICES": "0"}


def test_cuda_worker_env_is_exact():
    env = CudaBackend().worker_env(Slot("B", "cuda", 1), "expandable_segments:True")
    assert env == {
        "CUDA_VISIBLE_DEVICES": "1",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
        # NVML's order, so the parent samples the GPU the worker runs on
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert CudaBackend().worker_env(Slot("A", "cuda", 0)) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


def test_cpu_worker_env_threads_match_slot_cores():
    env = CpuBackend().worker_env(Slot("A", "cpu", None, (0, 1, 2)), "expandable_segments:True")
    assert env["OMP_NUM_THREADS"] == "3"
    assert not any(k.startswith(("PYTORCH_", "CUDA_", "ASCEND_")) for k in env)


# --- Slot and cores -------------------------------------------------------------------------


def test_parse_cores():
    assert parse_cores("0-2,5") == (0, 1, 2, 5)
    assert parse_cores("7") == (7,)
    assert parse_cores("3,1,1-2") == (1, 2, 3)


def test_slot_labels():
    assert Slot("A", "cpu", None, (0, 1, 2, 5)).label == "cpu:0-2,5"
    assert Slot("B", "npu", 3).label == "npu:3"
    assert Slot("A", "cuda", 0).label == "cuda:0"


@pytest.mark.parametrize(
    "slot", [Slot("A", "cpu", None, (0, 1, 4)), Slot("B", "npu", 3), Slot("A", "cuda", 0)]
)
def test_slot_round_trip_through_json(slot):
    assert Slot.from_dict(json.loads(json.dumps(slot.to_dict()))) == slot


# --- worker-side wiring ---------------------------------------------------------------------


def test_cpu_memory_reports_positive_peak():
    mem = CpuBackend().memory()
    assert mem["peak_mem_bytes"] > 0
    assert mem["mem_source"] == "peak RSS"


def test_npu_calls_torch_npu(fake_npu):
    _, calls = fake_npu(count=2)
    backend = NpuBackend()
    backend.pin(Slot("B", "npu", 1))
    backend.synchronize()
    mem = backend.memory()
    assert [c[0] for c in calls] == [
        "set_device",
        "synchronize",
        "max_memory_allocated",
        "max_memory_reserved",
    ]
    # The worker sees only its own NPU, as index 0, whatever the physical id.
    assert calls[0] == ("set_device", (0,))
    assert mem == {
        "peak_mem_bytes": 1234,
        "mem_reserved_peak_bytes": 5678,
        "fragmentation": pytest.approx(1 - 1234 / 5678),
        "mem_source": "torch.npu.max_memory_allocated",
    }


def test_npu_describe(fake_npu):
    fake_npu(count=2)
    info = NpuBackend().describe()
    assert info == {
        "kind": "npu",
        "name": "Ascend910B2",
        "count": 2,
        "torch_npu_version": "2.5.1.post1",
        "cann_version": "8.0.RC3",
    }


def test_npu_describe_tolerates_missing_facts(fake_npu):
    mod, _ = fake_npu(count=1)
    del mod.npu.utils  # torch_npu before get_cann_version existed

    def broken(*args):
        raise AssertionError("Invalid device id")

    mod.npu.get_device_name = broken
    info = NpuBackend().describe()
    assert info["name"] is None and info["cann_version"] is None and info["count"] == 1


def test_cuda_calls_torch_cuda(monkeypatch):
    calls = Calls()
    for name, ret in [
        ("set_device", None),
        ("synchronize", None),
        ("max_memory_allocated", 11),
        ("max_memory_reserved", 22),
    ]:
        monkeypatch.setattr(torch.cuda, name, calls.fn(name, ret))
    backend = CudaBackend()
    backend.pin(Slot("B", "cuda", 1))
    backend.synchronize()
    mem = backend.memory()
    assert [c[0] for c in calls] == [
        "set_device",
        "synchronize",
        "max_memory_allocated",
        "max_memory_reserved",
    ]
    assert calls[0] == ("set_device", (0,))
    assert mem == {
        "peak_mem_bytes": 11,
        "mem_reserved_peak_bytes": 22,
        "fragmentation": 0.5,
        "mem_source": "torch.cuda.max_memory_allocated",
    }


def test_cuda_describe(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA A100")
    info = CudaBackend().describe()
    assert info["name"] == "NVIDIA A100" and info["count"] == 2
    assert info["cuda_version"] == torch.version.cuda


def test_accelerator_torch_device():
    assert CudaBackend().torch_device() == torch.device("cuda:0")
    assert CpuBackend().torch_device() == torch.device("cpu")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.OutOfMemoryError("NPU out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("NPU out of memory. Tried to allocate 2.00 GiB (NPU 0; 60 GiB total)"), True),
        (RuntimeError("NPU function error: aclnnMatmul, error code is 207001 EL0004"), True),
        (MemoryError(), True),
        (RuntimeError("shape '[2, 3]' is invalid for input of size 7"), False),
        (ValueError("NPU out of memory"), False),
    ],
)
def test_npu_is_oom(fake_npu, exc, expected):
    fake_npu()
    assert NpuBackend().is_oom(exc) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 MiB"), True),
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 20 MiB"), True),
        (RuntimeError("CUDA error: device-side assert triggered"), False),
    ],
)
def test_cuda_is_oom(exc, expected):
    assert CudaBackend().is_oom(exc) is expected


def test_device_modules_are_not_imported_at_module_level():
    # torch_npu must stay optional: importing the backend modules may not import it (or torch,
    # which on an Ascend host autoloads torch_npu).
    src_dir = Path(backends.__file__).parent
    for name in ("npu.py", "cuda.py", "__init__.py", "base.py"):
        tree = ast.parse((src_dir / name).read_text())
        top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                top.add(node.module.split(".")[0])
        assert not top & {"torch", "torch_npu"}, name


def test_npu_utilization_comes_from_torch_npu(fake_npu):
    _, calls = fake_npu()
    assert NpuBackend().utilization() == 73.0
    assert ("utilization", ()) in calls
    assert NpuBackend.in_process_utilization


def test_cpu_and_cuda_have_no_in_process_utilization():
    assert CpuBackend().utilization() is None
    assert CudaBackend().utilization() is None
    assert not CpuBackend.in_process_utilization and not CudaBackend.in_process_utilization
