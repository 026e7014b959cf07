"""Device backends: where a worker runs, how it is pinned, synchronised and measured.

``resolve(device, slots)`` turns the config's ``device`` / ``slots`` into a backend and one
``Slot`` per slot name. Device modules (torch_npu, CUDA) are imported only by the backend that
needs them, so selecting ``cpu`` (or ``auto`` on a machine without accelerators) never touches
them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from dualbench.backends.base import Backend, DeviceError, Slot

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
    device: str, slot_devices: dict[str, str] | str, names: Sequence[str] = ()
) -> tuple[Backend, dict[str, Slot]]:
    """Backend and slots for a run. ``slot_devices`` maps slot name -> device string, or is
    "auto": the backend spreads the slots ``names`` (every slot of the config, in order, so a
    slot gets the same device alone and co-located) over what it has."""
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
        return backend, backend.auto_slots(names)
    return backend, {name: backend.parse_slot(name, spec) for name, spec in slot_devices.items()}


__all__ = ["Backend", "DeviceError", "Slot", "backend_class", "detect", "resolve"]
