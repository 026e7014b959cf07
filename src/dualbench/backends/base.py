"""The interface every device backend implements (DESIGN §5).

Two halves, because a worker must be pinned before torch (or torch_npu) initialises a device:
- in the parent (runner): ``worker_env`` gives the environment a worker starts with;
- in the worker: ``pin``, ``device``, ``synchronize``, memory counters, OOM detection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from dualbench.errors import DeviceError


@dataclasses.dataclass(frozen=True)
class Slot:
    """Where one model runs. ``index`` is the physical device id (accelerators) and
    ``cores`` the CPU core set the worker is pinned to (all backends pin host threads)."""

    name: str
    kind: str
    index: int | None = None
    cores: tuple[int, ...] = ()

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slot:
        return cls(d["name"], d["kind"], d["index"], tuple(d["cores"]))


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
