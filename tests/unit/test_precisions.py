"""native16 resolves to what each device computes natively; emulated dtypes are flagged."""

from __future__ import annotations

import pytest

from dualbench.hardware import Accelerator, CpuFacts
from dualbench.native_dtypes import emulation_warning, resolve_native16

AVX2 = CpuFacts("x86_64", "AMD EPYC 7B12", ("avx2", "fma", "f16c"), (0, 1))
AVX512_BF16 = CpuFacts("x86_64", "AMD EPYC 9B14", ("avx2", "avx512f", "avx512_bf16"), (0, 1))
SAPPHIRE_RAPIDS = CpuFacts(
    "x86_64", "Xeon", ("avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"), (0,)
)
KUNPENG_920 = CpuFacts("aarch64", "", ("asimd", "asimdhp", "fphp"), (0,))
GRAVITON3 = CpuFacts("aarch64", "", ("asimd", "bf16", "sve"), (0,))


@pytest.mark.parametrize(
    ("cpu", "dtype"),
    [(AVX2, "fp32"), (AVX512_BF16, "bf16"), (SAPPHIRE_RAPIDS, "bf16"), (KUNPENG_920, "fp32")]
    + [(GRAVITON3, "bf16")],
)
def test_native16_on_cpus(cpu, dtype):
    resolved, why = resolve_native16("cpu", cpu)
    assert resolved == dtype
    assert "\n" not in why
    if dtype == "fp32":
        assert "no native bf16" in why


@pytest.mark.parametrize(
    ("capabilities", "dtype"),
    [([(9, 0)], "bf16"), ([(8, 0), (8, 6)], "bf16"), ([(7, 5)], "fp16"), ([(9, 0), (7, 0)], "fp16")]
    + [([None], "fp16")],
)
def test_native16_on_gpus(capabilities, dtype):
    gpus = [Accelerator(i, f"gpu{i}", c) for i, c in enumerate(capabilities)]
    assert resolve_native16("cuda", accelerators=gpus)[0] == dtype


@pytest.mark.parametrize(
    ("names", "dtype"),
    [(["910B2C", "910B2C"], "bf16"), (["910B4"], "bf16"), (["310P3"], "fp16")]
    + [(["910B3", "310P3"], "fp16"), (["Ascend910_9391"], "bf16")],
)
def test_native16_on_npus(names, dtype):
    npus = [Accelerator(i, n) for i, n in enumerate(names)]
    assert resolve_native16("npu", accelerators=npus)[0] == dtype


@pytest.mark.parametrize("precision", ["bf16", "int4"])
def test_bf16_on_a_cpu_without_it_is_flagged(precision):
    warning = emulation_warning("cpu", precision, cpu=AVX2)
    assert warning and "emulated" in warning and "native16" in warning
    # The record form (CpuFacts.to_dict(), as a worker writes it) gives the same answer.
    assert emulation_warning("cpu", precision, cpu=AVX2.to_dict()) == warning
    assert emulation_warning("cpu", precision, cpu=AVX512_BF16) is None


def test_fp16_is_native_only_with_fp16_arithmetic():
    assert "emulated" in emulation_warning("cpu", "fp16", cpu=AVX512_BF16)
    assert emulation_warning("cpu", "fp16", cpu=SAPPHIRE_RAPIDS) is None
    assert emulation_warning("cpu", "fp16", cpu=KUNPENG_920) is None


def test_fp32_is_never_flagged():
    assert emulation_warning("cpu", "fp32", cpu=AVX2) is None
    assert emulation_warning("cuda", "fp32", capability=(7, 0)) is None


def test_bf16_on_a_pre_ampere_gpu_is_flagged():
    assert "sm75" in emulation_warning("cuda", "bf16", capability=(7, 5))
    assert emulation_warning("cuda", "bf16", capability=(8, 0)) is None
    assert emulation_warning("cuda", "fp16", capability=(7, 5)) is None


def test_a_run_record_carries_the_warning_of_its_host(monkeypatch):
    from dualbench.measure import trial_record

    monkeypatch.setattr(trial_record, "cpu_facts", lambda: AVX2)
    slots = {"A": {"result": None}, "B": {"result": {"device_info": {"kind": "cpu"}}}}
    (warning,) = trial_record.dtype_warnings("cpu", "bf16", slots)
    assert warning.startswith("bf16 is emulated on this CPU")
    assert trial_record.dtype_warnings("cpu", "fp32", slots) == []
    monkeypatch.setattr(trial_record, "cpu_facts", lambda: AVX512_BF16)
    assert trial_record.dtype_warnings("cpu", "bf16", slots) == []


def test_a_gpu_run_is_judged_by_its_workers_capability(monkeypatch):
    from dualbench.measure import trial_record

    info = {"device_info": {"kind": "cuda", "compute_capability": [7, 5]}}
    slots = {"A": {"result": info}, "B": {"result": None}}
    assert "sm75" in trial_record.dtype_warnings("cuda", "bf16", slots)[0]
    assert trial_record.dtype_warnings("cuda", "fp16", slots) == []
