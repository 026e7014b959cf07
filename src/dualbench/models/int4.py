"""INT4 weight-only linear layers: the artifact on disk, read back, run on native kernels.

The artifact is a compressed-tensors ``pack-quantized`` W4A16 checkpoint (the format vLLM and
vllm-ascend load): each quantised ``nn.Linear`` is stored as ``weight_packed`` (int32, eight
4-bit values per word along the input dimension, offset by +8), ``weight_scale`` (one per
group of ``group_size`` input columns, in the 16-bit dtype), ``weight_zero_point`` (packed the
same way along the output dimension; absent when symmetric) and ``weight_shape``, with the
matching ``quantization_config`` in config.json. compressed-tensors itself quantises and packs
(``quantize_model``) and unpacks (``read_int4_weights``), so our files are its files.

One formula, for output row n, input column k in group g = k // group_size:

    w[n, k] = (q[n, k] - zp[n, g]) * scale[n, g]      q, zp in [-8, 7]; zp = 0 when symmetric

Every kernel computes ``x @ w.T`` for that w. They differ only in how they hold q, scale and zp,
and all of them are built at load time from the unpacked artifact: loading never quantises.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dualbench.errors import Int4Error

GROUP_SIZES = (32, 64, 128, 256)
# Activations of every INT4 kernel here: torch's int4pack kernels take bf16 only, and on CPU
# they are fast only with bf16 (DESIGN §7); torch_npu's takes fp16 or bf16.
ACTIVATION_DTYPE = torch.bfloat16


# --- writing the artifact ------------------------------------------------------------------


def quantization_config(group_size: int, symmetric: bool, quantize_lm_head: bool):
    """The compressed-tensors description of our scheme: 4-bit int weights, group-wise,
    static round-to-nearest, activations untouched."""
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
    )

    weights = QuantizationArgs(
        num_bits=4, type="int", symmetric=symmetric, strategy="group", group_size=group_size
    )
    return QuantizationConfig(
        config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)},
        ignore=[] if quantize_lm_head else ["lm_head"],
        format="pack-quantized",
    )


def quantize_model(model: nn.Module, group_size: int, symmetric: bool, quantize_lm_head: bool):
    """Quantise ``model``'s linear layers in place (round-to-nearest from each group's min/max)
    and pack them; returns the ModelCompressor whose ``update_config`` writes config.json's
    ``quantization_config`` after ``model.save_pretrained``."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import apply_quantization_config
    from compressed_tensors.quantization.utils.helpers import calculate_qparams

    if quantize_lm_head and getattr(model.config, "tie_word_embeddings", False):
        # The embedding lookup keeps the 16-bit table; the output projection gets its own copy
        # to quantise, so the two can no longer be one tensor.
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
        model.config.tie_word_embeddings = False
    config = quantization_config(group_size, symmetric, quantize_lm_head)
    apply_quantization_config(model, config)
    for name, module in model.named_modules():
        scheme = getattr(module, "quantization_scheme", None)
        if scheme is None:
            continue
        weight = module.weight.detach()
        out_features, in_features = weight.shape
        if in_features % group_size:
            raise Int4Error(
                f"{name} has {in_features} input features, not a multiple of "
                f"int4.group_size {group_size}; choose a group size that divides it"
            )
        groups = weight.float().reshape(out_features, in_features // group_size, group_size)
        # Computed in fp32, stored in the weight's dtype (what vLLM and our kernels read).
        scale, zero_point = calculate_qparams(groups.amin(-1), groups.amax(-1), scheme.weights)
        module.weight_scale.data.copy_(scale.to(module.weight_scale.dtype))
        module.weight_zero_point.data.copy_(zero_point.to(module.weight_zero_point.dtype))
        # compressed-tensors divides by the scale in the weight's dtype; in bf16 that rounds
        # w / scale to 8 bits first and can pick the wrong level (8.53 -> 8.5 -> 8). In fp32
        # (exact for bf16 values) the rounding is to the nearest level.
        module.weight.data = weight.float()
    compressor = ModelCompressor.from_pretrained_model(model, "pack-quantized")
    compressor.compress_model(model)
    return compressor


# --- reading it back -----------------------------------------------------------------------


@dataclass
class Int4Weight:
    """One quantised linear layer's weight: exactly what the artifact holds, still packed.

    Values are unpacked only when a kernel asks for them, one layer at a time: unpacking the
    whole model first would hold a byte per weight and inflate the worker's peak memory, the
    figure INT4 is measured for."""

    # Reads the int32 [out, in / 8] pack-quantized words (value + 8 per nibble): from the file
    # when asked, so only the layer being repacked is in memory.
    read_packed: Callable[[], torch.Tensor]
    shape: tuple[int, int]  # (out, in)
    scale: torch.Tensor  # [out, in // group_size], the artifact's 16-bit dtype
    zero_point: torch.Tensor | None  # int8 [out, in // group_size], None when symmetric
    group_size: int

    @classmethod
    def from_signed(cls, q: torch.Tensor, scale, zero_point, group_size: int) -> Int4Weight:
        from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32

        packed = pack_to_int32(q, 4)
        return cls(lambda: packed, tuple(q.shape), scale, zero_point, group_size)

    @property
    def packed(self) -> torch.Tensor:
        return self.read_packed()

    @property
    def unsigned(self) -> torch.Tensor:
        """uint8 [out, in], u = q + 8 in [0, 15]."""
        return _nibbles(self.packed, self.shape)

    @property
    def q(self) -> torch.Tensor:
        """int8 [out, in], values in [-8, 7]."""
        return self.unsigned.view(torch.int8) - 8

    def expand(self, per_group: torch.Tensor) -> torch.Tensor:
        """[out, groups] -> [out, in]: each group's value repeated over its columns."""
        return per_group.repeat_interleave(self.group_size, dim=1)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The dense weight, computed in fp32 and rounded once to ``dtype``."""
        q = self.q.float()
        if self.zero_point is not None:
            q = q - self.expand(self.zero_point.float())
        return (q * self.expand(self.scale.float())).to(dtype)


def _nibbles(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """pack-quantized int32 words -> uint8 [out, in] of unsigned 4-bit values.

    Element i of a word sits at bits 4i (compressed-tensors' pack_to_int32), so in the
    little-endian bytes (safetensors' byte order, and every host torch ships for) byte j holds
    elements 2j (low nibble) and 2j + 1 (high nibble): a split of the bytes, one pass, with no
    detour through signed values."""
    out_features, in_features = shape
    data = packed.contiguous().view(torch.uint8)
    nibbles = torch.stack((data & 0xF, data >> 4), dim=-1).view(out_features, -1)
    return nibbles[:, :in_features]


@dataclass
class Int4Checkpoint:
    scheme: dict  # group_size, symmetric, quantized modules' names
    weights: dict[str, Int4Weight]
    tensors: dict[str, torch.Tensor]  # everything else (embedding, norms, 16-bit lm_head)


def read_scheme(model_dir: Path) -> dict:
    """The INT4 scheme of an artifact's config.json, or Int4Error if it is not one we run."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    qc = config.get("quantization_config") or {}
    groups = list((qc.get("config_groups") or {}).values())
    weights = groups[0].get("weights") if len(groups) == 1 else None
    ok = (
        qc.get("quant_method") == "compressed-tensors"
        and qc.get("format") == "pack-quantized"
        and weights
        and weights.get("num_bits") == 4
        and weights.get("type") == "int"
        and weights.get("strategy") == "group"
        and not groups[0].get("input_activations")
    )
    if not ok:
        raise Int4Error(
            f"{model_dir} is not a compressed-tensors pack-quantized W4A16 group-wise "
            "checkpoint; rerun the convert rule (delete the directory) to rebuild it"
        )
    return {
        "group_size": int(weights["group_size"]),
        "symmetric": bool(weights["symmetric"]),
    }


_SAFETENSORS_DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "I64": torch.int64,
    "I32": torch.int32,
    "I8": torch.int8,
    "U8": torch.uint8,
}


class SafetensorsFile:
    """A safetensors file read tensor by tensor with plain file reads.

    Written by hand (the format is an 8-byte header length, a JSON header of dtype, shape and
    byte offsets, then the data) because safetensors' own readers map the whole file, and every
    mapped page a read touches counts in the process's RSS until the map closes: reading the
    INT4 layers through a map would count the checkpoint twice in the peak memory a CPU worker
    reports. Here a layer's packed words are in memory only while it is repacked."""

    def __init__(self, path: Path):
        import struct

        self.path = path
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        self.data_start = 8 + header_len
        self.entries = {k: v for k, v in header.items() if k != "__metadata__"}

    def read(self, key: str) -> torch.Tensor:
        info = self.entries[key]
        begin, end = info["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        if end == begin:
            return torch.empty(info["shape"], dtype=dtype)
        buffer = torch.empty(end - begin, dtype=torch.uint8)  # not zero-filled, unlike bytearray
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            if f.readinto(buffer.numpy()) != end - begin:
                raise Int4Error(f"{self.path} is truncated at {key}; rebuild it with convert")
        return buffer.view(dtype).reshape(info["shape"])


def read_int4_weights(model_dir: Path) -> Int4Checkpoint:
    """The artifact's quantised layers (packed words read lazily) and its other tensors.

    Reads the files directly instead of through compressed-tensors, whose import alone takes
    seconds (load time is reported); the tests check the result against its decompressor."""
    scheme = read_scheme(model_dir)
    files = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        file = SafetensorsFile(path)
        files.update(dict.fromkeys(file.entries, file))
    packed_keys = [k for k in files if k.endswith(".weight_packed")]
    # Everything but the packed words is read now: 16-bit tensors, scales, zero points, shapes.
    raw = {k: files[k].read(k) for k in files if not k.endswith(".weight_packed")}
    weights = {}
    for key in packed_keys:
        module = key.removesuffix(".weight_packed")
        shape = torch.Size(raw.pop(f"{module}.weight_shape").tolist())
        scale = raw.pop(f"{module}.weight_scale")
        zero_point = raw.pop(f"{module}.weight_zero_point", None)
        if zero_point is not None:
            # Packed along the output dimension (compressed-tensors' packed_dim=0): [out/8, groups].
            unsigned = _nibbles(zero_point.t().contiguous(), scale.shape[::-1]).t()
            zero_point = unsigned.contiguous().view(torch.int8) - 8
        weights[module] = Int4Weight(
            read_packed=functools.partial(files[key].read, key),
            shape=tuple(shape),
            scale=scale,
            zero_point=zero_point,
            group_size=scheme["group_size"],
        )
    if not weights:
        raise Int4Error(f"{model_dir} holds no packed INT4 weights; rebuild it with convert")
    return Int4Checkpoint(scheme=scheme, weights=weights, tensors=raw)


# --- kernels -------------------------------------------------------------------------------


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
            unsigned = _nibbles(rows, (rows.shape[0], in_features)).to(torch.int32)
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


class Int4Linear(nn.Module):
    """nn.Linear's forward on a kernel-held INT4 weight (no bias: Llama's projections have
    none, and the loader refuses a checkpoint that has one)."""

    def __init__(self, in_features: int, out_features: int, kernel: Kernel, state: dict):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.kernel = kernel
        self.state = state
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                # Not persistent: the kernel layout is a load-time product, never saved.
                self.register_buffer(key, value, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        state = {
            k: getattr(self, k) if isinstance(v, torch.Tensor) else v for k, v in self.state.items()
        }
        y = self.kernel.matmul(x.reshape(-1, self.in_features).contiguous(), state)
        return y[:, : self.out_features].reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, kernel={self.kernel.name}"


def load_int4_model(model_dir: Path, device: torch.device, kernel: Kernel):
    """A causal LM whose quantised linears are Int4Linear on ``kernel``, the rest loaded as
    saved. Built on the meta device, so no dense 16-bit copy of the linear weights is ever
    allocated (it would inflate the worker's peak memory, the figure INT4 is run for).

    Returns (model, info) with info = kernel name, scheme, layer count and timings (the
    worker records the whole load time beside them)."""
    import time

    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    started = time.perf_counter()
    checkpoint = read_int4_weights(model_dir)
    int4_layers = len(checkpoint.weights)
    read_s = time.perf_counter() - started
    config = AutoConfig.from_pretrained(model_dir)
    # Our loader, not transformers' compressed-tensors hook (which decompresses to dense).
    del config.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=ACTIVATION_DTYPE)
    # Every layer is checked before the first op call: a chip or shape the kernel cannot take
    # fails in one line, not halfway through the repack.
    for name, weight in checkpoint.weights.items():
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear) or linear.bias is not None:
            raise Int4Error(f"{model_dir}: {name} is not a bias-free Linear layer")
        kernel.check(name, weight)
    repack_s = 0.0
    for name in list(checkpoint.weights):
        # Popped, so each layer's artifact tensors are freed once its kernel state exists.
        weight = checkpoint.weights.pop(name)
        prepare_started = time.perf_counter()
        state = kernel.prepare(weight, device)
        repack_s += time.perf_counter() - prepare_started
        parent, _, child = name.rpartition(".")
        out_features, in_features = weight.shape
        module = Int4Linear(in_features, out_features, kernel, state)
        setattr(model.get_submodule(parent) if parent else model, child, module)
    tensors = {k: v.to(device=device) for k, v in checkpoint.tensors.items()}
    result = model.load_state_dict(tensors, strict=False, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    _rebuild_meta_buffers(model, config, device)
    leftover = [n for n, p in model.named_parameters() if p.is_meta]
    if leftover or result.unexpected_keys:
        raise Int4Error(
            f"{model_dir} does not match its config (missing {leftover[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}); rebuild it with convert"
        )
    generation = Path(model_dir) / "generation_config.json"
    if generation.is_file():
        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    model.eval()
    info = {
        "kernel": kernel.name,
        "group_size": checkpoint.scheme["group_size"],
        "symmetric": checkpoint.scheme["symmetric"],
        "int4_layers": int4_layers,
        # Reading the artifact (packed words excluded: they are read during the repack), and
        # unpacking + repacking every layer for the kernel.
        "read_s": round(read_s, 3),
        "repack_s": round(repack_s, 3),
    }
    return model, info


def _rebuild_meta_buffers(model: nn.Module, config, device) -> None:
    """Non-persistent buffers (rotary inverse frequencies) are computed in __init__ and never
    saved, so on the meta device they hold nothing: build those modules again for real."""
    for name, module in list(model.named_modules()):
        if not any(b.is_meta for b in module.buffers(recurse=False)):
            continue
        if not type(module).__name__.endswith("RotaryEmbedding"):
            raise Int4Error(f"cannot rebuild buffer of {name} ({type(module).__name__})")
        parent, _, child = name.rpartition(".")
        with torch.device(device):
            rebuilt = type(module)(config=config)
        setattr(model.get_submodule(parent) if parent else model, child, rebuilt)
