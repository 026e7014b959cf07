"""npu-smi: the commands dualbench runs and parsers for what they print.

Formats (real captures in tests/fixtures/npu-smi/, facts from the npu-smi sources):
- key/value views (``info -t usages``, ``info -t power``) print ``"\\t%-30s : %u"``: lines led
  by a TAB, one ``key : value`` each; the field set depends on chip and driver (newer 910B
  drivers add ``Aivector Usage Rate(%)``, ``NPU Utilization(%)``);
- ``info -t common`` (same key/value layout) carries the chip's ``Aicore Count``, the number
  of AI Cores; Ascend's own op-plugin tests read it from this view
  (github.com/Ascend/op-plugin test/test_custom_ops/test_npu_advance_step_flashattn.py). No
  capture of this view is in tests/fixtures/npu-smi/: its parser is tested on that documented
  layout only;
- ``info -m`` maps NPU ID and Chip ID to the Chip Logic ID the runtime (and
  ASCEND_RT_VISIBLE_DEVICES) numbers devices by; MCU chips have ``-`` as logic id;
- plain ``info`` ends with the process table (info-910B2C.txt): a header row ``| NPU Chip |
  Process id | Process name | Process memory(MB) |``, then one row per process (NPU ID and
  Chip ID in the first cell; the name may be blank), and for an NPU without any the row
  ``| No running processes found in NPU <id> |``. An NPU may also have no row at all (NPU 1
  of the capture): no row means no process.

Sections. Asked with ``-i N`` alone, a key/value view covers the whole card: a header
(``NPU ID``, ``Chip Count``), then one section per NPU chip, then one per companion unit (the
MCU; the 3559 CPU of some boards), each unit with its own readings, under the same names on
some boards. Asked with ``-c`` too, npu-smi runs that chip's printer alone
(g_query_chip_info_table): its fields and nothing else. The evidence:
- usages-910B.txt: header, empty line, the chip's fields, ``Chip ID : 0`` *after* them;
- power-atlas200IA2.txt (310B): header, empty line, ``Chip ID : 0`` *before* the chip's
  ``NPU Real-time Power(W)``, an empty (TAB-only) line, then the MCU's ``Power Dissipation(W)``
  and ``Chip Name : MCU`` after it; no Chip ID for the MCU;
- the npu-smi sources (show_ascend_card_info, show_ascend_card_mcu_info): the header ends with
  an empty line; each chip prints its fields with ``Chip ID`` first on 310/310B and last on
  every other chip, then an empty line; the MCU and CPU print their fields, then ``Chip Name``
  (``MCU``, ``3559``), then an empty line; the V2 tool (Ascend 950) prints no Chip Count and
  no Chip ID at all.

So the rule: only empty (whitespace-only) lines delimit sections. A ``Chip ID`` line can
neither start nor end one, since it leads on 310B and trails on 910B: either reading would
hand one chip's fields to its neighbour on the other family. A section with one ``Chip ID``
is that chip's; one with a ``Chip Name`` and no Chip ID is a companion unit, never a chip; one
with neither is the header when it holds only header keys, else a chip of unknown id (V2). A
section with more than one Chip ID / Chip Name line is left unattributed: npu-smi prints the
310/310B ``Chip ID`` before asking the chip, and a chip that answers "not supported" leaves
that line with no empty line after it, glued to the next chip's or the MCU's fields. A view
with no Chip ID or Chip Name line at all (``-c`` views, hand-written ones) is one chip's.

Every parser returns what it could read; a line it cannot read is skipped, and a view with no
usable field, or without the asked chip's section, raises NpuSmiError, which the sampler
records as a gap instead of crashing or recording another unit's value.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

# Usage fields dualbench samples: npu-smi name -> metric.
USAGE_FIELDS = {
    "Aicore Usage Rate(%)": "aicore_pct",
    "Aivector Usage Rate(%)": "aivector_pct",
    "NPU Utilization(%)": "npu_util_pct",
    "HBM Usage Rate(%)": "hbm_usage_pct",
    "HBM Bandwidth Usage Rate(%)": "hbm_bw_pct",
}
# The instantaneous reading first. "Power Dissipation(W)" stays as the fallback some drivers
# print for the chip, but in a whole-card view it is also what the MCU prints
# (power-atlas200IA2.txt): only reading the chip's own section keeps the MCU's value out.
POWER_FIELDS = ("NPU Real-time Power(W)", "Power Dissipation(W)")
TIMEOUT_S = 10
# The AI Core count in ``info -t common``. On Atlas A2/A3 chips (910B, 910C) an AI Core is one
# cube core and two vector cores, which is why a count read here gives both (npu.core_counts).
AICORE_COUNT_FIELD = "Aicore Count"
# What npu-smi prints above the chips when asked about a whole card.
HEADER_KEYS = frozenset({"NPU ID", "Chip Count"})


class NpuSmiError(RuntimeError):
    """npu-smi could not be run or printed nothing usable; str() is one line."""


def _key_value(line: str) -> tuple[str, str] | None:
    key, sep, value = line.strip().partition(" : ")
    if not sep:
        key, sep, value = line.strip().partition(":")
    return (key.strip(), value.strip()) if sep and key.strip() else None


def parse_key_values(text: str) -> dict[str, str]:
    """``key : value`` lines (TAB-led or not) -> dict; later keys win, blank lines skipped.
    Flattens a whole-card view's sections: use parse_sections / chip_fields for a chip's."""
    return dict(pair for line in text.splitlines() if (pair := _key_value(line)))


@dataclass(frozen=True)
class Section:
    """One section of a key/value view (the rule is in the module docstring).

    kind: "chip" (an NPU chip; chip_id None where the view prints no Chip ID), "unit" (MCU or
    CPU, named by chip_name) or "mixed" (several Chip ID / Chip Name lines: not attributable,
    chip_ids lists the ids it names)."""

    kind: str
    chip_id: int | None = None
    chip_name: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    chip_ids: tuple[int | None, ...] = ()

    def label(self) -> str:
        if self.kind == "unit":
            return self.chip_name or "unit"
        if self.kind == "mixed":
            return "unattributable: " + "+".join(f"chip {_id_text(i)}" for i in self.chip_ids)
        return f"chip {_id_text(self.chip_id)}"


def _id_text(chip_id: int | None) -> str:
    return "?" if chip_id is None else str(chip_id)


def _chip_id(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def parse_sections(text: str) -> list[Section]:
    """A key/value view -> its chip and unit sections, in print order (header left out)."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip():
            if blocks[-1]:
                blocks.append([])
        elif pair := _key_value(line):
            blocks[-1].append(pair)
    blocks = [b for b in blocks if b]
    if not any(key in ("Chip ID", "Chip Name") for block in blocks for key, _ in block):
        return [Section("chip", fields=parse_key_values(text))]
    sections = []
    for block in blocks:
        ids = tuple(_chip_id(v) for k, v in block if k == "Chip ID")
        names = [v for k, v in block if k == "Chip Name"]
        fields = {k: v for k, v in block if k not in ("Chip ID", "Chip Name")}
        if len(ids) + len(names) > 1:
            sections.append(Section("mixed", fields=fields, chip_ids=ids))
        elif ids:
            sections.append(Section("chip", chip_id=ids[0], fields=fields))
        elif names:
            sections.append(Section("unit", chip_name=names[0], fields=fields))
        elif not fields.keys() <= HEADER_KEYS:
            sections.append(Section("chip", fields=fields))
    return sections


def chip_fields(text: str, chip_id: int | None = None) -> dict[str, str]:
    """The fields of chip ``chip_id`` (None: the chip npu-smi was not asked about, taken as 0)
    in a key/value view; NpuSmiError where the view has no section that is surely that chip's.

    A section printing that Chip ID is taken; else a lone chip section with no Chip ID (the
    V2 tool prints none). A unit (MCU) section is never taken, and neither is a chip section
    printing another id: taking either would record another unit's value as this chip's."""
    wanted = 0 if chip_id is None else chip_id
    sections = parse_sections(text)
    chips = [s for s in sections if s.kind == "chip"]
    matches = [s for s in chips if s.chip_id == wanted]
    if len(matches) == 1:
        return matches[0].fields
    unnumbered = [s for s in chips if s.chip_id is None]
    # A mixed section may hold the wanted chip's fields glued to another's: no fallback then.
    if not matches and len(chips) == 1 == len(unnumbered) and not _mixed(sections):
        return unnumbered[0].fields
    found = ", ".join(s.label() for s in sections) or "none"
    problem = "several sections" if matches else "no section"
    raise NpuSmiError(
        f"{problem} for chip {wanted} in npu-smi output (sections: {found}): {_head(text)!r}"
    )


def _mixed(sections: list[Section]) -> bool:
    return any(s.kind == "mixed" for s in sections)


def _number(value: str) -> float | None:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*", value or "")
    return float(match.group(1)) if match else None


def parse_usages(text: str, chip_id: int | None = None) -> dict[str, float]:
    """``npu-smi info -t usages -i ID [-c CHIP]`` -> {metric: percent} for the fields chip
    ``chip_id`` prints (see chip_fields)."""
    fields = chip_fields(text, chip_id)
    values = {
        metric: number
        for name, metric in USAGE_FIELDS.items()
        if (number := _number(fields.get(name, ""))) is not None
    }
    if not values:
        raise NpuSmiError(f"no usage field in npu-smi output: {_head(text)!r}")
    return values


def parse_power(text: str, chip_id: int | None = None) -> float:
    """``npu-smi info -t power -i ID [-c CHIP]`` -> chip ``chip_id``'s watts (the real-time
    reading where printed; see chip_fields)."""
    fields = chip_fields(text, chip_id)
    for name in POWER_FIELDS:
        number = _number(fields.get(name, ""))
        if number is not None:
            return number
    raise NpuSmiError(f"no power field in npu-smi output: {_head(text)!r}")


def parse_aicore_count(text: str, chip_id: int | None = None) -> int:
    """``npu-smi info -t common -i ID [-c CHIP]`` -> chip ``chip_id``'s AI Core count (see
    chip_fields); NpuSmiError where that chip prints no whole positive count."""
    value = chip_fields(text, chip_id).get(AICORE_COUNT_FIELD, "").strip()
    if not value.isdigit() or int(value) < 1:
        raise NpuSmiError(f"no {AICORE_COUNT_FIELD} in npu-smi output: {_head(text)!r}")
    return int(value)


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


@dataclass(frozen=True)
class NpuProcess:
    """One row of ``npu-smi info``'s process table. ``npu_id``/``chip_id`` are npu-smi's ids
    (``chip_address`` maps a runtime logic id to them); ``memory_mb`` None where unprinted."""

    npu_id: int
    chip_id: int | None
    pid: int
    name: str
    memory_mb: float | None


# The row npu-smi prints for an NPU without processes (a documented wording, seen in public
# captures of 910B and 910 hosts).
IDLE_NPU_ROW = re.compile(r"No running processes found in NPU\s+(\d+)")


def parse_processes(text: str) -> tuple[list[NpuProcess], set[int]]:
    """``npu-smi info`` -> (its process rows, the NPU ids it says run no process).

    NpuSmiError where the output has no process table: then nothing can be said about any
    NPU, which is not the same as none being busy."""
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if "Process id" in line), None)
    if header is None:
        raise NpuSmiError(f"no process table in npu-smi info output: {_head(text)!r}")
    processes, idle = [], set()
    for line in lines[header + 1 :]:
        if match := IDLE_NPU_ROW.search(line):
            idle.add(int(match.group(1)))
            continue
        # Border rows (+====+) are one cell; the upper table's rows never follow the header.
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ids = cells[0].split()
        if len(cells) < 3 or not all(i.isdigit() for i in [*ids[:2], cells[1]]) or not ids:
            continue  # a border row, or no NPU id and pid where they belong
        processes.append(
            NpuProcess(
                npu_id=int(ids[0]),
                chip_id=int(ids[1]) if len(ids) > 1 else None,
                pid=int(cells[1]),
                name=cells[2],
                memory_mb=_number(cells[3]) if len(cells) > 3 else None,
            )
        )
    return processes, idle


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


def aicore_count(logic_id: int) -> int:
    """The AI Core count of the runtime's device ``logic_id`` from ``npu-smi info -t common``,
    or NpuSmiError in one line."""
    npu_id, chip_id = chip_address(logic_id)
    return parse_aicore_count(run(*query_args("common", npu_id, chip_id)), chip_id)
