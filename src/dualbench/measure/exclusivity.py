"""Measurement exclusivity: at the start of a measuring job (a block, a sweep, a calibration),
before any model loads, whether a foreign process uses the job's slots, and what the job does
about it (``run.exclusivity``).

What is checked, per kind of slot:
- CPU cores (a CPU slot's core set; an accelerator slot's only where it pins host cores, which
  none does today): each core's busy fraction over a short window from /proc/stat
  (dualbench.telemetry.occupancy). The job sleeps through the window and has no worker yet,
  so whatever keeps a core busy is foreign; a core at or above ``busy_cpu_fraction`` is
  measured again, and is busy only if it stays there in every one of ``CONFIRM_WINDOWS``
  windows ``CONFIRM_GAP_S`` apart: a burst (the Snakemake controller scheduling the next job
  on a cluster test's node, a cron job) is over before the measurement starts, a competing
  workload is not;
- NPU: the process table of ``npu-smi info`` (dualbench.telemetry.npusmi.parse_processes), the
  slot's runtime id mapped to npu-smi's NPU ID and Chip ID;
- CUDA: NVML's compute and graphics processes of the slot's device (nvidia-ml-py, imported
  only then; the index is NVML's, as our workers run with CUDA_DEVICE_ORDER=PCI_BUS_ID).
A process of the job's own process tree is never foreign.

The finding goes into every record of the job: ``verdict`` (clear | busy | unknown | off),
``policy``, ``window_s``, ``checked`` (one entry per device or core set, with what was read)
and ``busy`` (one entry per slot and finding: a core and its busy fraction, or a pid and its
process name). A tool that is missing (no npu-smi, no NVML) makes the verdict unknown: recorded,
never a failure. Under ``fail`` a busy job measures nothing and writes nothing: it ends with the
one line ``message`` (a DeviceError, so one line and no traceback), Snakemake counts the job
as failed, and the next invocation tries it again — a busy slot is a passing state of the
machine, not a property of the configuration, so it must not be cached as a result. Under
``warn`` the line is logged and the job measures; ``off`` skips the check.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from dualbench.backends import resolve
from dualbench.backends.base import Slot
from dualbench.config.vocabulary import DEFAULT_MODELS
from dualbench.errors import DeviceError
from dualbench.telemetry import npusmi, occupancy

# The CPU window: 50 scheduler ticks (10 ms each, so a tick is 2% of it) tell a busy core
# from an idle one, and a job pays half a second for the check (the test suite alone runs
# dozens of measuring jobs).
WINDOW_S = 0.5
# A hot core is measured this many times in all, a second apart, before it counts as busy:
# 3.5 s, paid only when a core is hot, outlast a burst of scheduling work.
CONFIRM_WINDOWS = 3
CONFIRM_GAP_S = 1.0
OFF = {"mode": "off", "busy_cpu_fraction": 0.5}


def _module_reader(name: str, module=occupancy):
    # A Probes default: the reader as the module holds it when the check starts, so a test
    # can replace it on the module.
    return dataclasses.field(default_factory=lambda: getattr(module, name))


@dataclasses.dataclass
class Probes:
    """Where a check reads the machine (dualbench.telemetry.occupancy and npusmi)."""

    core_times: Callable[[], dict[int, tuple[int, int]]] = _module_reader("read_core_times")
    sleep: Callable[[float], None] = time.sleep
    npu_smi_info: Callable[[], str] = dataclasses.field(
        default_factory=lambda: lambda: npusmi.run("info")
    )
    npu_address: Callable[[int], tuple[int, int | None]] = _module_reader("chip_address", npusmi)
    nvml: Callable[[], Any] = _module_reader("import_nvml")
    own_pids: Callable[[], set[int]] = _module_reader("own_process_tree")


# --- the checks ------------------------------------------------------------------------------


def _by_device(slots: dict[str, Slot]) -> dict[str, list[Slot]]:
    # Slots sharing a device (two models on cuda:0, auto CPU slots on too few cores) are
    # checked once and named together.
    devices: dict[str, list[Slot]] = {}
    for slot in slots.values():
        devices.setdefault(slot.label, []).append(slot)
    return devices


def _cpu_checks(slots: dict[str, Slot], threshold: float, window_s: float, probes: Probes):
    pinned = {label: group for label, group in _by_device(slots).items() if group[0].cores}
    if not pinned:
        return [], []
    cores = sorted({c for group in pinned.values() for c in group[0].cores})
    try:
        series = _core_fractions(cores, threshold, window_s, probes)
    except (OSError, KeyError, ValueError) as exc:
        reason = f"core times unreadable: {type(exc).__name__}: {exc}"
        return [
            _entry(label, group, "/proc/stat", reason=reason) for label, group in pinned.items()
        ], []
    # A core's figure is its least busy window: what stayed on it throughout.
    fractions = {c: min(values) for c, values in series.items()}
    checked, busy = [], []
    for label, group in pinned.items():
        mine = group[0].cores
        hot = [c for c in mine if len(series[c]) == CONFIRM_WINDOWS and fractions[c] >= threshold]
        checked.append(
            _entry(
                label,
                group,
                "/proc/stat",
                cores=[{"core": c, "busy_fraction": round(fractions[c], 3)} for c in mine],
                verdict="busy" if hot else "clear",
            )
        )
        busy += [
            {"slot": s.name, "device": label, "core": c, "busy_fraction": round(fractions[c], 3)}
            for s in group
            for c in hot
        ]
    return checked, busy


def _core_fractions(cores, threshold: float, window_s: float, probes: Probes):
    """{core: busy fraction per window}: every core over one window, then the cores still at
    or above ``threshold`` again after a pause, up to CONFIRM_WINDOWS windows."""
    series: dict[int, list[float]] = {c: [] for c in cores}
    hot = list(cores)
    for window in range(CONFIRM_WINDOWS):
        if window:
            probes.sleep(CONFIRM_GAP_S)
        before = probes.core_times()
        probes.sleep(window_s)
        fractions = occupancy.busy_fractions(before, probes.core_times(), hot)
        for core in hot:
            series[core].append(fractions[core])
        hot = [c for c in hot if fractions[c] >= threshold]
        if not hot:
            break
    return series


def _npu_checks(slots: dict[str, Slot], probes: Probes):
    devices = _by_device(slots)
    try:
        processes, _ = npusmi.parse_processes(probes.npu_smi_info())
    except npusmi.NpuSmiError as exc:
        return [
            _entry(label, group, "npu-smi info", reason=str(exc))
            for label, group in devices.items()
        ], []
    own = probes.own_pids()
    checked, busy = [], []
    for label, group in devices.items():
        npu_id, chip_id = probes.npu_address(group[0].index or 0)
        # Without npu-smi's mapping (chip_id None) every chip of that NPU ID counts: a false
        # alarm on a dual-chip card beats a missed neighbour.
        foreign = [
            p
            for p in processes
            if p.npu_id == npu_id
            and (chip_id is None or p.chip_id is None or p.chip_id == chip_id)
            and p.pid not in own
        ]
        checked.append(
            _entry(label, group, "npu-smi info", npu_id=npu_id, chip_id=chip_id,
                   processes=len(foreign), verdict="busy" if foreign else "clear")
        )  # fmt: skip
        busy += [
            {"slot": s.name, "device": label, "pid": p.pid, "process": p.name,
             "memory_mb": p.memory_mb}
            for s in group
            for p in foreign
        ]  # fmt: skip
    return checked, busy


def _cuda_checks(slots: dict[str, Slot], probes: Probes):
    devices = _by_device(slots)
    try:
        nvml = probes.nvml()
    except Exception as exc:  # ImportError, or NVMLError: no driver library
        missing = "nvidia-ml-py is not installed: pip install 'dualbench[cuda]'"
        reason = missing if isinstance(exc, ImportError) else f"NVML: {exc}"
        return [_entry(label, group, "NVML", reason=reason) for label, group in devices.items()], []
    own = probes.own_pids()
    checked, busy = [], []
    try:
        for label, group in devices.items():
            try:
                foreign = [
                    p
                    for p in occupancy.nvml_processes(nvml, group[0].index or 0)
                    if p["pid"] not in own
                ]
            except Exception as exc:  # NVMLError: the device or the query is unsupported
                checked.append(_entry(label, group, "NVML", reason=f"NVML: {exc}"))
                continue
            checked.append(
                _entry(label, group, "NVML", processes=len(foreign),
                       verdict="busy" if foreign else "clear")
            )  # fmt: skip
            busy += [{"slot": s.name, "device": label, **p} for s in group for p in foreign]
    finally:
        nvml.nvmlShutdown()
    return checked, busy


def _entry(label: str, group: list[Slot], source: str, reason: str = "", **read) -> dict:
    """A ``checked`` entry; with a ``reason``, one that could not be read (verdict unknown)."""
    entry = {"device": label, "slots": [s.name for s in group], "source": source}
    if reason:
        return {**entry, "verdict": "unknown", "reason": reason}
    return {**entry, **read}


def check(
    kind: str,
    slots: dict[str, Slot],
    policy: dict | None,
    window_s: float | None = None,
    probes: Probes | None = None,
) -> dict:
    """The finding for ``slots`` ({name: Slot}) of backend ``kind`` under ``policy``
    ({"mode", "busy_cpu_fraction"}, dualbench.config.exclusivity_policy; None: off) over
    windows of ``window_s`` (default WINDOW_S)."""
    policy = policy or OFF
    window_s = WINDOW_S if window_s is None else window_s
    finding = {
        "verdict": "off",
        "policy": policy["mode"],
        "backend": kind,
        "slots": {name: slot.label for name, slot in slots.items()},
        "window_s": 0.0,
        "checked": [],
        "busy": [],
    }
    if policy["mode"] == "off":
        return finding
    probes = probes or Probes()
    checked, busy = [], []
    # The devices first, then the CPU window: an npu-smi call inside the window would load
    # a core with our own work.
    if kind == "npu":
        checked, busy = _npu_checks(slots, probes)
    elif kind == "cuda":
        checked, busy = _cuda_checks(slots, probes)
    threshold = policy["busy_cpu_fraction"]
    cpu_checked, cpu_busy = _cpu_checks(slots, threshold, window_s, probes)
    verdicts = {c.get("verdict") for c in checked + cpu_checked}
    finding.update(
        verdict="busy" if busy or cpu_busy else "unknown" if "unknown" in verdicts else "clear",
        window_s=window_s if cpu_checked else 0.0,
        busy_cpu_fraction=threshold,
        checked=checked + cpu_checked,
        busy=busy + cpu_busy,
    )
    if not cpu_checked:
        finding["note"] = f"host cores not checked: {kind} slots pin none"
    if finding["busy"]:
        finding["message"] = busy_line(finding)
    return finding


# --- the one line and the policy -------------------------------------------------------------


def what_is_busy(finding: dict) -> str:
    """Which slots are busy with what, e.g. ``slot A (cpu cores 0-1) is busy: core 1 at 87%
    in each of 3 windows of 0.5 s``; slots sharing a device are named together."""
    by_device: dict[str, list[dict]] = {}
    for entry in finding["busy"]:
        by_device.setdefault(entry["device"], []).append(entry)
    parts = []
    for device, entries in by_device.items():
        names = list(dict.fromkeys(e["slot"] for e in entries))
        who = ("slot " if len(names) == 1 else "slots ") + ", ".join(names)
        verb = "is" if len(names) == 1 else "are"
        first = [e for e in entries if e["slot"] == names[0]]  # the others' are the same
        if "core" in first[0]:
            where = f"cpu cores {device[4:]}" if device.startswith("cpu:") else f"{device}'s cores"
            what = ", ".join(f"core {e['core']} at {e['busy_fraction']:.0%}" for e in first)
            windows = f"{CONFIRM_WINDOWS} windows of {finding['window_s']:.1f} s"
            parts.append(f"{who} ({where}) {verb} busy: {what} in each of {windows}")
        else:
            what = ", ".join(f"pid {e['pid']} ({e['process'] or 'unnamed'})" for e in first)
            parts.append(f"{who} ({device}) {verb} busy: {what} on it")
    return "; ".join(parts)


def busy_line(finding: dict) -> str:
    """``what_is_busy`` and the way out: the error of a refused job."""
    kinds = {"cores" if "core" in e else "device" for e in finding["busy"]}
    free = "the cores" if kinds == {"cores"} else "the device" if kinds == {"device"} else "them"
    return f"{what_is_busy(finding)}; free {free} or set run.exclusivity: warn"


def refusal(finding: dict | None) -> str | None:
    """The error of a job that must not measure (busy under ``fail``), else None."""
    if finding and finding["verdict"] == "busy" and finding["policy"] == "fail":
        return finding["message"]
    return None


def refuse_if_busy(finding: dict) -> None:
    """End the job with its one line when it must not measure: nothing is written, so
    Snakemake reruns it once the slots are free."""
    line = refusal(finding)
    if line is not None:
        raise DeviceError(line)


def announce(finding: dict) -> None:
    """One line on stderr (the job's log) for what the check found."""
    verdict = finding["verdict"]
    devices = ", ".join(dict.fromkeys(finding["slots"].values()))
    if verdict == "busy" and finding["policy"] == "warn":
        line = f"warning: {what_is_busy(finding)}; measuring anyway (run.exclusivity: warn)"
    elif verdict == "busy":
        return  # under fail the line is the job's error (refuse_if_busy)
    elif verdict == "unknown":
        reasons = dict.fromkeys(c["reason"] for c in finding["checked"] if "reason" in c)
        line = f"exclusivity of {devices} unknown: {'; '.join(reasons)}"
    elif verdict == "clear":
        line = f"exclusivity: nothing foreign on {devices}"
    else:
        return
    print(f"dualbench: {line}", file=sys.stderr, flush=True)


# --- a job's slots ---------------------------------------------------------------------------


def check_runs(specs: list[dict], policy: dict | None, probes: Probes | None = None) -> dict:
    """Check, announce and (busy under ``fail``) refuse the slots every run of a job uses (a
    block's layouts, a sweep's points: run specs of dualbench.config.run_spec), resolved as the
    runner resolves them."""
    if not policy or policy["mode"] == "off":
        return check("", {}, policy)
    devices = {name: s["device"] for spec in specs for name, s in spec["slots"].items()}
    first = specs[0]
    backend, all_slots = resolve(
        first["device"],
        "auto" if set(devices.values()) == {"auto"} else devices,
        first.get("slot_names", DEFAULT_MODELS),
    )
    finding = check(backend.kind, {n: all_slots[n] for n in devices}, policy, probes=probes)
    announce(finding)
    refuse_if_busy(finding)
    return finding


def check_calibration(spec: dict, policy: dict | None, probes: Probes | None = None) -> dict:
    """Check, announce and (busy under ``fail``) refuse every slot of a calibration (its
    contended step uses them all)."""
    if not policy or policy["mode"] == "off":
        return check("", {}, policy)
    devices = spec["slots"]
    if isinstance(devices, dict) and set(devices.values()) == {"auto"}:
        devices = "auto"
    backend, slots = resolve(spec["device"], devices, spec["names"])
    finding = check(backend.kind, slots, policy, probes=probes)
    announce(finding)
    refuse_if_busy(finding)
    return finding
