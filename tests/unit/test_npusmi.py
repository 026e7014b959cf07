"""npu-smi parsers on the real captures in tests/fixtures/npu-smi/, and on the variants other
chips and drivers print (TAB-led lines, Chip ID after the fields, missing fields, garbage).
The sampler reads `-t usages` and `-t power`; the `watch` capture is kept with the others but
has no parser, since `watch` streams at 1 s at best, too coarse for 0.2 s sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualbench.telemetry import npusmi
from dualbench.telemetry.npusmi import NpuSmiError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_usages_910b():
    expected = {"aicore_pct": 0.0, "hbm_usage_pct": 0.0, "hbm_bw_pct": 0.0}
    assert npusmi.parse_usages(fixture("usages-910B.txt")) == expected
    assert npusmi.parse_usages(fixture("usages-910B.txt"), 0) == expected


def test_usages_with_tab_led_lines_newer_fields_and_chip_id_last():
    # What npu-smi itself prints ("\t%-30s : %u"); newer 910B drivers add Aivector and NPU
    # Utilization; Chip ID follows the chip's fields.
    text = "\n".join(
        "\t" + line if line else line
        for line in fixture("usages-910B.txt")
        .replace(
            "Aicore Usage Rate(%)           : 0",
            "Aicore Usage Rate(%)           : 63\n"
            "Aivector Usage Rate(%)         : 12\n"
            "NPU Utilization(%)             : 70",
        )
        .splitlines()
    )
    assert npusmi.parse_usages(text) == {
        "aicore_pct": 63.0,
        "aivector_pct": 12.0,
        "npu_util_pct": 70.0,
        "hbm_usage_pct": 0.0,
        "hbm_bw_pct": 0.0,
    }


def test_usages_with_missing_fields_keep_what_is_there():
    text = "\tNPU ID : 0\n\tAicore Usage Rate(%) : 41\n\tChip ID : 0\n"
    assert npusmi.parse_usages(text) == {"aicore_pct": 41.0}


@pytest.mark.parametrize(
    "text",
    ["", "Error: device 7 does not exist\n", "\tAicore Usage Rate(%) : NA\n", "+---+\n| x |\n"],
)
def test_usages_without_a_usable_field_is_an_error_not_a_zero(text):
    with pytest.raises(NpuSmiError) as info:
        npusmi.parse_usages(text)
    assert "\n" not in str(info.value)


def test_power_atlas_200i_a2_reads_the_real_time_value():
    # The capture prints chip 0's 9.1 W, then the MCU's own 16.9 W "Power Dissipation(W)".
    assert npusmi.parse_power(fixture("power-atlas200IA2.txt")) == 9.1
    assert npusmi.parse_power(fixture("power-atlas200IA2.txt"), 0) == 9.1


def test_power_falls_back_to_power_dissipation():
    assert npusmi.parse_power("\tNPU ID : 0\n\tPower Dissipation(W) : 88.6\n") == 88.6


def test_power_without_a_value_is_an_error():
    with pytest.raises(NpuSmiError, match="no power field"):
        npusmi.parse_power("\tNPU Real-time Power(W) : \n")


# The layout of `npu-smi info -m` as documented (NPU ID, Chip ID, Chip Logic ID, Chip Name;
# MCU chips have no logic id); no capture of it is in the shared fixtures.
MAPPING = """\
        NPU ID                         Chip ID                        Chip Logic ID                  Chip Name
        0                              0                              0                              Ascend 310P3
        0                              1                              1                              Ascend 310P3
        0                              2                              -                              Mcu
        1                              0                              2                              Ascend 310P3
"""  # noqa: E501 (the tool's own column widths)


def test_mapping_from_logic_id_to_npu_and_chip():
    assert npusmi.parse_mapping(MAPPING) == {0: (0, 0), 1: (0, 1), 2: (1, 0)}


def test_mapping_of_garbage_is_an_error():
    with pytest.raises(NpuSmiError):
        npusmi.parse_mapping("command not supported\n")


def test_info_table_is_not_mistaken_for_a_key_value_view():
    with pytest.raises(NpuSmiError):
        npusmi.parse_usages(fixture("info-910B2C.txt"))


def test_query_args():
    assert npusmi.query_args("power", 3, None) == ["info", "-t", "power", "-i", "3"]
    assert npusmi.query_args("usages", 0, 1) == ["info", "-t", "usages", "-i", "0", "-c", "1"]


def test_missing_npu_smi_is_one_line(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NpuSmiError, match="npu-smi is not on PATH"):
        npusmi.run("info", "-m")
    # without a mapping, the runtime's id is used as npu-smi's
    assert npusmi.chip_address(3) == (3, None)


# --- whole-card views: one section per chip, then the MCU's ----------------------------------

MCU_POWER_LINE = "\tNPU Real-time Power(W)         : 3.4\n"


def atlas_with_mcu_real_time_power() -> str:
    """The Atlas 200I A2 capture with the MCU printing its own "NPU Real-time Power(W)" (as
    310P boards do in their views), so a flat read would end on the MCU's 3.4 W."""
    text = fixture("power-atlas200IA2.txt")
    mcu_start = "\tPower Dissipation(W)"
    assert mcu_start in text
    return text.replace(mcu_start, MCU_POWER_LINE + mcu_start)


def view_910b_style(chips: dict[int, str], mcu: str) -> str:
    """npu-smi's layout on 910B (show_ascend_card_info): header, empty line, each chip's
    fields followed by its Chip ID and an empty line, then the MCU's fields and Chip Name."""
    text = (
        f"\tNPU ID                         : 0\n\tChip Count                     : {len(chips)}\n\n"
    )
    for chip_id, fields in chips.items():
        text += fields + f"\tChip ID                        : {chip_id}\n\n"
    return text + mcu + "\tChip Name                      : mcu\n\n"


def power(watts: float) -> str:
    return f"\tNPU Real-time Power(W)         : {watts}\n"


POWER_910B = view_910b_style({0: power(88.6), 1: power(91.2)}, mcu=power(12.0))


def test_power_takes_the_chip_not_the_mcu_printed_after_it():
    text = atlas_with_mcu_real_time_power()
    # the bug: flattened, the MCU's reading is the last one and wins
    assert npusmi.parse_key_values(text)["NPU Real-time Power(W)"] == "3.4"
    assert npusmi.parse_power(text) == 9.1
    assert npusmi.parse_power(text, 0) == 9.1


def test_sections_of_the_real_captures():
    atlas = npusmi.parse_sections(fixture("power-atlas200IA2.txt"))
    assert [(s.kind, s.chip_id, s.chip_name) for s in atlas] == [
        ("chip", 0, None),
        ("unit", None, "MCU"),
    ]
    assert atlas[0].fields == {"NPU Real-time Power(W)": "9.1"}
    assert atlas[1].fields == {"Power Dissipation(W)": "16.9"}
    (chip,) = npusmi.parse_sections(fixture("usages-910B.txt"))
    assert (chip.kind, chip.chip_id, chip.fields["Aicore Usage Rate(%)"]) == ("chip", 0, "0")
    assert "NPU ID" not in chip.fields  # the header is its own section, left out


def test_910b_style_chip_id_after_the_fields_with_two_chips_and_an_mcu():
    assert npusmi.parse_power(POWER_910B) == 88.6
    assert npusmi.parse_power(POWER_910B, 0) == 88.6
    assert npusmi.parse_power(POWER_910B, 1) == 91.2
    usages = view_910b_style(
        {
            0: "\tAicore Usage Rate(%)           : 63\n\tHBM Usage Rate(%)              : 40\n",
            1: "\tAicore Usage Rate(%)           : 7\n\tHBM Usage Rate(%)              : 2\n",
        },
        mcu="\tAicore Usage Rate(%)           : 99\n",
    )
    assert npusmi.parse_usages(usages) == {"aicore_pct": 63.0, "hbm_usage_pct": 40.0}
    assert npusmi.parse_usages(usages, 1) == {"aicore_pct": 7.0, "hbm_usage_pct": 2.0}


def test_chip_id_before_the_fields_310b_style_with_two_chips():
    # On 310/310B the Chip ID leads its chip's fields: only the empty lines tell chips apart;
    # a Chip ID read as closing its chip (as on 910B) would give chip 1 chip 0's 5.0 W.
    text = (
        "\tNPU ID : 0\n\tChip Count : 2\n\n"
        "\tChip ID : 0\n" + power(5.0) + "\n"
        "\tChip ID : 1\n" + power(6.0) + "\n" + power(3.4) + "\tChip Name : MCU\n\n"
    )
    assert npusmi.parse_power(text, 0) == 5.0
    assert npusmi.parse_power(text, 1) == 6.0


@pytest.mark.parametrize(
    "text, chip_id",
    [
        (POWER_910B, 2),
        (atlas_with_mcu_real_time_power(), 1),
        # chip 0 did not answer (not printed): chip 1 and the MCU are no stand-ins for it
        (view_910b_style({1: power(91.2)}, mcu=power(12.0)), None),
        (view_910b_style({1: power(91.2)}, mcu=power(12.0)), 0),
    ],
)
def test_a_missing_chip_is_an_error_never_another_units_value(text, chip_id):
    with pytest.raises(NpuSmiError, match="no section for chip") as info:
        npusmi.parse_power(text, chip_id)
    assert "\n" not in str(info.value)
    with pytest.raises(NpuSmiError, match="no section for chip"):
        npusmi.parse_usages(text, chip_id)


def test_chip_without_a_power_field_does_not_borrow_the_mcus():
    text = view_910b_style({0: "\tHBM Usage Rate(%) : 4\n"}, mcu=power(12.0))
    with pytest.raises(NpuSmiError, match="no power field"):
        npusmi.parse_power(text)


def test_section_glued_to_the_mcu_is_not_attributed():
    # 310/310B: npu-smi prints "Chip ID" before asking the chip; one that answers "not
    # supported" leaves the line without its empty line, in front of the MCU's fields (here an
    # MCU that prints a real-time reading too): read as chip 0's, 3.4 W would be recorded.
    text = (
        "\tNPU ID : 0\n\tChip Count : 1\n\n"
        "\tChip ID : 0\n" + power(3.4) + "\tPower Dissipation(W) : 16.9\n\tChip Name : MCU\n\n"
    )
    assert [s.kind for s in npusmi.parse_sections(text)] == ["mixed"]
    with pytest.raises(NpuSmiError, match="unattributable: chip 0"):
        npusmi.parse_power(text)


def test_view_without_chip_ids_takes_its_one_chip_section():
    # The V2 tool (Ascend 950) prints neither Chip Count nor Chip ID; the MCU keeps its name.
    text = "\tNPU ID : 0\n" + power(203.3) + "\n" + power(12.5) + "\tChip Name : MCU\n\n"
    assert npusmi.parse_power(text) == 203.3
    # two sections without a Chip ID: nothing says which one is chip 0
    two_unnumbered = text.replace(power(203.3), power(1.0) + "\n" + power(2.0))
    with pytest.raises(NpuSmiError, match=r"no section for chip 0 .*chip \?, chip \?, MCU"):
        npusmi.parse_power(two_unnumbered)


def test_chip_view_asked_with_c_is_that_chips_whatever_its_id():
    # `-c N` prints the chip's fields alone, with no Chip ID to check against.
    assert npusmi.parse_power(power(50.0), 1) == 50.0
    assert npusmi.parse_usages("\tAicore Usage Rate(%) : 41\n", 3) == {"aicore_pct": 41.0}


# --- info -t common: the AI Core count (NPU core partitions) ----------------------------------
# No capture of `npu-smi info -t common` is in tests/fixtures/npu-smi/: these views are NOT
# captured. They follow the layout every key/value view has (as above) with "Aicore Count", the
# field Ascend's op-plugin tests read from this view
# (test/test_custom_ops/test_npu_advance_step_flashattn.py); other fields are left out.


def aicores(n: int | str) -> str:
    return f"\tAicore Usage Rate(%)           : 7\n\tAicore Count                   : {n}\n"


def test_aicore_count_of_the_asked_chip_in_a_whole_card_view():
    text = view_910b_style({0: aicores(24), 1: aicores(20)}, mcu=power(12.0))
    assert npusmi.parse_aicore_count(text) == 24
    assert npusmi.parse_aicore_count(text, 1) == 20
    with pytest.raises(NpuSmiError, match="no section for chip 2"):
        npusmi.parse_aicore_count(text, 2)


def test_aicore_count_of_a_chip_view_asked_with_c():
    assert npusmi.parse_aicore_count(aicores(24), 1) == 24


@pytest.mark.parametrize("value", ["NA", "0", "", "24.5", "-3"])
def test_aicore_count_without_a_whole_positive_number_is_an_error(value):
    with pytest.raises(NpuSmiError, match="no Aicore Count") as info:
        npusmi.parse_aicore_count(aicores(value))
    assert "\n" not in str(info.value)


def test_the_real_usage_captures_have_no_aicore_count():
    # "Aicore Usage Rate(%)" is a percentage, never to be read as a count
    with pytest.raises(NpuSmiError, match="no Aicore Count"):
        npusmi.parse_aicore_count(fixture("usages-910B.txt"))


def test_aicore_count_asks_the_physical_chip_of_a_runtime_device(monkeypatch):
    asked = []

    def run(*args):
        asked.append(args)
        return MAPPING if args == ("info", "-m") else aicores(8)

    monkeypatch.setattr(npusmi, "run", run)
    # runtime device 2 is NPU 1, chip 0 in MAPPING
    assert npusmi.aicore_count(2) == 8
    assert asked[-1] == ("info", "-t", "common", "-i", "1", "-c", "0")
