"""What this machine really has, read without importing torch or initialising a device.

The Snakefile validates the config on every invocation, before any job runs, so the facts it
needs (which devices exist, what the CPU computes natively) come from cheap sources:
- the CPU: ``/proc/cpuinfo`` flags (x86 ``flags``, Arm ``Features``) and the affinity mask;
- CUDA GPUs: ``nvidia-smi --query-gpu`` (NVML underneath; nothing is initialised in our
  process, and the numbering is the PCI order our workers use with CUDA_DEVICE_ORDER);
- Ascend NPUs: the ``npu-smi info`` device table (a real capture is in tests/fixtures), and
  whether the torch_npu module is installed (found, not imported: importing it loads CANN).

The management tools are run only when the config asks for that device kind (or ``device:
auto`` finds the tool on PATH), so a CPU machine pays for none of them. torch's own view of
the CPU (``torch.backends.cpu.get_cpu_capability()``) is read in the workers, which import
torch anyway, and recorded beside these flags.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

SMI_TIMEOUT_S = 20
# x86 flags that decide how fast 16-bit math is: native bf16 dot products (AVX512-BF16, AMX),
# native fp16 arithmetic (AVX512-FP16, AMX-FP16); the rest say which vector width torch uses.
X86_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
)
# Arm (Linux hwcaps): bf16 = FEAT_BF16 (BFDOT/BFMMLA), asimdhp/fphp = fp16 arithmetic.
ARM_FLAGS = ("asimd", "asimdhp", "fphp", "bf16", "svebf16", "sve", "sve2", "i8mm")


class HardwareError(RuntimeError):
    """A device listing that could not be read; str() is one line."""


@dataclasses.dataclass(frozen=True)
class CpuFacts:
    arch: str
    model: str
    flags: tuple[str, ...]  # the relevant subset of X86_FLAGS / ARM_FLAGS this CPU has
    usable_cores: tuple[int, ...]

    @property
    def native_bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(self.flags))

    @property
    def native_fp16(self) -> bool:
        return bool({"avx512_fp16", "amx_fp16", "asimdhp"} & set(self.flags))

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "model": self.model,
            "flags": list(self.flags),
            "native_bf16": self.native_bf16,
            "native_fp16": self.native_fp16,
            "usable_cores": len(self.usable_cores),
        }


@dataclasses.dataclass(frozen=True)
class Accelerator:
    index: int
    name: str
    # CUDA compute capability as (major, minor); None where the driver does not say.
    compute_capability: tuple[int, int] | None = None


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """``/proc/cpuinfo`` -> (model name, relevant flags) from its first processor block."""
    model, present = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not present:
            present = set(value.split())
    relevant = tuple(f for f in (*X86_FLAGS, *ARM_FLAGS) if f in present)
    return model, relevant


@functools.cache
def cpu_facts() -> CpuFacts:
    try:
        with open("/proc/cpuinfo") as f:
            model, flags = parse_cpuinfo(f.read())
    except OSError:
        # Not Linux: no flags to read; the CPU then counts as having no native 16-bit math,
        # which only ever picks fp32 (slower than needed, never wrong).
        model, flags = "", ()
    return CpuFacts(
        arch=platform.machine(),
        model=model or platform.processor() or "unknown",
        flags=flags,
        usable_cores=tuple(sorted(os.sched_getaffinity(0))),
    )


def parse_nvidia_smi(text: str) -> list[Accelerator]:
    """``nvidia-smi --query-gpu=index,name,compute_cap --format=csv,noheader`` lines, e.g.
    ``0, NVIDIA H100 80GB HBM3, 9.0``; a missing compute_cap column is None."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        capability = None
        if len(parts) >= 3 and (m := re.fullmatch(r"(\d+)\.(\d+)", parts[-1])):
            capability = (int(m.group(1)), int(m.group(2)))
            name = ", ".join(parts[1:-1])
        else:
            name = ", ".join(parts[1:])
        gpus.append(Accelerator(int(parts[0]), name, capability))
    return gpus


# A device row of the ``npu-smi info`` table: "| 0     910B2C     | OK   | ...". The row under
# it ("| 0                         | 0000:5A:00.0 | ...") carries the chip id and bus id, no name.
_NPU_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|\s*[A-Za-z]")


def parse_npu_smi_table(text: str) -> list[Accelerator]:
    """``npu-smi info`` -> one Accelerator per device row, numbered in table order: the order
    of the runtime's logic ids (ASCEND_RT_VISIBLE_DEVICES), which npu-smi lists by NPU ID.
    The process table below the device table is not read (its rows have no chip name)."""
    devices = []
    for line in text.splitlines():
        if "Process id" in line:
            break
        m = _NPU_ROW.match(line)
        if m:
            devices.append(Accelerator(len(devices), m.group(2)))
    return devices


def _run_tool(argv: list[str]) -> str:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HardwareError(f"{argv[0]} could not be run ({type(e).__name__}: {e})") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[:1]
        raise HardwareError(
            f"{' '.join(argv)} failed with code {proc.returncode}: {first[0] if first else ''}"
        )
    return proc.stdout


def cuda_devices() -> tuple[Accelerator, ...] | None:
    """The NVIDIA GPUs nvidia-smi lists, or None when nvidia-smi is not installed."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        text = _run_tool(
            ["nvidia-smi", "--query-gpu=index,name,compute_cap", "--format=csv,noheader"]
        )
    except HardwareError:
        # Drivers before the compute_cap field (R510) refuse the whole query.
        text = _run_tool(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"])
    return tuple(parse_nvidia_smi(text))


def npu_devices() -> tuple[Accelerator, ...] | None:
    """The Ascend NPUs npu-smi lists, or None when npu-smi is not installed."""
    if shutil.which("npu-smi") is None:
        return None
    return tuple(parse_npu_smi_table(_run_tool(["npu-smi", "info"])))


def torch_npu_installed() -> bool:
    return importlib.util.find_spec("torch_npu") is not None


def torch_is_cpu_build() -> bool:
    """Whether the installed torch wheel is the CPU-only build (version tagged ``+cpu``), read
    from its metadata so that torch is not imported here."""
    try:
        return metadata.version("torch").endswith("+cpu")
    except metadata.PackageNotFoundError:
        return True


def parse_cpu_mhz(text: str) -> list[float]:
    """``/proc/cpuinfo`` -> the ``cpu MHz`` of every processor (x86; absent on most Arm)."""
    values = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "cpu mhz":
            try:
                values.append(float(value))
            except ValueError:
                continue
    return values


def machine_state() -> dict:
    """What may drift between runs, read at a run's start: the load average (runnable
    processes, ours included) and the mean current CPU clock, from cpufreq where the kernel
    exposes it, else /proc/cpuinfo's ``cpu MHz``. A figure that cannot be read is None."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    khz = []
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")):
        with contextlib.suppress(OSError, ValueError):
            khz.append(int(Path(path).read_text()))
    mhz = [k / 1000 for k in khz]
    if not mhz:
        with contextlib.suppress(OSError):
            mhz = parse_cpu_mhz(Path("/proc/cpuinfo").read_text())
    return {
        "loadavg_1m": load[0],
        "loadavg_5m": load[1],
        "cpu_mhz": sum(mhz) / len(mhz) if mhz else None,
        "cpu_mhz_source": ("cpufreq scaling_cur_freq" if khz else "/proc/cpuinfo") if mhz else "",
    }


class Machine:
    """This machine's facts, each read on first use, so validation runs a device tool only
    when the config names that device. Tests pass an object with the same attributes."""

    @functools.cached_property
    def cpu(self) -> CpuFacts:
        return cpu_facts()

    @functools.cached_property
    def cuda(self) -> tuple[Accelerator, ...] | None:
        return cuda_devices()

    @functools.cached_property
    def npu(self) -> tuple[Accelerator, ...] | None:
        return npu_devices()

    @functools.cached_property
    def has_torch_npu(self) -> bool:
        return torch_npu_installed()

    @functools.cached_property
    def cpu_only_torch(self) -> bool:
        return torch_is_cpu_build()
