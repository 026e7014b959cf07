"""Hardware facts read without torch: /proc/cpuinfo flags, nvidia-smi's GPU list and the
npu-smi device table (on the real capture in tests/fixtures)."""

from __future__ import annotations

from pathlib import Path

from dualbench import hardware
from dualbench.hardware import Accelerator, CpuFacts

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "npu-smi"

# The first processor block of /proc/cpuinfo on the two kinds of x86 CPU this project's
# machines come in (flags cut to the interesting part), and on a Kunpeng 920 (Arm).
EPYC_AVX2 = """\
processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B12
flags		: fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 sha_ni

processor	: 1
flags		: fpu sse avx512_bf16
"""
EPYC_ZEN4 = """\
processor	: 0
model name	: AMD EPYC 9B14
flags		: fpu avx f16c fma avx2 avx512f avx512dq avx512_vnni avx512_bf16 avx512vl
"""
KUNPENG_920 = """\
processor	: 0
BogoMIPS	: 200.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm
CPU implementer	: 0x48
"""


def test_cpuinfo_of_an_avx2_only_cpu_has_no_native_bf16():
    model, flags = hardware.parse_cpuinfo(EPYC_AVX2)
    assert model == "AMD EPYC 7B12"
    # Only the first processor block counts: the second's flags are not this CPU's first.
    assert flags == ("avx2", "fma", "f16c")
    facts = CpuFacts("x86_64", model, flags, (0, 1))
    assert not facts.native_bf16 and not facts.native_fp16


def test_cpuinfo_of_an_avx512_bf16_cpu():
    _, flags = hardware.parse_cpuinfo(EPYC_ZEN4)
    facts = CpuFacts("x86_64", "", flags, (0,))
    assert "avx512_bf16" in flags and facts.native_bf16 and not facts.native_fp16
    assert facts.to_dict()["flags"] == list(flags)


def test_cpuinfo_of_an_arm_cpu_without_bf16():
    _, flags = hardware.parse_cpuinfo(KUNPENG_920)
    facts = CpuFacts("aarch64", "", flags, (0,))
    assert flags == ("asimd", "asimdhp", "fphp")
    assert not facts.native_bf16 and facts.native_fp16


def test_this_machines_facts_are_read():
    facts = hardware.cpu_facts()
    assert facts.usable_cores and facts.arch
    assert set(facts.flags) <= set(hardware.X86_FLAGS + hardware.ARM_FLAGS)


def test_nvidia_smi_list_with_and_without_compute_capability():
    text = "0, NVIDIA H100 80GB HBM3, 9.0\n1, Tesla T4, 7.5\n"
    assert hardware.parse_nvidia_smi(text) == [
        Accelerator(0, "NVIDIA H100 80GB HBM3", (9, 0)),
        Accelerator(1, "Tesla T4", (7, 5)),
    ]
    assert hardware.parse_nvidia_smi("0, Tesla V100-SXM2-16GB\n") == [
        Accelerator(0, "Tesla V100-SXM2-16GB", None)
    ]
    assert hardware.parse_nvidia_smi("No devices were found\n") == []


def test_npu_smi_table_of_the_real_capture():
    text = (FIXTURES / "info-910B2C.txt").read_text()
    assert hardware.parse_npu_smi_table(text) == [
        Accelerator(0, "910B2C"),
        Accelerator(1, "910B2C"),
    ]


def test_missing_tools_mean_no_devices(monkeypatch):
    monkeypatch.setattr(hardware.shutil, "which", lambda name: None)
    assert hardware.cuda_devices() is None
    assert hardware.npu_devices() is None


def test_a_failing_tool_is_a_hardware_error(monkeypatch, tmp_path):
    tool = tmp_path / "npu-smi"
    tool.write_text("#!/bin/sh\necho 'dcmi model initialized failed' >&2\nexit 3\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    try:
        hardware.npu_devices()
    except hardware.HardwareError as error:
        assert "code 3" in str(error) and "dcmi model initialized failed" in str(error)
    else:
        raise AssertionError("no HardwareError")


def test_npu_smi_on_path_is_read(monkeypatch, tmp_path):
    tool = tmp_path / "npu-smi"
    tool.write_text(f"#!/bin/sh\ncat {FIXTURES / 'info-910B2C.txt'}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert [d.name for d in hardware.npu_devices()] == ["910B2C", "910B2C"]


def test_cpu_mhz_of_every_processor_is_read():
    text = "processor\t: 0\ncpu MHz\t\t: 2596.138\n\nprocessor\t: 1\ncpu MHz\t\t: 3100.5\n"
    assert hardware.parse_cpu_mhz(text) == [2596.138, 3100.5]
    assert hardware.parse_cpu_mhz("Features\t: fp asimd\n") == []  # Arm: none printed


def test_machine_state_says_where_the_clock_came_from():
    state = hardware.machine_state()
    assert set(state) == {"loadavg_1m", "loadavg_5m", "cpu_mhz", "cpu_mhz_source"}
    assert state["loadavg_1m"] >= 0
    if state["cpu_mhz"] is None:
        assert state["cpu_mhz_source"] == ""
    else:
        assert state["cpu_mhz"] > 0 and state["cpu_mhz_source"]
