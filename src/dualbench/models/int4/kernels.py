"""INT4 kernels: how each backend holds an Int4Weight and multiplies by it.

Every kernel computes ``x @ w.T`` for the one formula in dualbench.models.int4; they differ only
in how they hold q, scale and zp, built at load time from the unpacked artifact. The reference
kernel is for checking and the explicit fallback; the native ones (CPU and CUDA: torch's int4pack
ops; NPU: torch_npu's weight-quant matmul) are what INT4 is benchmarked on.
"""

from __future__ import annotations

import torch
from torch import nn

from dualbench.errors import Int4Error
from dualbench.models.int4.artifact import (
    ACTIVATION_DTYPE,
    GROUP_SIZES,
    Int4Weight,
    unpack_nibbles,
)


class Kernel:
    """How one backend holds an Int4Weight (``prepare``, once at load) and multiplies by it.

    ``check`` raises Int4Error naming the layer and the limit before any op is called, so a
    shape the op cannot take is one clear line, not an error from inside the device runtime.
    """

    name = ""

    def check(self, module: str, weight: Int4Weight) -> None:
        pass

    def prepare(self, weight: Int4Weight, device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def matmul(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


def _check_int4pack(module: str, weight: Int4Weight, kernel: str, row_multiple: int) -> None:
    """The limits torch's int4pack ops (CPU and CUDA) share: a group size they know that
    divides K, and N a multiple of their row block."""
    out_features, in_features = weight.shape
    if weight.group_size not in GROUP_SIZES or in_features % weight.group_size:
        raise Int4Error(
            f"{kernel} needs a group size in {GROUP_SIZES} dividing the input features; "
            f"{module} has {in_features} inputs and group size {weight.group_size}: "
            "change int4.group_size"
        )
    if out_features % row_multiple:
        raise Int4Error(
            f"{kernel} needs output features divisible by {row_multiple}; {module} has "
            f"{out_features}: set int4.kernel: reference for this model"
        )


def _scales_and_zeros(weight: Int4Weight) -> torch.Tensor:
    """torch's int4pack layout [groups, out, 2] for w = (u - 8) * scale + zero with unsigned
    u = q + 8; ours is w = (q - zp) * scale, hence zero = -zp * scale (rounded once to bf16:
    at most 1/64 of a quantisation step, since |zp| <= 8)."""
    scale = weight.scale.float()
    zero = (
        torch.zeros_like(scale) if weight.zero_point is None else -weight.zero_point.float() * scale
    )
    return torch.stack([scale.t(), zero.t()], dim=-1).to(ACTIVATION_DTYPE).contiguous()


class ReferenceKernel(Kernel):
    """Dequantise once, then a dense 16-bit matmul: for checking, and the explicit fallback
    (``int4.kernel: reference``). It holds a dense weight, so it saves no memory and measures
    no INT4 speed."""

    name = "reference: dequantised bf16 weight + torch.nn.functional.linear"

    def prepare(self, weight, device):
        return {"weight": weight.dequantize(ACTIVATION_DTYPE).to(device)}

    def matmul(self, x, state):
        return nn.functional.linear(x, state["weight"])


class CpuKernel(Kernel):
    """torch's CPU int4pack kernels. Checked here on 2.13: the pack op needs N % 16 == 0 and
    even K; the matmul takes bf16/fp16/fp32 activations but is fast only with bf16."""

    name = "aten._weight_int4pack_mm_for_cpu"

    def check(self, module, weight):
        _check_int4pack(module, weight, self.name, row_multiple=16)

    # The op takes int32 [N, K], 4 bytes per weight: an lm_head at once would need 1 GiB
    # transiently and set the worker's peak memory. Its output is row-blocked (64 rows or
    # fewer), so packing a multiple of 64 rows at a time gives the same bytes (tested).
    ROWS_PER_CHUNK = 4096

    def prepare(self, weight, device):
        packed = weight.packed
        out_features, in_features = weight.shape
        chunks = []
        for start in range(0, out_features, self.ROWS_PER_CHUNK):
            rows = packed[start : start + self.ROWS_PER_CHUNK]
            # Split the bytes, then widen: measured on the 1B shape, this is 2.5x faster than
            # shifting the int32 words into an int32 [N, K] directly (1.2 s against 2.9 s).
            unsigned = unpack_nibbles(rows, (rows.shape[0], in_features)).to(torch.int32)
            # innerKTiles is ignored by the CPU op; the layout it returns is opaque.
            chunks.append(torch.ops.aten._convert_weight_to_int4pack_for_cpu(unsigned, 1))
        return {
            "packed": torch.cat(chunks) if len(chunks) > 1 else chunks[0],
            "scales_and_zeros": _scales_and_zeros(weight),
            "group_size": weight.group_size,
        }

    def matmul(self, x, state):
        return torch.ops.aten._weight_int4pack_mm_for_cpu(
            x, state["packed"], state["group_size"], state["scales_and_zeros"]
        )


class CudaKernel(Kernel):
    """torch's tinygemm (aten/src/ATen/native/cuda/int4mm.cu): bf16 activations only, sm80+.

    Pack input: uint8 [N, K/2], byte j of row n = (u[n, 2j] << 4) | u[n, 2j+1] (even k in the
    high nibble), u unsigned. innerKTiles in {2, 4, 8} needs K % (16 * innerKTiles) == 0.
    torchao's int4 config was not used: its default packing now needs fbgemm-gpu-genai and its
    API was renamed twice in 2025; the aten ops are the kernel torchao's tinygemm path calls.
    """

    name = "aten._weight_int4pack_mm (tinygemm)"

    def check(self, module, weight):
        _check_int4pack(module, weight, self.name, row_multiple=8)

    @staticmethod
    def inner_k_tiles(in_features: int) -> int:
        return next(t for t in (8, 4, 2) if in_features % (16 * t) == 0)

    def prepare(self, weight, device):
        unsigned = weight.unsigned
        nibbles = (unsigned[:, 0::2] << 4) | unsigned[:, 1::2]
        tiles = self.inner_k_tiles(weight.shape[1])
        return {
            "packed": torch.ops.aten._convert_weight_to_int4pack(
                nibbles.contiguous().to(device), tiles
            ),
            "scales_and_zeros": _scales_and_zeros(weight).to(device),
            "group_size": weight.group_size,
        }

    def matmul(self, x, state):
        return torch.ops.aten._weight_int4pack_mm(
            x.contiguous(), state["packed"], state["group_size"], state["scales_and_zeros"]
        )


# npu_weight_quant_batchmatmul's documented limits (op-plugin docs, torch_npu-npu_weight_
# quant_batchmatmul.md): K and N in [1, 65535]; antiquant_group_size a multiple of 32 in
# [32, K - 1]; int4 packed along N needs N % 8 == 0.
NPU_MAX_DIM = 65535
# Atlas A2 (Ascend910B*) and A3 (Ascend910_93*) have the int4 path; 310P has int8 weights only.
NPU_INT4_CHIPS = ("Ascend910B", "Ascend910_93")


class NpuKernel(Kernel):
    """torch_npu's weight-quant matmul: y = x @ ((w + antiquant_offset) * antiquant_scale),
    w an int32 [K, N] of values in [-8, 7] packed by npu_convert_weight_to_int4pack to
    [K, N/8]; scale and offset [K/group, N] in the activation dtype, offset = -zp."""

    name = "torch_npu.npu_weight_quant_batchmatmul"

    def __init__(self, torch_npu=None, chip: str | None = None):
        self._torch_npu = torch_npu
        self._chip = chip

    @property
    def torch_npu(self):
        if self._torch_npu is None:
            from dualbench.backends.npu import import_torch_npu

            self._torch_npu = import_torch_npu()
        return self._torch_npu

    def chip(self) -> str:
        if self._chip is None:
            self._chip = str(self.torch_npu.npu.get_device_name(0))
        return self._chip

    def check(self, module, weight):
        chip = self.chip()
        if not chip.startswith(NPU_INT4_CHIPS):
            raise Int4Error(
                f"INT4 weights on NPU need an Atlas A2/A3 chip (Ascend910B*, Ascend910_93*); "
                f"this one is {chip}, which has no int4 matmul: drop int4 from precisions"
            )
        out_features, in_features = weight.shape
        group = weight.group_size
        if out_features > NPU_MAX_DIM or in_features > NPU_MAX_DIM:
            raise Int4Error(
                f"{self.name} takes at most {NPU_MAX_DIM} rows and columns; {module} is "
                f"{out_features}x{in_features}"
                + (": set int4.quantize_lm_head: false" if module.endswith("lm_head") else "")
            )
        if group % 32 or not 32 <= group < in_features or in_features % group:
            raise Int4Error(
                f"{self.name} needs a group size that is a multiple of 32 in [32, K-1] and "
                f"divides K; {module} has K={in_features}, group size {group}: "
                "change int4.group_size"
            )
        if out_features % 8:
            raise Int4Error(
                f"{self.name} packs int4 along N and needs N % 8 == 0; {module} has "
                f"N={out_features}: set int4.kernel: reference for this model"
            )

    def prepare(self, weight, device):
        npu = self.torch_npu
        q = weight.q.t().to(torch.int32).contiguous().to(device)  # [K, N]
        offset = None
        if weight.zero_point is not None:
            offset = (-weight.zero_point.t().float()).to(ACTIVATION_DTYPE).contiguous()
            offset = offset.to(device)
        return {
            "packed": npu.npu_convert_weight_to_int4pack(q),
            "scale": weight.scale.t().to(ACTIVATION_DTYPE).contiguous().to(device),
            "offset": offset,
            "group_size": weight.group_size,
        }

    def matmul(self, x, state):
        return self.torch_npu.npu_weight_quant_batchmatmul(
            x,
            state["packed"],
            state["scale"],
            antiquant_offset=state["offset"],
            antiquant_group_size=state["group_size"],
        )


NATIVE_KERNELS: dict[str, type[Kernel]] = {"cpu": CpuKernel, "cuda": CudaKernel, "npu": NpuKernel}
KERNEL_CHOICES = ("native", "reference")


def kernel_for(backend_kind: str, choice: str = "native") -> Kernel:
    """The benchmarked kernel: the backend's native one unless the config asks for the
    reference explicitly. Never a silent fallback: a native kernel that cannot run raises."""
    if choice == "reference":
        return ReferenceKernel()
    if choice != "native":
        raise Int4Error(f"int4.kernel {choice!r} is unknown; use one of {KERNEL_CHOICES}")
    return NATIVE_KERNELS[backend_kind]()
