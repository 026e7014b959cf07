"""Who occupies the machine right now: each core's busy and total time, the processes NVML lists
on a GPU, and our own process tree. Read by the measuring jobs' exclusivity check
(dualbench.measure.exclusivity) before they start anything; an NPU's processes come from
``npu-smi info`` (dualbench.telemetry.npusmi.parse_processes).
"""

from __future__ import annotations

from pathlib import Path

PROC_STAT = Path("/proc/stat")
# /proc/stat's per-CPU fields, in order (proc(5)); guest and guest_nice, after them, are
# already counted in user and nice.
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")


def read_core_times(path: Path = PROC_STAT) -> dict[int, tuple[int, int]]:
    """{core id: (busy ticks, total ticks)} of every online core, from ``path`` (/proc/stat).

    Read here rather than through psutil.cpu_times(percpu=True), whose list is in file order
    and skips offline cores, so that its index is not always the core id a slot names. Steal
    time (the hypervisor running another guest) counts in the total but not as busy: no
    process on this machine could be stopped to end it."""
    times = {}
    for line in path.read_text().splitlines():
        name, *values = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        fields = dict(zip(STAT_FIELDS, (int(v) for v in values), strict=False))
        busy = sum(fields.get(f, 0) for f in BUSY_FIELDS)
        total = busy + fields.get("idle", 0) + fields.get("iowait", 0) + fields.get("steal", 0)
        times[int(name[3:])] = (busy, total)
    return times


def busy_fractions(before: dict, after: dict, cores) -> dict[int, float]:
    """Each core's busy share of the time between two ``read_core_times`` readings (KeyError
    for a core missing from either: offline, or not on this machine)."""
    fractions = {}
    for core in cores:
        busy = after[core][0] - before[core][0]
        total = after[core][1] - before[core][1]
        fractions[core] = busy / total if total > 0 else 0.0
    return fractions


def own_process_tree() -> set[int]:
    """This process and its descendants."""
    import psutil

    me = psutil.Process()
    return {me.pid, *(child.pid for child in me.children(recursive=True))}


def import_nvml():
    """nvidia-ml-py's module, initialised: ImportError where it is not installed, its
    NVMLError where the driver's library cannot be loaded. The caller shuts it down."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def nvml_processes(nvml, index: int) -> list[dict]:
    """The processes NVML lists on device ``index`` (compute and graphics, each pid once):
    {"pid", "process" (its name, "" where NVML cannot say), "memory_mb" (None where
    unreported, as under MIG)}."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    found: dict[int, dict] = {}
    for listing in (
        nvml.nvmlDeviceGetComputeRunningProcesses,
        nvml.nvmlDeviceGetGraphicsRunningProcesses,
    ):
        for proc in listing(handle):
            used = getattr(proc, "usedGpuMemory", None)
            memory_mb = round(used / 2**20, 1) if used else None
            found.setdefault(proc.pid, {"pid": proc.pid, "memory_mb": memory_mb})
    for pid, entry in found.items():
        try:
            name = nvml.nvmlSystemGetProcessName(pid)
            entry["process"] = name.decode() if isinstance(name, bytes) else str(name)
        except nvml.NVMLError:  # gone meanwhile, or in a PID namespace NVML cannot see
            entry["process"] = ""
    return list(found.values())
