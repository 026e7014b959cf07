"""Ascend NPU backend: one NPU per slot (or one shared), pinned with ASCEND_RT_VISIBLE_DEVICES.

Owns the NPU side of DESIGN §5: availability, device facts for provenance, pinning a worker to
its NPU, synchronisation, peak-memory counters and OOM recognition.

torch_npu is optional and is imported only inside this module's methods, never at import time,
so the package works (and ``device: auto`` falls back) on machines without CANN. The APIs used
here were checked against the torch_npu sources (github.com/Ascend/pytorch):
- torch_npu/npu/__init__.py: ``is_available``, ``device_count`` (honours
  ASCEND_RT_VISIBLE_DEVICES), ``get_device_name``, ``utilization``; memory functions come from
  torch_npu/npu/memory.py (``max_memory_allocated``, ``max_memory_reserved``,
  ``reset_peak_memory_stats``, same names as torch.cuda); ``synchronize`` / ``set_device`` from
  torch_npu/npu/utils.py.
- torch_npu/_init/registry/backend.py registers ``torch_npu.npu`` as ``torch.npu``; this module
  calls it as ``torch_npu.npu`` so there is a single place (the import) that can fail.

Core partitions (Atlas A2/A3), checked in the same sources:
- torch_npu/npu/npu_config.py: ``set_device_limit(device, cube_num=-1, vector_num=-1)``
  (re-exported as torch_npu.npu.set_device_limit by torch_npu/npu/__init__.py), present on
  the v2.1.0-7.2.0 and v2.6.0-7.2.0 release branches and every later one (v2.7.1-7.2.0 on,
  v2.8.0, v2.9.0 ... v2.12.0), absent from 7.1.0 and earlier. It checks only the device id
  (an int, not bool, below device_count()), -1 leaves a core kind unset, and the counts go
  unchecked to aclrtSetDeviceResLimit (torch_npu/csrc/core/npu/NPUFunctions.cpp
  SetDeviceResLimit, which refuses a device this process has not set: hence set_device
  first). The function is wrapped to run once per process: a second call raises
  RuntimeError. ``get_device_limit(device)`` reads back {"cube_core_num", "vector_core_num"}.
- torch_npu/csrc/npu/Module.cpp: ``get_device_properties(i)`` has ``cube_core_num`` and
  ``vector_core_num`` (aclGetDeviceCapability AI_CORE_NUM / VECTOR_CORE_NUM), on the same
  branches as set_device_limit: the chip's own counts, to check a limit against.

Device ids: ASCEND_RT_VISIBLE_DEVICES=k makes the worker see physical NPU k as ``npu:0``, while
npu-smi keeps reporting physical ids. ``Slot.index`` is the physical id, so it is what goes into
the environment variable and what npu-smi sampling must be asked about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from dualbench.backends.base import AcceleratorBackend, CoreLimit, DeviceError, Slot

# Messages torch_npu puts in OOM errors. Releases up to the CANN 7.x line raise a plain
# RuntimeError (AT_ERROR) with "NPU out of memory" (torch_npu/csrc/core/npu/
# NPUCachingAllocator.cpp on the v2.x-7.3.0 branches); later ones raise torch.OutOfMemoryError.
# "EL0004" is the CANN error code torch_npu itself treats as OOM (isCannOOM in
# torch_npu/csrc/core/npu/NPUException.cpp) when the runtime, not the allocator, runs out.
_OOM_MARKERS = ("NPU out of memory", "EL0004")


@dataclasses.dataclass(frozen=True)
class CoreCounts:
    """A chip's cube and vector core counts and where they were read."""

    cube: int
    vector: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"cube": self.cube, "vector": self.vector, "source": self.source}


# Used only when neither torch_npu nor npu-smi gives the counts, and recorded as assumed: an
# Ascend 910B2 (Atlas A2) has 24 AI Cores of one cube and two vector cores each. CANN's
# platform file for it (<CANN>/<arch>-linux/data/platform_config/<soc>.ini) reads
# cube_core_cnt=24, vector_core_cnt=48, as quoted in Ascend/torchair
# docs/context/limit_core_num.md.
ASSUMED_COUNTS = CoreCounts(24, 48, "assumed: Ascend 910B2 figures (24 cube, 48 vector)")
# On A2/A3 an AI Core is one cube and two vector cores (CANN's 910B platform file, above).
VECTOR_PER_AICORE = 2


def check_core_limit(
    limit: CoreLimit | dict,
    cube_total: int | None,
    vector_total: int | None,
    slot_name: str,
    source: str = "",
) -> CoreLimit:
    """``limit`` as a CoreLimit, or DeviceError in one line when a count is below 1 or above
    the chip's (``cube_total`` / ``vector_total``; None: not known yet, only the lower bound is
    checked). ``source`` says where the chip's counts came from, for the message. Pure: the
    config validation can call it when the counts are known, the worker does before applying
    the limit."""
    if not isinstance(limit, CoreLimit):
        limit = CoreLimit.from_dict(limit, slot_name)
    origin = f", {source}" if source else ""
    for kind, value, total in (
        ("cube", limit.cube, cube_total),
        ("vector", limit.vector, vector_total),
    ):
        span = f"1 to {total} (the chip's {kind} core count{origin})" if total else "at least 1"
        if value < 1:
            raise DeviceError(
                f"slot {slot_name}: core_limit.{kind} is {value}, which leaves the worker no "
                f"{kind} cores; set it to {span}"
            )
        if total is not None and value > total:
            raise DeviceError(
                f"slot {slot_name}: core_limit.{kind} is {value} but the chip has {total} "
                f"{kind} cores{origin}; set it to {span}"
            )
    return limit


def import_torch_npu():
    """torch_npu, or DeviceError saying in one line what is missing and how to fix it."""
    try:
        import torch_npu
    except Exception as exc:
        # Not only ImportError: torch_npu raises RuntimeError on import when torch is a CUDA
        # build ("Two accelerators cannot be used at the same time", torch_npu/__init__.py),
        # and a missing CANN library surfaces as OSError/ImportError from its C extension.
        raise DeviceError(_missing_message(exc)) from exc
    return torch_npu


def _missing_message(exc: BaseException) -> str:
    try:
        import torch

        torch_version = torch.__version__.split("+", 1)[0]
    except Exception:
        torch_version = "the installed torch"
    reason = (str(exc).strip().splitlines() or [""])[0]
    detail = f" ({type(exc).__name__}: {reason})" if reason else ""
    return (
        f"device npu needs torch_npu (Ascend CANN + torch_npu matching torch {torch_version})"
        f"{detail}; install them or set device: cpu"
    )


class NpuBackend(AcceleratorBackend):
    kind = "npu"
    visible_devices_env = "ASCEND_RT_VISIBLE_DEVICES"
    alloc_conf_env = "PYTORCH_NPU_ALLOC_CONF"

    def __init__(self) -> None:
        # Selecting npu explicitly without torch_npu fails here, with the fix in the message,
        # instead of as an AttributeError deep inside a worker.
        self._torch_npu = import_torch_npu()
        # What pin() applied with set_device_limit (None: the whole chip), for describe().
        self._core_limit: dict[str, Any] | None = None

    @property
    def device_module(self):
        return self._torch_npu.npu

    @classmethod
    def available(cls) -> bool:
        try:
            npu = import_torch_npu().npu
            return bool(npu.is_available()) and npu.device_count() > 0
        except Exception:
            return False

    def describe(self) -> dict[str, Any]:
        """Device facts for provenance; a fact torch_npu cannot give is None, not a guess.
        After pin() applied a core limit, ``core_limit`` says what (core_limit_info)."""
        count = self.device_count()
        info = {
            "kind": self.kind,
            "name": _try(lambda: self.device_module.get_device_name(0)) if count > 0 else None,
            "count": count,
            # version.py is generated by torch_npu's setup.py with __version__ (+ git_version).
            "torch_npu_version": getattr(self._torch_npu, "__version__", None),
            # torch_npu.npu.utils.get_cann_version exists from the CANN 7.0.0 releases on.
            "cann_version": _try(lambda: self.device_module.utils.get_cann_version()),
        }
        if self._core_limit is not None:
            info["core_limit"] = self.core_limit_info()
        return info

    # --- core partitions ----------------------------------------------------------------

    # Reads the chip's AI Core count through npu-smi (dualbench.telemetry.npusmi.aicore_count),
    # core_counts' second source. Handed in by the worker: telemetry is a later stage than the
    # backends, which must not import it. None: that source is skipped, and the record says so.
    aicore_count_reader: Callable[[int], int] | None = None

    def pin(self, slot: Slot) -> None:
        super().pin(slot)  # set_device(0), which set_device_limit needs done first
        if slot.core_limit is not None:
            self._apply_core_limit(slot)

    def core_counts(self, slot: Slot) -> CoreCounts:
        """The chip's cube and vector core counts: torch_npu's device properties where it
        has them, else npu-smi's Aicore Count (vector = 2 x cube on A2/A3), else the assumed
        910B2 figures; ``source`` says which, and why the earlier ones gave nothing."""
        misses = []
        try:
            props = self.device_module.get_device_properties(0)
            cube, vector = int(props.cube_core_num), int(props.vector_core_num)
            if cube > 0 and vector > 0:
                return CoreCounts(cube, vector, "torch_npu.npu.get_device_properties(0)")
            misses.append(f"torch_npu reports {cube} cube / {vector} vector")
        except Exception as exc:
            misses.append(f"torch_npu: {_first_line(exc)}")
        reader = self.aicore_count_reader
        if reader is None:
            misses.append("npu-smi: not asked (no reader given to the backend)")
        else:
            try:
                # npu-smi numbers chips physically; slot.index is the id the runtime saw
                # before ASCEND_RT_VISIBLE_DEVICES narrowed this worker to it.
                aicores = reader(slot.index or 0)
                return CoreCounts(
                    aicores,
                    VECTOR_PER_AICORE * aicores,
                    f"npu-smi info -t common Aicore Count (vector = {VECTOR_PER_AICORE} x cube)",
                )
            except Exception as exc:
                misses.append(f"npu-smi: {_first_line(exc)}")
        reasons = "; ".join(misses)
        return dataclasses.replace(ASSUMED_COUNTS, source=f"{ASSUMED_COUNTS.source}: {reasons}")

    def _apply_core_limit(self, slot: Slot) -> None:
        if self._core_limit is not None:
            # torch_npu runs set_device_limit once per process (npu_config._call_once_class).
            raise DeviceError(
                f"slot {slot.name}: core_limit applies to a whole worker process and this one "
                f"already limits slot {self._core_limit['slot']}; a layout that runs several "
                "slots in one process cannot split cores between them: remove core_limit or "
                "run the slots as separate workers"
            )
        set_limit = getattr(self.device_module, "set_device_limit", None)
        if set_limit is None:
            version = getattr(self._torch_npu, "__version__", "unknown")
            raise DeviceError(
                f"slot {slot.name}: core_limit needs torch_npu.npu.set_device_limit, which "
                f"torch_npu {version} lacks (it came with the 7.2.0 releases); upgrade "
                "torch_npu or remove core_limit"
            )
        counts = self.core_counts(slot)
        limit = check_core_limit(
            slot.core_limit, counts.cube, counts.vector, slot.name, counts.source
        )
        try:
            # Device 0: the worker sees only its own NPU (see AcceleratorBackend.pin).
            set_limit(0, limit.cube, limit.vector)
        except Exception as exc:
            raise DeviceError(
                f"slot {slot.name}: torch_npu.npu.set_device_limit(0, {limit.cube}, "
                f"{limit.vector}) failed ({_first_line(exc)}); core limits need an Atlas A2/A3 "
                "NPU and a CANN that supports them, else remove core_limit"
            ) from exc
        self._core_limit = {
            "slot": slot.name,
            "cube": limit.cube,
            "vector": limit.vector,
            "chip_cube": counts.cube,
            "chip_vector": counts.vector,
            "counts_source": counts.source,
            "applied_with": "torch_npu.npu.set_device_limit",
            # What the runtime reports after the call; None where it cannot say.
            "readback": self._limit_readback(),
        }

    def _limit_readback(self) -> dict[str, int] | None:
        try:
            got = self.device_module.get_device_limit(0)
            return {"cube": int(got["cube_core_num"]), "vector": int(got["vector_core_num"])}
        except Exception:
            return None

    def core_limit_info(self) -> dict[str, Any] | None:
        """What pin() applied (slot, cube, vector, the chip's counts and their source, the
        runtime's read-back), or None when the worker has the whole chip."""
        return None if self._core_limit is None else dict(self._core_limit)

    in_process_utilization = True

    def utilization(self) -> float | None:
        # torch_npu/npu/__init__.py: utilization(device=None), the AI Core busy percentage.
        return float(self.device_module.utilization())

    def is_oom(self, exc: BaseException) -> bool:
        import torch

        # torch_npu raises c10::OutOfMemoryError, which torch maps to torch.OutOfMemoryError;
        # torch.cuda.OutOfMemoryError is the same class under its pre-2.5 name, present in
        # every build (CPU-only included), hence the device-neutral fallback.
        oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        if isinstance(exc, oom_type | MemoryError):
            return True
        return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OOM_MARKERS)


def _try(fn):
    try:
        value = fn()
    except Exception:
        return None
    return None if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
