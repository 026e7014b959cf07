"""npu-smi: the commands dualbench runs and parsers for what they print.

Formats (real captures in tests/fixtures/npu-smi/, facts from the npu-smi sources):
- key/value views (``info -t usages``, ``info -t power``) print ``"\\t%-30s : %u"``: lines led
  by a TAB, one ``key : value`` each; the field set depends on chip and driver (newer 910B
  drivers add ``Aivector Usage Rate(%)``, ``NPU Utilization(%)``), and ``Chip ID : N`` comes
  after a chip's fields, not before;
- ``info -m`` maps NPU ID and Chip ID to the Chip Logic ID the runtime (and
  ASCEND_RT_VISIBLE_DEVICES) numbers devices by; MCU chips have ``-`` as logic id.

Every parser returns what it could read; a line it cannot read is skipped, and a view with no
usable field raises NpuSmiError, which the sampler records as a gap instead of crashing.
"""

from __future__ import annotations

import re
import subprocess

# Usage fields dualbench samples: npu-smi name -> metric.
USAGE_FIELDS = {
    "Aicore Usage Rate(%)": "aicore_pct",
    "Aivector Usage Rate(%)": "aivector_pct",
    "NPU Utilization(%)": "npu_util_pct",
    "HBM Usage Rate(%)": "hbm_usage_pct",
    "HBM Bandwidth Usage Rate(%)": "hbm_bw_pct",
}
# The instantaneous reading first: on Atlas 200I A2 both appear, and "Power Dissipation(W)" is
# what some 910B drivers print instead.
POWER_FIELDS = ("NPU Real-time Power(W)", "Power Dissipation(W)")
TIMEOUT_S = 10


class NpuSmiError(RuntimeError):
    """npu-smi could not be run or printed nothing usable; str() is one line."""


def parse_key_values(text: str) -> dict[str, str]:
    """``key : value`` lines (TAB-led or not) -> dict; later keys win, blank lines skipped."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(" : ")
        if not sep:
            key, sep, value = line.strip().partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def _number(value: str) -> float | None:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*", value or "")
    return float(match.group(1)) if match else None


def parse_usages(text: str) -> dict[str, float]:
    """``npu-smi info -t usages -i ID`` -> {metric: percent} for the fields this chip prints."""
    fields = parse_key_values(text)
    values = {
        metric: number
        for name, metric in USAGE_FIELDS.items()
        if (number := _number(fields.get(name, ""))) is not None
    }
    if not values:
        raise NpuSmiError(f"no usage field in npu-smi output: {_head(text)!r}")
    return values


def parse_power(text: str) -> float:
    """``npu-smi info -t power -i ID`` -> watts (the real-time reading where printed)."""
    fields = parse_key_values(text)
    for name in POWER_FIELDS:
        number = _number(fields.get(name, ""))
        if number is not None:
            return number
    raise NpuSmiError(f"no power field in npu-smi output: {_head(text)!r}")


def parse_mapping(text: str) -> dict[int, tuple[int, int]]:
    """``npu-smi info -m`` -> {chip logic id: (NPU ID, Chip ID)}; MCU rows (logic id "-")
    are left out."""
    mapping, seen_header = {}, False
    for line in text.splitlines():
        if "Chip Logic ID" in line:
            seen_header = True
            continue
        cells = line.split()
        if not seen_header or len(cells) < 3:
            continue
        npu_id, chip_id, logic_id = cells[:3]
        if npu_id.isdigit() and chip_id.isdigit() and logic_id.isdigit():
            mapping[int(logic_id)] = (int(npu_id), int(chip_id))
    if not mapping:
        raise NpuSmiError(f"no chip rows in npu-smi info -m output: {_head(text)!r}")
    return mapping


def _head(text: str) -> str:
    return " ".join(text.split())[:120]


def run(*args: str) -> str:
    """stdout of ``npu-smi args``, or NpuSmiError in one line."""
    try:
        proc = subprocess.run(
            ["npu-smi", *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        raise NpuSmiError("npu-smi is not on PATH (install the Ascend driver tools)") from None
    except subprocess.TimeoutExpired:
        raise NpuSmiError(f"npu-smi {' '.join(args)} did not answer in {TIMEOUT_S} s") from None
    if proc.returncode != 0:
        message = _head(proc.stderr or proc.stdout) or f"exit code {proc.returncode}"
        raise NpuSmiError(f"npu-smi {' '.join(args)} failed: {message}")
    return proc.stdout


def chip_address(logic_id: int) -> tuple[int, int | None]:
    """The (NPU ID, Chip ID) npu-smi wants for the runtime's device ``logic_id``.

    Falls back to (logic_id, None) when ``npu-smi info -m`` is unavailable or does not list
    it: on single-chip cards the two numberings coincide."""
    try:
        return parse_mapping(run("info", "-m")).get(logic_id, (logic_id, None))
    except NpuSmiError:
        return logic_id, None


def query_args(view: str, npu_id: int, chip_id: int | None) -> list[str]:
    args = ["info", "-t", view, "-i", str(npu_id)]
    return args if chip_id is None else [*args, "-c", str(chip_id)]
