"""Which dtypes a device computes natively: what the ``native16`` precision resolves to, and
the warning a run carries when it computes in a dtype its device only emulates (pure functions
of the hardware facts in dualbench.hardware; the Snakefile uses them at validation).

``native16`` resolves, once at validation, to:
- CPU: bf16 where the CPU has native bf16 dot products (x86 AVX512-BF16 or AMX-BF16, Arm
  FEAT_BF16), else fp32. fp16 is not chosen on CPUs: without AVX512-FP16/AMX-FP16 it is
  emulated too, and CPUs that have it also have bf16.
- CUDA: bf16 from compute capability 8.0 (Ampere) on, else fp16.
- NPU: bf16 on Atlas A2/A3 (Ascend 910B, 910_93), else fp16 (310P and the first 910 have no
  bf16 cube units: SEED.md, checked against CANN).
Measured on an AVX2-only CPU (issue 8): a 1024-token forward pass of the mini model took
53.1 s in bf16, 42.2 s in fp16 and 7.7 s in fp32, which is why emulated 16-bit is flagged.
"""

from __future__ import annotations

# Chips whose cube units compute bf16 (Atlas A2/A3): npu-smi names them 910B1..910B4, 910B2C...
NPU_BF16_CHIPS = ("910B", "910_93", "Ascend910B", "Ascend910_93")


def resolve_native16(kind: str, cpu=None, accelerators=()) -> tuple[str, str]:
    """(concrete precision, one-line reason) of ``native16`` on a ``kind`` device.

    ``cpu`` is a hardware.CpuFacts; ``accelerators`` the slots' hardware.Accelerator entries
    (all of them must have bf16 for bf16 to be chosen)."""
    if kind == "cpu":
        if cpu.native_bf16:
            have = ", ".join(f for f in cpu.flags if f in ("avx512_bf16", "amx_bf16", "bf16"))
            return "bf16", f"this CPU computes bf16 natively ({have})"
        return "fp32", (
            "this CPU has no native bf16 (no avx512_bf16, amx_bf16 or Arm bf16): bf16 would be "
            "emulated, several times slower than fp32, so native16 runs fp32"
        )
    if kind == "cuda":
        caps = [a.compute_capability for a in accelerators]
        if caps and all(c is not None and c >= (8, 0) for c in caps):
            return "bf16", "every slot's GPU is sm80 or newer (native bf16)"
        names = ", ".join(f"{a.name} (sm{_cap(a.compute_capability)})" for a in accelerators)
        return "fp16", f"not every slot's GPU has native bf16 (needs sm80+): {names}"
    if kind == "npu":
        if accelerators and all(a.name.startswith(NPU_BF16_CHIPS) for a in accelerators):
            return "bf16", "Atlas A2/A3 NPU (910B class): native bf16"
        names = ", ".join(sorted({a.name for a in accelerators})) or "unknown chip"
        return "fp16", f"NPU {names} has no bf16 cube units (only 910B-class chips do)"
    raise ValueError(f"unknown device kind {kind!r}")


def emulation_warning(kind: str, precision: str, cpu=None, capability=None) -> str | None:
    """One line when ``precision`` is computed in a dtype ``kind`` only emulates, else None.

    ``cpu`` (hardware.CpuFacts or its to_dict()) for the CPU; ``capability`` (major, minor)
    for a CUDA GPU. Such runs stay allowed: the warning travels with their numbers."""
    compute = {"int4": "bf16"}.get(precision, precision)
    if compute not in ("bf16", "fp16"):
        return None
    what = f"{precision} (bf16 activations)" if precision == "int4" else precision
    if kind == "cpu" and cpu is not None:
        native = _get(cpu, "native_bf16") if compute == "bf16" else _get(cpu, "native_fp16")
        if not native:
            needs = (
                "avx512_bf16, amx_bf16 or Arm bf16"
                if compute == "bf16"
                else "avx512_fp16, amx_fp16 or Arm fp16 arithmetic"
            )
            return (
                f"{what} is emulated on this CPU (it has none of {needs}): expect it several "
                "times slower than fp32; precision native16 picks the fast dtype"
            )
    if kind == "cuda" and compute == "bf16" and capability and tuple(capability) < (8, 0):
        return (
            f"{what} on a sm{_cap(capability)} GPU has no bf16 tensor cores (needs sm80+): "
            "expect it far slower than fp16; precision native16 picks fp16 here"
        )
    return None


def _get(facts, name: str):
    return facts[name] if isinstance(facts, dict) else getattr(facts, name)


def _cap(capability) -> str:
    return "?" if capability is None else f"{capability[0]}{capability[1]}"
