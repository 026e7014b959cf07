"""Device telemetry sampled beside a run, in the parent (the runner), never in the workers.

Each source is sampled by its own thread every ``interval_s`` (an npu-smi call can take longer
than a fast counter read, and must not delay the others). A sample is stamped with
``time.perf_counter_ns()`` at the middle of its read, the clock of the workers' token
timestamps, so it can be placed in the co-located window exactly. Sampling starts ``idle_s``
before the first worker is spawned: those samples are the idle baseline.

Rows go to ``telemetry.csv`` beside run.json: t_ns, slots (the slots whose work the source
sees, "+"-joined), device, metric, value, source. Counters (cpu_time_s, energy_uj, energy_mj)
are written raw; dualbench.energy turns them into window deltas. A read that fails is a gap,
counted and described in the run record, never a crash and never a made-up value.
"""

from __future__ import annotations

import csv
import glob
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ["t_ns", "slots", "device", "metric", "value", "source"]
RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*"


class Source:
    """One thing to sample. ``read`` returns [(metric, value)] or raises."""

    name = ""

    def __init__(self, device: str, slots: tuple[str, ...]):
        self.device = device
        self.slots = slots

    def read(self) -> list[tuple[str, float]]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.name, "device": self.device, "slots": "+".join(self.slots)}


class ProcessCpuSource(Source):
    """CPU seconds (user + system, threads and children included) of one worker process: a
    counter; utilisation = its increase / (wall seconds × cores of the slot)."""

    name = "process CPU time"

    def __init__(self, device: str, slot: str):
        super().__init__(device, (slot,))
        self.pid: int | None = None

    def read(self):
        if self.pid is None:
            return []  # not spawned yet: the idle phase
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return [("cpu_time_s", times.user + times.system + times.children_user
                 + times.children_system)]  # fmt: skip


def rapl_domains() -> tuple[list[Path], str]:
    """Readable RAPL package domains, or [] and why there are none."""
    domains = sorted(Path(p) for p in glob.glob(RAPL_GLOB))
    if not domains:
        return [], (
            "no RAPL energy counter: /sys/class/powercap has no intel-rapl domain (no powercap "
            "driver, as in most VMs)"
        )
    readable = [d for d in domains if os.access(d / "energy_uj", os.R_OK)]
    if not readable:
        return [], (
            "RAPL energy_uj exists but is not readable by this user (root-only since Linux "
            "5.10, CVE-2020-8694): run as root or chmod o+r the energy_uj files"
        )
    return readable, ""


class RaplSource(Source):
    """Package energy counters (µJ) of every CPU socket; wrap range from max_energy_range_uj."""

    name = "RAPL energy_uj"

    def __init__(self, domains: list[Path], slots: tuple[str, ...]):
        super().__init__("cpu package", slots)
        self.domains = domains
        self.wraps = {d: float((d / "max_energy_range_uj").read_text()) for d in domains}

    def read(self):
        return [("energy_uj:" + d.name, float((d / "energy_uj").read_text())) for d in self.domains]

    def describe(self):
        return {
            **super().describe(),
            "wraps": {"energy_uj:" + d.name: w for d, w in self.wraps.items()},
        }


class NpuSmiSource(Source):
    """npu-smi usages and power of one NPU, addressed by npu-smi's own ids (its NPU ID and
    Chip ID, mapped from the runtime's logic id with ``npu-smi info -m``)."""

    name = "npu-smi"

    def __init__(self, logic_id: int, slots: tuple[str, ...]):
        from dualbench import npusmi

        super().__init__(f"npu:{logic_id}", slots)
        self.npu_id, self.chip_id = npusmi.chip_address(logic_id)

    def read(self):
        from dualbench import npusmi

        # Without -c npu-smi prints the whole card, MCU included: the parsers pick our chip.
        usages = npusmi.parse_usages(
            npusmi.run(*npusmi.query_args("usages", self.npu_id, self.chip_id)), self.chip_id
        )
        power = npusmi.parse_power(
            npusmi.run(*npusmi.query_args("power", self.npu_id, self.chip_id)), self.chip_id
        )
        return [*usages.items(), ("power_w", power)]

    def describe(self):
        return {**super().describe(), "npu_id": self.npu_id, "chip_id": self.chip_id}


class NvmlSource(Source):
    """nvidia-ml-py: GPU utilisation, memory used, power and, where the GPU has it (Volta and
    later), the total-energy counter in mJ. Device index = the slot's index: workers get
    CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's own order."""

    name = "NVML"

    def __init__(self, index: int, slots: tuple[str, ...]):
        import pynvml

        super().__init__(f"cuda:{index}", slots)
        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.has_energy = True

    def read(self):
        nvml, h = self.nvml, self.handle
        values = [
            ("gpu_util_pct", float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)),
            ("mem_used_bytes", float(nvml.nvmlDeviceGetMemoryInfo(h).used)),
            ("power_w", nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
        ]
        if self.has_energy:
            try:
                values.append(("energy_mj", float(nvml.nvmlDeviceGetTotalEnergyConsumption(h))))
            except nvml.NVMLError:
                self.has_energy = False  # pre-Volta: power samples only
        return values


@dataclass
class Sampler:
    """Threads sampling ``sources`` every ``interval_s`` until ``stop``."""

    sources: list[Source]
    interval_s: float
    rows: list[tuple] = field(default_factory=list)
    gaps: dict[str, dict] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Sampler:
        for source in self.sources:
            thread = threading.Thread(target=self._loop, args=(source,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, source: Source) -> None:
        next_tick = time.perf_counter()
        while not self._stop.is_set():
            self._sample(source, record_gap=True)
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - time.perf_counter()))
        # One more at stop, which comes after the window's end: without it the window's last
        # interval would have no sample after it. A source gone by then (an exited worker's
        # CPU time) is not a gap.
        self._sample(source, record_gap=False)

    def _sample(self, source: Source, record_gap: bool) -> None:
        before = time.perf_counter_ns()
        try:
            values = source.read()
        except Exception as exc:  # recorded as a gap: telemetry must never end a run
            if record_gap:
                self._gap(source, exc)
            return
        stamp = (before + time.perf_counter_ns()) // 2
        with self._lock:
            for metric, value in values:
                self.rows.append(
                    (stamp, "+".join(source.slots), source.device, metric, value, source.name)
                )

    def _gap(self, source: Source, exc: Exception) -> None:
        key = f"{source.name} {source.device}"
        with self._lock:
            gap = self.gaps.setdefault(key, {"count": 0, "first_error": ""})
            gap["count"] += 1
            gap["first_error"] = gap["first_error"] or f"{type(exc).__name__}: {exc}"[:300]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def write(self, path: Path, extra_rows: list[tuple] = ()) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(sorted([*self.rows, *extra_rows]))


def read_csv(path: Path) -> list[dict]:
    """telemetry.csv rows with t_ns as int and value as float."""
    with open(path, newline="") as f:
        return [
            {**row, "t_ns": int(row["t_ns"]), "value": float(row["value"])}
            for row in csv.DictReader(f)
        ]


def sources_for(kind: str, slots: dict) -> tuple[list[Source], dict[str, str]]:
    """The sources a run on backend ``kind`` with ``slots`` ({name: Slot}) can have, and for
    each thing that cannot be measured here, why (``{"energy": reason, ...}``)."""
    import shutil

    sources: list[Source] = []
    missing: dict[str, str] = {}
    if kind == "cpu":
        for name, slot in slots.items():
            sources.append(ProcessCpuSource(slot.label, name))
        domains, why = rapl_domains()
        if domains:
            sources.append(RaplSource(domains, tuple(slots)))
        else:
            missing["energy"] = why
        return sources, missing
    devices: dict[int, list[str]] = {}
    for name, slot in slots.items():
        devices.setdefault(slot.index or 0, []).append(name)
    for index, names in devices.items():
        label = f"{kind}:{index}"
        try:
            if kind == "npu":
                if shutil.which("npu-smi") is None:
                    raise RuntimeError("npu-smi is not on PATH (install the Ascend driver tools)")
                sources.append(NpuSmiSource(index, tuple(names)))
            else:
                sources.append(NvmlSource(index, tuple(names)))
        except ImportError:
            missing[label] = "nvidia-ml-py is not installed: pip install 'dualbench[cuda]'"
        except Exception as exc:
            missing[label] = f"{type(exc).__name__}: {exc}"[:300]
    if missing:
        missing.setdefault("energy", "no power source for " + ", ".join(sorted(missing)))
    return sources, missing
