"""CUDA backend: one GPU per slot (or one shared), pinned with CUDA_VISIBLE_DEVICES.

Owns the CUDA side of DESIGN §5: availability, device facts for provenance, pinning a worker
to its GPU, synchronisation, peak-memory counters and OOM recognition. torch is imported inside
the methods so that importing this module never initialises anything.
"""

from __future__ import annotations

from typing import Any

from dualbench.backends.base import AcceleratorBackend


class CudaBackend(AcceleratorBackend):
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

    def worker_env(self, slot, allocator: str = "") -> dict[str, str]:
        # CUDA numbers GPUs fastest-first by default, NVML by PCI bus: in PCI order the index
        # in CUDA_VISIBLE_DEVICES and the one the parent samples with NVML are the same GPU.
        return {**super().worker_env(slot, allocator), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}

    @property
    def device_module(self):
        import torch

        # device_count asks NVML first, which does not poison a later fork
        # (torch/cuda/__init__.py).
        return torch.cuda

    def describe(self) -> dict[str, Any]:
        """Device facts for provenance. Reading the name initialises CUDA in the calling
        process, so the runner should call this from a worker or a spawned (not forked) one."""
        import torch

        count = self.device_count()
        name = capability = None
        if count > 0:
            try:
                name = torch.cuda.get_device_name(0)
                capability = list(torch.cuda.get_device_capability(0))
            except Exception:
                pass  # recorded as unknown rather than guessed
        return {
            "kind": self.kind,
            "name": name,
            "compute_capability": capability,
            "count": count,
            "cuda_version": torch.version.cuda,
            "torch_version": torch.__version__,
        }

    def is_oom(self, exc: BaseException) -> bool:
        import torch

        # torch.cuda.OutOfMemoryError is an alias of torch.OutOfMemoryError (torch >= 2.5) and
        # exists on older releases too, so this works across the supported torch range.
        if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
            return True
        # Libraries sometimes re-raise the allocator's error as a plain RuntimeError.
        return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)
