"""The config held against the machine that will run it: devices and cores that must exist,
the backend ``device: auto`` means, and the dtype ``native16`` means (DESIGN §5, §6); the
``allocator`` keys of that backend (dualbench.config.allocator); hub sources this machine can
have (dualbench.config.hub_access).

Only where the jobs run on this machine (Snakefile); a cluster's login node is not the machine
that measures, so there nothing is resolved, ``native16`` is refused and ``allocator`` is
checked against the backend as written (``unresolved``).
"""

from __future__ import annotations

from dualbench.backends.base import format_cores, parse_cores
from dualbench.config import hub_access
from dualbench.config.allocator import check_allocator, cpu_warning
from dualbench.config.model_sources import parse_source
from dualbench.config.vocabulary import NATIVE16, model_names
from dualbench.errors import ConfigError, DeviceError
from dualbench.native_dtypes import emulation_warning, resolve_native16


def unresolved(cfg: dict) -> dict:
    """What validation records when no machine is checked: the config as written."""
    kind = cfg["device"]
    if kind == "auto" and cfg["slots"] != "auto":
        kind = next(iter(cfg["slots"].values()))["device"].split(":", 1)[0]
    check_allocator(cfg["allocator"], kind)
    if NATIVE16 in cfg["precisions"]:
        raise ConfigError(
            "precisions: native16 is resolved against the hardware of the machine that runs "
            "Snakemake, which is not checked here (cluster execution); name the precision "
            "instead: bf16, fp16 or fp32"
        )
    return {
        "device": cfg["device"],
        "precisions": list(cfg["precisions"]),
        "notes": [],
        "warnings": cpu_warning(cfg["allocator"]) if kind == "cpu" else [],
        "cpu": None,
    }


def resolve_on(machine, cfg: dict) -> dict:
    """Check the config against ``machine`` and resolve what depends on its hardware."""
    kind = _device_kind(machine, cfg)
    check_allocator(cfg["allocator"], kind)
    devices = _check_slots(machine, cfg, kind)
    precisions, notes = [], _sharing_notes(machine, cfg, kind)
    for precision in cfg["precisions"]:
        concrete = precision
        if precision == NATIVE16:
            concrete, why = resolve_native16(kind, machine.cpu, devices)
            notes.append(f"native16 = {concrete} on this {kind}: {why}")
        if concrete in precisions:
            notes.append(f"precisions: {precision} is {concrete}, already listed; run once")
            continue
        precisions.append(concrete)
    capability = None
    if kind == "cuda" and devices:
        capability = min(
            (d.compute_capability for d in devices if d.compute_capability), default=None
        )
    warnings = [
        w
        for p in precisions
        if (w := emulation_warning(kind, p, cpu=machine.cpu, capability=capability))
    ]
    if kind == "cpu":
        warnings += cpu_warning(cfg["allocator"])
    _check_hub_sources(cfg)
    return {
        "device": kind,
        "precisions": precisions,
        "notes": notes,
        "warnings": warnings,
        "cpu": machine.cpu.to_dict(),
    }


def _device_kind(machine, cfg: dict) -> str:
    """The backend the runs will use, decided here so the run specs (the cache keys) say it.

    ``auto`` follows the runtime rule (npu, else cuda, else cpu), read from the management
    tools instead of from torch so that nothing initialises a device in Snakemake."""
    device, slots = cfg["device"], cfg["slots"]
    if device == "auto" and slots != "auto":
        device = next(iter(slots.values()))["device"].split(":", 1)[0]
    if device == "auto":
        # Cheapest question first: a machine without torch_npu never runs npu-smi.
        if machine.has_torch_npu and machine.npu:
            return "npu"
        if not machine.cpu_only_torch and machine.cuda:
            return "cuda"
        return "cpu"
    if device == "npu" and not machine.has_torch_npu:
        raise ConfigError(
            "device: npu needs torch_npu (Ascend CANN + torch_npu matching your torch), which "
            "is not installed; install them (envs/npu.yaml) or set device: cpu"
        )
    return device


def _check_slots(machine, cfg: dict, kind: str) -> list:
    """The accelerators the slots will use (empty on CPU), after checking they exist."""
    slots = cfg["slots"]
    if kind == "cpu":
        if slots != "auto":
            usable = set(machine.cpu.usable_cores)
            for spec in (entry["device"] for entry in slots.values()):
                try:
                    cores = parse_cores(spec.split(":", 1)[1])
                except DeviceError as error:
                    raise ConfigError(f"slots: {spec}: {error}") from None
                outside = sorted(set(cores) - usable)
                if outside:
                    raise ConfigError(
                        f"slots: {spec} names cores {format_cores(outside)} outside this "
                        f"process's affinity mask ({format_cores(sorted(usable))}); fix slots"
                    )
        return []
    listing = machine.cuda if kind == "cuda" else machine.npu
    tool = "nvidia-smi" if kind == "cuda" else "npu-smi info"
    if listing is None:
        raise ConfigError(
            f"device: {kind}, but {tool.split()[0]} is not installed, so this machine shows no "
            f"{kind} device; install the driver or set device: cpu"
        )
    if not listing:
        raise ConfigError(f"device: {kind}, but {tool} lists no device; set device: cpu")
    if kind == "cuda" and machine.cpu_only_torch:
        raise ConfigError(
            "device: cuda, but the installed torch is the CPU-only build; install a CUDA "
            "build of torch (envs/cuda.yaml) or set device: cpu"
        )
    if slots == "auto":
        return list(listing[: len(model_names(cfg))])
    used = []
    for spec in (entry["device"] for entry in slots.values()):
        index = int(spec.split(":", 1)[1])
        if index >= len(listing):
            names = ", ".join(f"{kind}:{d.index} {d.name}" for d in listing)
            raise ConfigError(
                f"slots: {spec} does not exist: {tool} lists {len(listing)} ({names}); fix slots"
            )
        used.append(listing[index])
    return used


def _sharing_notes(machine, cfg: dict, kind: str) -> list[str]:
    """Say when auto slots cannot give every model its own device or core set: the models then
    share (oversubscribe) them, which the report must not pass off as separate hardware."""
    names = model_names(cfg)
    if cfg["slots"] != "auto" or len(names) < 2:
        return []
    if kind == "cpu":
        cores = len(machine.cpu.usable_cores)
        if cores < len(names):
            return [
                f"slots: auto puts {len(names)} models on {cores} usable cores: every slot "
                "shares all of them (oversubscribed: co-located workers compete for cores, not "
                "only for memory bandwidth)"
            ]
        return []
    listing = (machine.cuda if kind == "cuda" else machine.npu) or []
    if 0 < len(listing) < len(names):
        return [
            f"slots: auto puts {len(names)} models on {len(listing)} {kind} device(s): "
            "models share devices in turn (slot i on device i mod count)"
        ]
    return []


def _check_hub_sources(cfg: dict) -> None:
    """A hub source this machine can neither find in its cache nor download: said now, not
    when the fetch job fails (dualbench.config.hub_access). Last, as it may wait on the
    network (a few seconds at most, once per hub)."""
    reached: dict[str, bool] = {}
    for slot in model_names(cfg):
        kind, ref = parse_source(cfg["models"][slot]["source"])
        problem = hub_access.hub_problem(kind, ref, reached)
        if problem:
            raise ConfigError(f"models.{slot}.source: {problem}")
