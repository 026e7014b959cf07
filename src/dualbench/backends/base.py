"""The interface every device backend implements (DESIGN §5).

Two halves, because a worker must be pinned before torch (or torch_npu) initialises a device:
- in the parent (runner): ``worker_env`` gives the environment a worker starts with;
- in the worker: ``pin``, ``device``, ``synchronize``, memory counters, OOM detection.
A process that hosts several slots (the single-thread schedule) has its own counterparts:
``group_env`` in the parent; ``pin_group``, ``group_device``, ``synchronizer``, streams
(``new_stream``, ``on_stream``), ``utilization_reader`` and ``device_memory`` per device in
the worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from dualbench.errors import DeviceError


@dataclasses.dataclass(frozen=True)
class CoreLimit:
    """The AI cores one NPU worker process may use: ``cube`` (matrix) and ``vector`` cores,
    applied with torch_npu.npu.set_device_limit (see dualbench.backends.npu). Two workers on
    one NPU, each limited to part of its cores, split the chip instead of time-sharing all of
    it."""

    cube: int
    vector: int

    def to_dict(self) -> dict[str, int]:
        return {"cube": self.cube, "vector": self.vector}

    @classmethod
    def from_dict(cls, d: Any, slot_name: str = "") -> CoreLimit:
        """{"cube": int, "vector": int} -> CoreLimit; a wrong shape is one DeviceError line
        (the values' ranges are checked against the chip by npu.check_core_limit)."""
        where = f"slot {slot_name}: core_limit" if slot_name else "core_limit"
        example = "write it {cube: 12, vector: 24}"
        if not isinstance(d, dict) or set(d) != {"cube", "vector"}:
            raise DeviceError(f"{where} is {d!r}; {example}")
        for key in ("cube", "vector"):
            # bool is an int subclass: True would pass as one core.
            if isinstance(d[key], bool) or not isinstance(d[key], int):
                raise DeviceError(f"{where}.{key} is {d[key]!r}, not a whole number; {example}")
        return cls(d["cube"], d["vector"])


@dataclasses.dataclass(frozen=True)
class Slot:
    """Where one model runs. ``index`` is the physical device id (accelerators) and
    ``cores`` the CPU core set the worker is pinned to (all backends pin host threads).
    ``core_limit`` (NPU only, None: the whole chip) is the share of the NPU's AI cores the
    worker may use."""

    name: str
    kind: str
    index: int | None = None
    cores: tuple[int, ...] = ()
    core_limit: CoreLimit | None = None

    @property
    def label(self) -> str:
        if self.kind == "cpu":
            return f"cpu:{format_cores(self.cores)}"
        return f"{self.kind}:{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "index": self.index,
            "cores": list(self.cores),
            "core_limit": self.core_limit.to_dict() if self.core_limit else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slot:
        # Records written before core limits existed have no "core_limit" key.
        limit = d.get("core_limit")
        return cls(
            d["name"],
            d["kind"],
            d["index"],
            tuple(d["cores"]),
            CoreLimit.from_dict(limit, d["name"]) if limit is not None else None,
        )


def format_cores(cores: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    parts, start, prev = [], None, None
    for c in sorted(cores):
        if start is None:
            start = prev = c
        elif c == prev + 1:
            prev = c
        else:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = prev = c
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(parts)


def parse_cores(text: str) -> tuple[int, ...]:
    """'0-3,6' -> (0, 1, 2, 3, 6)."""
    cores: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or not (hi or lo).isdigit():
            raise DeviceError(f"core range {part!r} is not valid; write cores like 0-3,6")
        lo_i, hi_i = int(lo), int(hi or lo)
        if hi_i < lo_i:
            raise DeviceError(f"core range {part!r} runs backwards; write it low-high")
        cores.update(range(lo_i, hi_i + 1))
    return tuple(sorted(cores))


class Backend:
    """Base class; subclasses set ``kind`` and override the device-specific parts."""

    kind: ClassVar[str] = ""
    # Environment variable that pins a worker to one accelerator (None on CPU).
    visible_devices_env: ClassVar[str | None] = None
    # Environment variable that carries allocator settings (None on CPU).
    alloc_conf_env: ClassVar[str | None] = None

    # --- parent side -------------------------------------------------------------------

    @classmethod
    def available(cls) -> bool:
        raise NotImplementedError

    def device_count(self) -> int:
        raise NotImplementedError

    def auto_slots(self, names: Sequence[str]) -> dict[str, Slot]:
        """One device per slot, in order, as long as there are devices; then the slots wrap
        around (two slots on one device share device 0)."""
        count = self.device_count()
        if count < 1:
            raise DeviceError(f"no {self.kind} device is visible; set device: cpu or check drivers")
        return {name: Slot(name, self.kind, i % count) for i, name in enumerate(names)}

    def parse_slot(self, name: str, spec: str) -> Slot:
        kind, _, rest = spec.partition(":")
        if kind != self.kind:
            raise DeviceError(f"slot {name} is {spec!r} but the backend is {self.kind}")
        if not rest.isdigit():
            raise DeviceError(
                f"slot {name} is {spec!r}; write it {self.kind}:<index>, e.g. {self.kind}:0"
            )
        index = int(rest)
        count = self.device_count()
        if index >= count:
            raise DeviceError(
                f"slot {name} asks for {spec} but only {count} {self.kind} device(s) are visible"
            )
        return Slot(name, self.kind, index)

    def worker_env(self, slot: Slot, allocator: str = "") -> dict[str, str]:
        """Variables a worker for ``slot`` starts with. An accelerator worker sees only its
        device, which it then addresses as index 0."""
        env: dict[str, str] = {}
        if self.visible_devices_env and slot.index is not None:
            env[self.visible_devices_env] = str(slot.index)
        if allocator and self.alloc_conf_env:
            env[self.alloc_conf_env] = allocator
        return env

    def describe(self) -> dict[str, Any]:
        """Device facts for provenance (name, count, driver...)."""
        return {"kind": self.kind}

    # --- worker side -------------------------------------------------------------------

    def pin(self, slot: Slot) -> None:
        """Pin the calling worker process (after env is set, before models load)."""

    def torch_device(self):
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for queued device work, so a host timestamp means the work is done."""

    def memory(self) -> dict[str, Any]:
        """Peak memory of this worker: peak_mem_bytes, mem_reserved_peak_bytes, mem_source."""
        raise NotImplementedError

    def is_oom(self, exc: BaseException) -> bool:
        return isinstance(exc, MemoryError)

    # Whether utilization() has something to read (the worker samples it only then).
    in_process_utilization = False

    def utilization(self) -> float | None:
        """The device's busy percentage as the runtime reports it in-process, or None where the
        backend has no such call (CPU; CUDA's goes through NVML, sampled by the parent)."""
        return None

    # --- several slots in one process (the single-thread schedule) ----------------------
    # One process hosts every slot of a group: it sees all of their devices (or cores) at
    # once and puts each slot's model on its own device, addressed by its local index.

    def group_indices(self, slots: Sequence[Slot]) -> list[int]:
        """The physical device ids of ``slots`` in slot order, each once: the devices a process
        hosting them sees, in this order, so a slot's model is on its position here."""
        return list(dict.fromkeys(s.index for s in slots if s.index is not None))

    def group_slot(self, slots: Sequence[Slot]) -> Slot:
        """``slots`` as one, to pin one process with: their cores together, the first one's
        device. A core limit applies to a process, so the slots must agree on theirs."""
        limits = {s.core_limit for s in slots}
        if len(limits) > 1:
            raise DeviceError(
                f"slots {', '.join(s.name for s in slots)} run in one process (single-thread "
                "layout) but have different core_limit settings; give them the same or none"
            )
        cores = tuple(sorted({c for s in slots for c in s.cores}))
        return dataclasses.replace(slots[0], name="+".join(s.name for s in slots), cores=cores)

    def group_env(self, slots: Sequence[Slot], allocator: str = "") -> dict[str, str]:
        """``worker_env`` for one process hosting ``slots``: every device of theirs visible, in
        group_indices order (a CPU process gets one thread per core of all the slots)."""
        env = self.worker_env(self.group_slot(slots), allocator)
        indices = self.group_indices(slots)
        if self.visible_devices_env and indices:
            env[self.visible_devices_env] = ",".join(str(i) for i in indices)
        return env

    def pin_group(self, slots: Sequence[Slot]) -> None:
        """``pin`` for the process hosting ``slots``."""
        self.pin(self.group_slot(slots))

    def group_device(self, slots: Sequence[Slot], slot: Slot):
        """The torch device of ``slot``'s model in the process hosting ``slots``."""
        return self.torch_device()

    def synchronizer(self, device) -> Callable[[], None]:
        """A call that waits for the queued work of ``device`` (one of a group's)."""
        return self.synchronize

    def new_stream(self, device):
        """A stream of its own on ``device`` for one slot's calls; None where there are none."""
        return None

    def on_stream(self, stream):
        """Context manager under which work is queued on ``stream`` (new_stream's)."""
        return contextlib.nullcontext()

    def utilization_reader(self, device) -> Callable[[], float | None]:
        """``utilization`` of one of a group's devices."""
        return self.utilization

    def device_memory(self, device) -> dict[str, Any]:
        """``memory`` of one of a group's devices (on CPU, the process's)."""
        return self.memory()


class AcceleratorBackend(Backend):
    """NPU and CUDA workers differ only in the device module: torch_npu registers ``torch.npu``
    with the same function names as ``torch.cuda`` (synchronize, set_device, the peak-memory
    counters), so the worker-side calls live here once, on ``device_module``."""

    @property
    def device_module(self):
        raise NotImplementedError

    def device_count(self) -> int:
        return int(self.device_module.device_count())

    def pin(self, slot: Slot) -> None:
        # The visible-devices variable (worker_env) already narrowed the worker to its device,
        # which it therefore sees as index 0 whatever slot.index (the physical id) is. Host
        # threads keep torch's default: the CPU only feeds the device.
        self.device_module.set_device(0)

    def torch_device(self):
        import torch

        return torch.device(f"{self.kind}:0")

    def synchronize(self) -> None:
        self.device_module.synchronize()

    def memory(self) -> dict[str, Any]:
        allocated = self.device_module.max_memory_allocated()
        reserved = self.device_module.max_memory_reserved()
        return {
            "peak_mem_bytes": allocated,
            "mem_reserved_peak_bytes": reserved,
            # Memory the caching allocator holds but the model does not use at the peak.
            "fragmentation": 1 - allocated / reserved if reserved else None,
            "mem_source": f"torch.{self.kind}.max_memory_allocated",
        }

    # --- several slots in one process: torch.npu has torch.cuda's device and stream API ----

    def group_device(self, slots: Sequence[Slot], slot: Slot):
        import torch

        return torch.device(self.kind, self.group_indices(slots).index(slot.index))

    def synchronizer(self, device) -> Callable[[], None]:
        module = self.device_module
        return lambda: module.synchronize(device)

    def new_stream(self, device):
        return self.device_module.Stream(device=device)

    def on_stream(self, stream):
        return self.device_module.stream(stream)

    def utilization_reader(self, device) -> Callable[[], float | None]:
        module = self.device_module
        return lambda: float(module.utilization(device))

    def device_memory(self, device) -> dict[str, Any]:
        allocated = self.device_module.max_memory_allocated(device)
        reserved = self.device_module.max_memory_reserved(device)
        return {
            "peak_mem_bytes": allocated,
            "mem_reserved_peak_bytes": reserved,
            "fragmentation": 1 - allocated / reserved if reserved else None,
            "mem_source": f"torch.{self.kind}.max_memory_allocated",
        }
