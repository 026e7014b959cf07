"""Device backends: where a worker runs, how it is pinned, synchronised and measured.

``resolve(device, slots, names, core_limits)`` turns the config's ``device`` / ``slots`` into
a backend and one ``Slot`` per slot name, with the NPU core limit of each slot that has one.
Device modules (torch_npu, CUDA) are imported only by the backend that needs them, so
selecting ``cpu`` (or ``auto`` on a machine without accelerators) never touches them.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence

from dualbench.backends.base import Backend, CoreLimit, DeviceError, Slot
from dualbench.backends.npu import check_core_limit

_BACKENDS = {
    "cpu": "dualbench.backends.cpu:CpuBackend",
    "cuda": "dualbench.backends.cuda:CudaBackend",
    "npu": "dualbench.backends.npu:NpuBackend",
}


def backend_class(kind: str) -> type[Backend]:
    try:
        module_name, _, cls = _BACKENDS[kind].partition(":")
    except KeyError:
        raise DeviceError(f"device {kind!r} is unknown; use auto, cpu, cuda or npu") from None
    return getattr(importlib.import_module(module_name), cls)


def detect() -> str:
    """``device: auto``: npu if torch_npu imports and sees a device, else cuda, else cpu."""
    for kind in ("npu", "cuda"):
        if backend_class(kind).available():
            return kind
    return "cpu"


def resolve(
    device: str,
    slot_devices: dict[str, str] | str,
    names: Sequence[str] = (),
    core_limits: Mapping[str, CoreLimit | dict | None] | None = None,
) -> tuple[Backend, dict[str, Slot]]:
    """Backend and slots for a run. ``slot_devices`` maps slot name -> device string, or is
    "auto": the backend spreads the slots ``names`` (every slot of the config, in order, so a
    slot gets the same device alone and co-located) over what it has. ``core_limits`` maps a
    slot name to its NPU core limit ({"cube": int, "vector": int}) or None; a limit on another
    backend, or below one core, is a DeviceError (the chip's counts are checked in the worker,
    which can read them)."""
    if device == "auto":
        kinds = (
            set()
            if slot_devices == "auto"
            else {spec.split(":", 1)[0] for spec in slot_devices.values()}
        )
        device = kinds.pop() if len(kinds) == 1 else detect()
    backend = backend_class(device)()
    if slot_devices == "auto":
        if not names:
            raise ValueError("resolve(..., 'auto') needs the slot names to spread")
        slots = backend.auto_slots(names)
    else:
        slots = {name: backend.parse_slot(name, spec) for name, spec in slot_devices.items()}
    return backend, _with_core_limits(backend.kind, slots, core_limits or {})


def _with_core_limits(
    kind: str, slots: dict[str, Slot], core_limits: Mapping[str, CoreLimit | dict | None]
) -> dict[str, Slot]:
    limited = dict(slots)
    for name, raw in core_limits.items():
        if raw is None:
            continue
        if name not in slots:
            raise DeviceError(
                f"core_limit for {name}, which is not a slot of this run "
                f"({', '.join(slots)}); give core limits to slots only"
            )
        if kind != "npu":
            raise DeviceError(
                f"slot {name}: core_limit splits an Ascend NPU's AI cores, but the backend is "
                f"{kind}; remove core_limit or set device: npu"
            )
        limited[name] = dataclasses.replace(
            slots[name], core_limit=check_core_limit(raw, None, None, name)
        )
    return limited


__all__ = [
    "Backend",
    "CoreLimit",
    "DeviceError",
    "Slot",
    "check_core_limit",
    "backend_class",
    "detect",
    "resolve",
]
