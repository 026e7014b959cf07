"""What the runner can sample beside a run, per backend: the worker processes' CPU time, RAPL
package energy, npu-smi usage and power, NVML utilisation, power and energy (DESIGN §5-6).

Each source reads its values when asked (``read`` returns [(metric, value)] or raises); the
sampler (dualbench.telemetry.sampler) decides when. ``sources_for`` picks the sources a run on
a backend can have and says, for each thing that cannot be measured there, why.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*"
# The ``source`` of the CPU-time rows a CPU worker reads itself (at release and after every
# call) and hands back in its result; the runner writes them beside the sampled ones, and the
# analysis prefers them (they are exact at the window's end).
WORKER_CPU_SOURCE = "worker process_time"


class Source:
    """One thing to sample. ``read`` returns [(metric, value)] or raises."""

    name = ""
    # Whether it reads power or energy: only then does a run wait telemetry.idle_s before its
    # workers start, since the idle baseline serves the net energy alone.
    measures_energy = False

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
    measures_energy = True

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
    measures_energy = True

    def __init__(self, logic_id: int, slots: tuple[str, ...]):
        from dualbench.telemetry import npusmi

        super().__init__(f"npu:{logic_id}", slots)
        self.npu_id, self.chip_id = npusmi.chip_address(logic_id)

    def read(self):
        from dualbench.telemetry import npusmi

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
    """nvidia-ml-py: GPU utilisation, memory used, power, temperature and, where the GPU has it
    (Volta and later), the total-energy counter in mJ. Device index = the slot's index: workers get
    CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML's own order."""

    name = "NVML"
    measures_energy = True

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
            # A hot GPU clocks down: the drift guard compares blocks' temperatures.
            ("temperature_c", float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))),
        ]
        if self.has_energy:
            try:
                values.append(("energy_mj", float(nvml.nvmlDeviceGetTotalEnergyConsumption(h))))
            except nvml.NVMLError:
                self.has_energy = False  # pre-Volta: power samples only
        return values


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
