"""CPU backend: slots are disjoint core sets; each worker is pinned with sched_setaffinity
and runs torch with one thread per core of its set."""

from __future__ import annotations

import os
import platform
import resource
from collections.abc import Sequence
from typing import Any

from dualbench.backends.base import Backend, DeviceError, Slot, parse_cores
from dualbench.hardware import cpu_facts


def _usable_cores() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0)))


class CpuBackend(Backend):
    kind = "cpu"

    @classmethod
    def available(cls) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def auto_slots(self, names: Sequence[str]) -> dict[str, Slot]:
        """Split the usable cores into equal disjoint sets, one per slot in order (the first
        slot gets the lowest cores); cores left over by the division stay unused."""
        cores = _usable_cores()
        if len(cores) < len(names):
            # Too few cores for disjoint slots: all share them, and the report says so.
            return {name: Slot(name, "cpu", None, cores) for name in names}
        size = len(cores) // len(names)
        return {
            name: Slot(name, "cpu", None, cores[i * size : (i + 1) * size])
            for i, name in enumerate(names)
        }

    def parse_slot(self, name: str, spec: str) -> Slot:
        kind, _, rest = spec.partition(":")
        if kind != "cpu":
            raise DeviceError(f"slot {name} is {spec!r} but the backend is cpu")
        cores = parse_cores(rest)
        missing = sorted(set(cores) - set(_usable_cores()))
        if missing:
            raise DeviceError(
                f"slot {name} asks for cores {missing} that this process may not use "
                f"(usable: {list(_usable_cores())}); fix slots in the config"
            )
        return Slot(name, "cpu", None, cores)

    def worker_env(self, slot: Slot, allocator: str = "") -> dict[str, str]:
        # OpenMP/MKL read these before torch's own set_num_threads, and would otherwise spawn
        # one thread per machine core into a slot that has fewer.
        n = str(len(slot.cores) or 1)
        return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}

    def describe(self) -> dict[str, Any]:
        """Device facts for provenance: what the CPU computes natively (its flags) and which
        kernels torch dispatches to on it (its capability, e.g. AVX512 or AVX2)."""
        import torch

        facts = cpu_facts()
        return {
            "kind": "cpu",
            "name": facts.model,
            "machine": platform.machine(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu": facts.to_dict(),
        }

    def pin(self, slot: Slot) -> None:
        import torch

        if slot.cores:
            os.sched_setaffinity(0, slot.cores)
        torch.set_num_threads(max(1, len(slot.cores)))

    def torch_device(self):
        import torch

        return torch.device("cpu")

    def memory(self) -> dict[str, Any]:
        # ru_maxrss is in KiB on Linux: the worker's peak resident set, weights included.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"peak_mem_bytes": peak, "mem_reserved_peak_bytes": None, "mem_source": "peak RSS"}
