"""NPU core partitions (torch.npu.set_device_limit) on a CPU-only machine: the Slot field and
its records, resolve() attaching limits, the pure limit check, and the worker-side wiring
against a fake torch_npu that behaves as the real one is written to (set_device first, one
call per process), with the chip's counts from the fake's device properties, from npu-smi, or
assumed."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from dualbench.backends import CoreLimit, DeviceError, Slot, check_core_limit, resolve
from dualbench.backends.npu import ASSUMED_COUNTS, NpuBackend
from dualbench.telemetry import npusmi
from dualbench.telemetry.npusmi import NpuSmiError

# --- fake torch_npu ---------------------------------------------------------------------------


class FakeNpu(types.SimpleNamespace):
    """torch_npu.npu as far as pin() uses it. Like the real one, set_device_limit refuses a
    device this process has not set (NPUFunctions.cpp SetDeviceResLimit) and runs once per
    process (npu_config._call_once_class)."""

    def __init__(self, *, cube=24, vector=48, has_props=True, has_limit=True, has_readback=True):
        super().__init__(calls=[], limit=None, current=None)
        self.cube, self.vector, self.has_props = cube, vector, has_props
        if has_limit:
            self.set_device_limit = self._set_device_limit
        if has_readback:
            self.get_device_limit = self._get_device_limit

    def device_count(self):
        return 1

    def set_device(self, index):
        self.calls.append(("set_device", (index,)))
        self.current = index

    def get_device_properties(self, index):
        self.calls.append(("get_device_properties", (index,)))
        if not self.has_props:  # torch_npu before the 7.2.0 releases: no core counts
            return types.SimpleNamespace(name="Ascend910B2", total_memory=64 << 30)
        return types.SimpleNamespace(
            name="Ascend910B2", cube_core_num=self.cube, vector_core_num=self.vector
        )

    def _set_device_limit(self, device, cube_num=-1, vector_num=-1):
        self.calls.append(("set_device_limit", (device, cube_num, vector_num)))
        if self.limit is not None:
            raise RuntimeError(
                "Function 'set_device_limit' has already been called, You can only set this "
                "interface once."
            )
        if self.current != device:
            raise RuntimeError(f"NPU device {device} has not been initialized!")
        self.limit = (cube_num, vector_num)

    def _get_device_limit(self, device):
        cube, vector = self.limit or (self.cube, self.vector)
        return {"cube_core_num": cube, "vector_core_num": vector}

    def names(self):
        return [name for name, _ in self.calls]


@pytest.fixture
def fake_npu(monkeypatch):
    def install(**kwargs) -> FakeNpu:
        npu = FakeNpu(**kwargs)
        mod = types.ModuleType("torch_npu")
        mod.__version__ = "2.6.0.post3"
        mod.npu = npu
        monkeypatch.setitem(sys.modules, "torch_npu", mod)
        return npu

    return install


@pytest.fixture
def no_npu_smi(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(NpuBackend, "aicore_count_reader", staticmethod(npusmi.aicore_count))


def limited(name="A", cube=12, vector=24, index=0) -> Slot:
    return Slot(name, "npu", index, core_limit=CoreLimit(cube, vector))


# --- Slot and CoreLimit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "slot", [limited("A", 12, 24, 3), Slot("B", "npu", 0), Slot("A", "cpu", None, (0, 1))]
)
def test_slot_round_trip_through_json(slot):
    assert Slot.from_dict(json.loads(json.dumps(slot.to_dict()))) == slot


def test_slot_record_fields():
    assert limited("A", 12, 24).to_dict()["core_limit"] == {"cube": 12, "vector": 24}
    assert Slot("B", "npu", 0).to_dict()["core_limit"] is None


def test_slot_from_a_record_written_before_core_limits():
    old = {"name": "B", "kind": "npu", "index": 1, "cores": []}
    assert Slot.from_dict(old) == Slot("B", "npu", 1)
    assert Slot.from_dict(old).core_limit is None


def test_label_is_the_device_whatever_the_limit():
    # runs.csv groups by the device label: a limit must not make the same NPU look like another
    assert limited(index=3).label == "npu:3"


@pytest.mark.parametrize(
    "raw",
    [
        {"cube": 12},
        {"cube": 12, "vector": 24, "aiv": 1},
        {"cube": 12.5, "vector": 24},
        {"cube": "12", "vector": 24},
        {"cube": True, "vector": 24},
        [12, 24],
    ],
)
def test_core_limit_of_the_wrong_shape_is_one_line(raw):
    with pytest.raises(DeviceError, match="slot B: core_limit") as info:
        CoreLimit.from_dict(raw, "B")
    assert "\n" not in str(info.value)
    assert "{cube: 12, vector: 24}" in str(info.value)


# --- check_core_limit -------------------------------------------------------------------------


def test_check_accepts_limits_within_the_chip():
    assert check_core_limit({"cube": 12, "vector": 24}, 24, 48, "A") == CoreLimit(12, 24)
    assert check_core_limit(CoreLimit(24, 48), 24, 48, "A") == CoreLimit(24, 48)
    assert check_core_limit(CoreLimit(1, 1), 24, 48, "A") == CoreLimit(1, 1)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (CoreLimit(25, 24), r"slot A: core_limit\.cube is 25 but the chip has 24 cube cores"),
        (CoreLimit(12, 49), r"slot A: core_limit\.vector is 49 but the chip has 48 vector"),
        (CoreLimit(0, 24), r"slot A: core_limit\.cube is 0, which leaves the worker no cube"),
        (CoreLimit(12, -1), r"slot A: core_limit\.vector is -1, which leaves the worker no"),
    ],
)
def test_check_refuses_limits_outside_the_chip(limit, expected):
    with pytest.raises(DeviceError, match=expected) as info:
        check_core_limit(limit, 24, 48, "A", "torch_npu.npu.get_device_properties(0)")
    msg = str(info.value)
    assert "\n" not in msg
    # the fix, with the chip's count and where it was read
    assert "set it to 1 to" in msg and "get_device_properties" in msg


def test_check_without_the_chip_counts_checks_the_lower_bound_only():
    assert check_core_limit(CoreLimit(1000, 2000), None, None, "A") == CoreLimit(1000, 2000)
    with pytest.raises(DeviceError, match="set it to at least 1"):
        check_core_limit(CoreLimit(0, 24), None, None, "A")


# --- resolve ----------------------------------------------------------------------------------


def test_resolve_attaches_each_slots_limit(fake_npu):
    fake_npu()
    backend, slots = resolve(
        "npu",
        {"A": "npu:0", "B": "npu:0", "C": "npu:0"},
        core_limits={"A": {"cube": 12, "vector": 24}, "B": CoreLimit(8, 16), "C": None},
    )
    assert backend.kind == "npu"
    assert slots["A"] == Slot("A", "npu", 0, core_limit=CoreLimit(12, 24))
    assert slots["B"].core_limit == CoreLimit(8, 16)
    assert slots["C"] == Slot("C", "npu", 0)


def test_resolve_without_limits_is_unchanged(fake_npu):
    fake_npu()
    _, slots = resolve("npu", {"A": "npu:0", "B": "npu:0"})
    assert all(s.core_limit is None for s in slots.values())
    _, auto = resolve("npu", "auto", ("A", "B"), core_limits={"A": {"cube": 6, "vector": 12}})
    assert auto["A"].core_limit == CoreLimit(6, 12) and auto["B"].core_limit is None


@pytest.mark.parametrize(
    ("device", "slots"),
    [("cpu", {"A": "cpu:0", "B": "cpu:0"}), ("cuda", {"A": "cuda:0", "B": "cuda:0"})],
)
def test_resolve_refuses_a_limit_on_another_backend(monkeypatch, device, slots):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    with pytest.raises(DeviceError) as info:
        resolve(device, slots, core_limits={"B": {"cube": 12, "vector": 24}})
    msg = str(info.value)
    assert msg == (
        f"slot B: core_limit splits an Ascend NPU's AI cores, but the backend is {device}; "
        "remove core_limit or set device: npu"
    )


def test_resolve_refuses_a_limit_for_no_slot_and_a_zero_limit(fake_npu):
    fake_npu()
    with pytest.raises(DeviceError, match="core_limit for Z, which is not a slot"):
        resolve("npu", {"A": "npu:0"}, core_limits={"Z": {"cube": 1, "vector": 1}})
    with pytest.raises(DeviceError, match=r"slot A: core_limit\.cube is 0"):
        resolve("npu", {"A": "npu:0"}, core_limits={"A": {"cube": 0, "vector": 24}})


# --- pin: applying the limit ------------------------------------------------------------------


def test_pin_sets_the_device_then_the_limit_once(fake_npu):
    npu = fake_npu()
    backend = NpuBackend()
    backend.pin(limited("B", 12, 24, index=1))
    assert npu.names().count("set_device_limit") == 1
    assert npu.names().index("set_device") < npu.names().index("set_device_limit")
    # device 0: the worker sees only its own NPU, whatever the physical id
    assert ("set_device", (0,)) in npu.calls
    assert ("set_device_limit", (0, 12, 24)) in npu.calls
    assert npu.limit == (12, 24)
    assert backend.core_limit_info() == {
        "slot": "B",
        "cube": 12,
        "vector": 24,
        "chip_cube": 24,
        "chip_vector": 48,
        "counts_source": "torch_npu.npu.get_device_properties(0)",
        "applied_with": "torch_npu.npu.set_device_limit",
        "readback": {"cube": 12, "vector": 24},
    }
    assert backend.describe()["core_limit"] == backend.core_limit_info()


def test_pin_without_a_limit_leaves_the_chip_whole(fake_npu):
    npu = fake_npu()
    backend = NpuBackend()
    backend.pin(Slot("A", "npu", 0))
    assert npu.names() == ["set_device"]
    assert backend.core_limit_info() is None
    assert "core_limit" not in backend.describe()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (CoreLimit(24, 40), r"slot A: core_limit\.cube is 24 but the chip has 20 cube cores"),
        (CoreLimit(10, 48), r"slot A: core_limit\.vector is 48 but the chip has 40 vector"),
    ],
)
def test_pin_refuses_more_cores_than_the_chip_has(fake_npu, limit, expected):
    npu = fake_npu(cube=20, vector=40)  # a 910B3/910B4
    with pytest.raises(DeviceError, match=expected) as info:
        NpuBackend().pin(Slot("A", "npu", 0, core_limit=limit))
    assert "get_device_properties" in str(info.value) and "\n" not in str(info.value)
    assert "set_device_limit" not in npu.names()


def test_a_second_limited_slot_in_one_process_is_refused(fake_npu):
    npu = fake_npu()
    backend = NpuBackend()
    backend.pin(limited("A"))
    with pytest.raises(DeviceError, match="already limits slot A") as info:
        backend.pin(limited("B"))
    assert "\n" not in str(info.value)
    # torch_npu would raise on a second call: there is none
    assert npu.names().count("set_device_limit") == 1


def test_torch_npu_without_set_device_limit(fake_npu):
    npu = fake_npu(has_limit=False)
    with pytest.raises(DeviceError) as info:
        NpuBackend().pin(limited("A"))
    msg = str(info.value)
    assert "slot A" in msg and "torch_npu 2.6.0.post3 lacks" in msg
    assert "upgrade torch_npu or remove core_limit" in msg
    assert npu.names() == ["set_device"]


def test_set_device_limit_failing_is_one_line(fake_npu):
    npu = fake_npu()

    def missing_in_cann(*args):
        raise RuntimeError("Failed to find function aclrtSetDeviceResLimit\n[ERROR] ERR00005")

    npu.set_device_limit = missing_in_cann
    with pytest.raises(DeviceError) as info:
        NpuBackend().pin(limited("A"))
    msg = str(info.value)
    assert "\n" not in msg and "ERR00005" not in msg
    assert "slot A: torch_npu.npu.set_device_limit(0, 12, 24) failed" in msg
    assert "aclrtSetDeviceResLimit" in msg and "remove core_limit" in msg


def test_no_readback_is_recorded_as_none(fake_npu):
    fake_npu(has_readback=False)
    backend = NpuBackend()
    backend.pin(limited("A"))
    assert backend.core_limit_info()["readback"] is None


# --- the chip's counts when torch_npu does not give them -------------------------------------

# NOT a capture: `npu-smi info -t common -i N -c C` laid out as the key/value views are
# (TAB-led "key : value" lines; with -c, that chip's fields alone), with "Aicore Count", the
# field Ascend's op-plugin tests read from this view. tests/fixtures/npu-smi/ holds no capture
# of it. AI Cores per (NPU ID, Chip ID):
AICORES = {(0, 0): 30, (1, 1): 20}
MAPPING = (
    "        NPU ID        Chip ID        Chip Logic ID        Chip Name\n"
    "        0             0              0                    Ascend 910B3\n"
    "        1             1              3                    Ascend 910B3\n"
)


@pytest.fixture
def npu_smi(monkeypatch):
    """A stand-in for npusmi.run; returns the argument lists it was asked."""
    asked = []

    def run(*args):
        asked.append(list(args))
        if args == ("info", "-m"):
            return MAPPING
        if args[:4] == ("info", "-t", "common", "-i") and args[5:6] == ("-c",):
            n = AICORES[int(args[4]), int(args[6])]
            return f"\tAicore Usage Rate(%)           : 0\n\tAicore Count                   : {n}\n"
        raise NpuSmiError(f"unexpected npu-smi {args}")

    monkeypatch.setattr(npusmi, "run", run)
    # What the worker hands every NPU backend (measure.worker.worker_backend).
    monkeypatch.setattr(NpuBackend, "aicore_count_reader", staticmethod(npusmi.aicore_count))
    return asked


def test_counts_from_npu_smi_when_torch_npu_has_none(fake_npu, npu_smi):
    npu = fake_npu(has_props=False)
    backend = NpuBackend()
    # runtime device 3 is NPU 1, chip 1 for npu-smi: 20 AI Cores, so 20 cube and 40 vector
    counts = backend.core_counts(limited(index=3))
    assert (counts.cube, counts.vector) == (20, 40)
    assert counts.source == "npu-smi info -t common Aicore Count (vector = 2 x cube)"
    assert ["info", "-t", "common", "-i", "1", "-c", "1"] in npu_smi
    backend.pin(limited("A", 10, 20, index=3))
    assert ("set_device_limit", (0, 10, 20)) in npu.calls
    assert backend.core_limit_info()["chip_cube"] == 20
    fake_npu(has_props=False)  # another worker process
    with pytest.raises(
        DeviceError, match=r"cube is 21 but the chip has 20 cube cores, npu-smi info -t common"
    ):
        NpuBackend().pin(limited("B", 21, 40, index=3))


def test_counts_assumed_when_nothing_answers(fake_npu, no_npu_smi):
    fake_npu(has_props=False)
    counts = NpuBackend().core_counts(limited())
    assert (counts.cube, counts.vector) == (ASSUMED_COUNTS.cube, ASSUMED_COUNTS.vector) == (24, 48)
    assert counts.source.startswith("assumed: Ascend 910B2 figures")
    # why each source gave nothing, for the record
    assert "torch_npu: AttributeError" in counts.source
    assert "npu-smi is not on PATH" in counts.source
    with pytest.raises(DeviceError, match=r"has 24 cube cores, assumed: Ascend 910B2"):
        NpuBackend().pin(limited("A", 25, 24))


def test_zero_counts_from_torch_npu_fall_through(fake_npu, npu_smi):
    fake_npu(cube=0, vector=0)
    counts = NpuBackend().core_counts(limited(index=0))
    # logic id 0 is NPU 0 chip 0 in the mapping, which prints 30 AI Cores in the view above
    assert (counts.cube, counts.vector) == (30, 60)


def test_without_a_reader_npu_smi_is_not_asked(fake_npu, npu_smi, monkeypatch):
    """The backend imports no telemetry (a later stage): npu-smi is asked only through the
    reader the worker hands in."""
    monkeypatch.setattr(NpuBackend, "aicore_count_reader", None)
    fake_npu(has_props=False)
    counts = NpuBackend().core_counts(limited())
    assert counts.source.startswith("assumed: Ascend 910B2 figures")
    assert "npu-smi: not asked" in counts.source and npu_smi == []


def test_the_worker_hands_the_npu_backend_its_npu_smi_reader(fake_npu):
    from dualbench.measure.worker import worker_backend

    fake_npu()
    assert worker_backend("npu").aicore_count_reader is npusmi.aicore_count
