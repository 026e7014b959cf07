"""CUDA backend: one GPU per slot (or one shared), pinned with CUDA_VISIBLE_DEVICES.

Owns the CUDA side of DESIGN §5: availability, device facts for provenance, pinning a worker
to its GPU, synchronisation, peak-memory counters and OOM recognition. torch is imported inside
the methods so that importing this module never initialises anything.
"""

from __future__ import annotations

from typing import Any

from dualbench.backends.base import Backend, Slot


class CudaBackend(Backend):
    kind = "cuda"
    visible_devices_env = "CUDA_VISIBLE_DEVICES"
    alloc_conf_env = "PYTORCH_CUDA_ALLOC_CONF"

    @classmethod
    def available(cls) -> bool:
        try:
            import torch

            return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
        except Exception:
            # A broken driver install must make `device: auto` fall back, not crash.
            return False

    def device_count(self) -> int:
        import torch

        # torch asks NVML first, which does not poison a later fork (torch/cuda/__init__.py).
        return torch.cuda.device_count()

    def describe(self) -> dict[str, Any]:
        """Device facts for provenance. Reading the name initialises CUDA in the calling
        process, so the runner should call this from a worker or a spawned (not forked) one."""
        import torch

        count = self.device_count()
        name = None
        if count > 0:
            try:
                name = torch.cuda.get_device_name(0)
            except Exception:
                name = None  # recorded as unknown rather than guessed
        return {
            "kind": self.kind,
            "name": name,
            "count": count,
            "cuda_version": torch.version.cuda,
            "torch_version": torch.__version__,
        }

    def pin(self, slot: Slot) -> None:
        import torch

        # CUDA_VISIBLE_DEVICES (worker_env) already narrowed the worker to its GPU, which it
        # therefore sees as cuda:0 whatever slot.index is. Host threads keep torch's default:
        # the CPU only feeds the GPU here.
        torch.cuda.set_device(0)

    def torch_device(self):
        import torch

        return torch.device("cuda:0")

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize()

    def reset_peak_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats()

    def memory(self) -> dict[str, Any]:
        import torch

        return {
            "peak_mem_bytes": torch.cuda.max_memory_allocated(),
            "mem_reserved_peak_bytes": torch.cuda.max_memory_reserved(),
            "mem_source": "torch.cuda.max_memory_allocated",
        }

    def is_oom(self, exc: BaseException) -> bool:
        import torch

        # torch.cuda.OutOfMemoryError is an alias of torch.OutOfMemoryError (torch >= 2.5) and
        # exists on older releases too, so this works across the supported torch range.
        if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
            return True
        # Libraries sometimes re-raise the allocator's error as a plain RuntimeError.
        return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
