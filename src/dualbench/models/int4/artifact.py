"""The INT4 artifact: writing it (quantize_model) and reading it back (read_int4_weights).

Its format and the formula its weights follow are in dualbench.models.int4. Both directions go
through compressed-tensors' own code where it matters (quantising and packing at conversion; the
tests check our reading against its decompressor), so our files are its files.
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
from dualbench.models.safetensors_file import SafetensorsFile

# The group sizes torch's int4pack ops take (dualbench.models.int4.kernels checks them); the
# config's int4.group_size offers the same.
GROUP_SIZES = (32, 64, 128, 256)
# Activations of every INT4 kernel (kernels.py), and so the dtype conversion writes the
# artifact's 16-bit tensors in: torch's int4pack kernels take bf16 only, and on CPU they are
# fast only with bf16 (DESIGN §7); torch_npu's takes fp16 or bf16.
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
        return unpack_nibbles(self.packed, self.shape)

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


def unpack_nibbles(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
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
            unsigned = unpack_nibbles(zero_point.t().contiguous(), scale.shape[::-1]).t()
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
