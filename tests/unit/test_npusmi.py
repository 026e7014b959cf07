"""npu-smi parsers on the real captures in tests/fixtures/npu-smi/, and on the variants other
chips and drivers print (TAB-led lines, Chip ID after the fields, missing fields, garbage).
The sampler reads `-t usages` and `-t power`; the `watch` capture is kept with the others but
has no parser, since `watch` streams at 1 s at best, too coarse for 0.2 s sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualbench import npusmi
from dualbench.npusmi import NpuSmiError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_usages_910b():
    assert npusmi.parse_usages(fixture("usages-910B.txt")) == {
        "aicore_pct": 0.0,
        "hbm_usage_pct": 0.0,
        "hbm_bw_pct": 0.0,
    }


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
    # The capture prints both: the instantaneous 9.1 W and the 16.9 W dissipation rating.
    assert npusmi.parse_power(fixture("power-atlas200IA2.txt")) == 9.1


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
