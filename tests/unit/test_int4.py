"""INT4: the artifact (compressed-tensors pack-quantized), its kernels and its loader."""

from __future__ import annotations

import json
import types

import pytest
import torch
from torch import nn

from dualbench.backends.base import DeviceError
from dualbench.errors import Int4Error
from dualbench.models.convert import convert, linear_weight_bytes
from dualbench.models.fidelity import compare_logits
from dualbench.models.int4 import kernels
from dualbench.models.int4.artifact import Int4Weight, quantize_model, read_int4_weights
from dualbench.models.int4.kernels import (
    CpuKernel,
    CudaKernel,
    NpuKernel,
    ReferenceKernel,
    kernel_for,
)
from dualbench.models.int4.loader import Int4Linear, load_int4_model

CPU = torch.device("cpu")


def random_weight(out_features=64, in_features=256, group_size=32, symmetric=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    groups = in_features // group_size
    return Int4Weight.from_signed(
        q=torch.randint(-8, 8, (out_features, in_features), generator=g, dtype=torch.int8),
        scale=(torch.rand(out_features, groups, generator=g) * 0.02 + 0.001).to(torch.bfloat16),
        zero_point=None
        if symmetric
        else torch.randint(-8, 8, (out_features, groups), generator=g, dtype=torch.int8),
        group_size=group_size,
    )


def reference_matmul(x, weight):
    """x @ w.T with w dequantised exactly, in fp32 from the same bf16 activations."""
    return x.float() @ weight.dequantize(torch.float32).t()


# --- the artifact --------------------------------------------------------------------------


def test_pack_unpack_round_trip_is_exact():
    from compressed_tensors.compressors.pack_quantized.helpers import (
        pack_to_int32,
        unpack_from_int32,
    )

    q = torch.arange(-8, 8, dtype=torch.int8).repeat(24, 16)[:, torch.randperm(256)]
    packed = pack_to_int32(q, 4)
    assert packed.dtype == torch.int32 and packed.shape == (24, 32)
    assert torch.equal(unpack_from_int32(packed, 4, q.shape), q)
    # The nibble layout other tools rely on: element i of a word at bits 4i, offset by +8.
    word = pack_to_int32(torch.tensor([[-8, -7, 0, 1, 2, 3, 6, 7]], dtype=torch.int8), 4)
    assert int(word) & 0xFFFFFFFF == 0xFEBA9810


def test_quantisation_is_round_to_nearest_within_half_a_step(tiny_model, tiny_int4):
    from safetensors.torch import load_file

    base = load_file(tiny_model / "model.safetensors")
    weights = read_int4_weights(tiny_int4).weights
    name = "model.layers.0.mlp.down_proj"
    w = base[f"{name}.weight"].float()
    deq = weights[name].dequantize()
    step = weights[name].expand(weights[name].scale.float())
    error = (deq - w).abs() / step
    q = weights[name].q
    assert q.min() == -8 and q.max() == 7
    # Inside the range each value lands on the nearest level: within half a step.
    assert error[(q > -8) & (q < 7)].max() <= 0.5 + 1e-4
    # At the clamped ends, the scale's rounding to bf16 (relative 2^-9, over 15 steps) and the
    # zero point's rounding to an integer may leave the extreme value slightly further out.
    assert error.max() <= 0.5 + 15 * 2**-9


def test_artifact_is_a_compressed_tensors_checkpoint(tiny_int4):
    config = json.loads((tiny_int4 / "config.json").read_text())
    qc = config["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "pack-quantized"
    assert qc["ignore"] == ["lm_head"]
    weights = qc["config_groups"]["group_0"]["weights"]
    assert weights["num_bits"] == 4 and weights["group_size"] == 128
    assert weights["strategy"] == "group" and weights["symmetric"] is False
    assert config["tie_word_embeddings"] is True


def decompressed_by_compressed_tensors(model_dir):
    """Every quantised layer's dense weight as compressed-tensors itself decompresses it, from
    config.json's quantization_config and the safetensors, without any of our code."""
    from compressed_tensors.compressors import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from safetensors.torch import load_file

    qc = QuantizationConfig.model_validate(
        json.loads((model_dir / "config.json").read_text())["quantization_config"]
    )
    scheme = qc.config_groups["group_0"]
    tensors = load_file(model_dir / "model.safetensors")
    dense = {}
    for key in [k for k in tensors if k.endswith(".weight_packed")]:
        module = key.removesuffix(".weight_packed")
        local = {
            k.removeprefix(f"{module}."): v
            for k, v in tensors.items()
            if k.startswith(f"{module}.weight_")
        }
        dense[module] = PackedQuantizationCompressor.decompress(local, scheme)["weight"]
    return dense


def test_artifact_opens_with_compressed_tensors_and_matches_our_reading(tiny_int4):
    theirs = decompressed_by_compressed_tensors(tiny_int4)
    ours = read_int4_weights(tiny_int4).weights
    assert len(ours) == 4 * 7 and set(theirs) == set(ours)
    for name, weight in ours.items():
        assert theirs[name].dtype == torch.bfloat16
        assert torch.equal(theirs[name], weight.dequantize(torch.bfloat16)), name


# transformers warns that the checkpoint's own quantization_config wins; run_compressed=False
# (decompress on load) still applies, which is what this test needs.
@pytest.mark.filterwarnings("ignore:You passed `quantization_config`")
def test_symmetric_artifact_loads_in_transformers(tiny_model, tmp_path):
    """transformers' compressed-tensors integration opens it too. (Asymmetric artifacts are
    not tested this way: transformers 5.24 with compressed-tensors 0.20 expects the zero point
    unpacked and refuses the packed [out/8, groups] layout the compressor writes and vLLM
    reads.)"""
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    out = tmp_path / "int4"
    convert(tiny_model, "int4", out, {"symmetric": True})
    theirs = AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.bfloat16, quantization_config=CompressedTensorsConfig(run_compressed=False)
    ).eval()
    ours, _ = load_int4_model(out, CPU, ReferenceKernel())
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(theirs(ids).logits, ours(ids).logits)


def test_save_load_gives_identical_outputs(tiny_model, tiny_int4):
    """Loaded twice through our loader (reference kernel): bit-identical logits, equal to the
    source model running on the weights compressed-tensors decompresses from the files."""
    from transformers import AutoModelForCausalLM

    source = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).eval()
    for name, dense in decompressed_by_compressed_tensors(tiny_int4).items():
        source.get_submodule(name).weight = nn.Parameter(dense)
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        first, _ = load_int4_model(tiny_int4, CPU, ReferenceKernel())
        second, _ = load_int4_model(tiny_int4, CPU, ReferenceKernel())
        a, b, c = (m(ids).logits for m in (first, second, source))
    assert torch.equal(a, b)
    assert torch.equal(a, c)


def test_loader_builds_int4_layers_and_keeps_lm_head_tied(tiny_int4):
    model, info = load_int4_model(tiny_int4, CPU, CpuKernel())
    assert info["kernel"] == "aten._weight_int4pack_mm_for_cpu"
    assert info["int4_layers"] == 28 and info["group_size"] == 128
    assert isinstance(model.model.layers[0].mlp.up_proj, Int4Linear)
    assert isinstance(model.lm_head, nn.Linear)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    # No dense copy of an INT4 layer anywhere: only the 16-bit tensors are parameters.
    assert {n for n, _ in model.named_parameters()} == {
        "model.embed_tokens.weight",
        *{
            f"model.layers.{i}.{n}.weight"
            for i in range(4)
            for n in ("input_layernorm", "post_attention_layernorm")
        },
        "model.norm.weight",
    }
    assert not any(b.is_meta for b in model.buffers())


def test_native_cpu_model_follows_the_reference_model(tiny_int4):
    ids = torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        native = load_int4_model(tiny_int4, CPU, CpuKernel())[0](ids).logits.float()
        ref = load_int4_model(tiny_int4, CPU, ReferenceKernel())[0](ids).logits.float()
    # bf16 activations through 4 layers: both round at every step, in different orders.
    assert (native - ref).abs().max() <= 0.05 * ref.abs().max()


def test_quantised_lm_head_is_untied_and_loads(tiny_model, tmp_path):
    out = tmp_path / "int4"
    record = convert(tiny_model, "int4", out, {"quantize_lm_head": True, "symmetric": True})
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    assert config["quantization_config"]["ignore"] == []
    assert record["quantize_lm_head"] is True and record["symmetric"] is True
    weights = read_int4_weights(out).weights
    assert "lm_head" in weights and weights["lm_head"].zero_point is None
    model, info = load_int4_model(out, CPU, CpuKernel())
    assert isinstance(model.lm_head, Int4Linear) and info["int4_layers"] == 29
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16


# --- conversion record ---------------------------------------------------------------------


def test_conversion_record_has_bytes_and_fidelity(tiny_model, tiny_int4, tmp_path):
    record = json.loads((tiny_int4 / "conversion.json").read_text())
    bf16 = convert(tiny_model, "bf16", tmp_path / "bf16")
    assert record["precision"] == "int4" and record["dtype"] == "bfloat16"
    assert record["format"].startswith("compressed-tensors pack-quantized")
    assert record["linear_weight_bytes"] == linear_weight_bytes(tiny_int4)
    # Per layer: q, o 256x256; k, v 64x256; gate, up, down 1024x256; 2 bytes each in bf16.
    params = 4 * (2 * 256 * 256 + 2 * 64 * 256 + 3 * 1024 * 256)
    assert bf16["linear_weight_bytes"] == 2 * params
    # INT4: 128 weights (64 bytes) + a bf16 scale (2) + a 4-bit zero point (0.5) per group,
    # plus a 16-byte weight_shape per layer.
    assert record["linear_weight_bytes"] == params // 128 * 66.5 + 28 * 16
    fidelity = record["fidelity"]
    assert fidelity["positions"] == 8 * 64
    assert 0 <= fidelity["top1_agreement"] <= 1
    assert fidelity["mean_kl"] > 0 and fidelity["max_abs_logit_error"] > 0


def test_group_size_must_divide_the_layer():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=96,
        intermediate_size=192,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=48,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    with pytest.raises(Int4Error, match=r"96 input features, not a multiple of int4.group_size 64"):
        quantize_model(model, 64, False, False)


def test_reading_a_16bit_checkpoint_as_int4_fails_in_one_line(tiny_model):
    with pytest.raises(Int4Error) as info:
        read_int4_weights(tiny_model)
    assert "not a compressed-tensors pack-quantized" in str(info.value)
    assert "\n" not in str(info.value)


# --- kernels -------------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("rows", [1, 5])
def test_cpu_kernel_matches_the_reference(symmetric, group_size, rows):
    weight = random_weight(group_size=group_size, symmetric=symmetric)
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    kernel = CpuKernel()
    kernel.check("layer", weight)
    out = kernel.matmul(x, kernel.prepare(weight, CPU)).float()
    ref = reference_matmul(x, weight)
    # Stated tolerance: 1% of the output's magnitude. bf16 output rounding is 0.4%; the
    # bf16-rounded zero term (zp * scale) adds at most 1/64 of a step per weight.
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


def test_cpu_kernel_packs_in_row_chunks_to_the_same_bytes(monkeypatch):
    weight = random_weight(out_features=160, in_features=256, group_size=32)
    whole = CpuKernel().prepare(weight, CPU)["packed"]
    monkeypatch.setattr(CpuKernel, "ROWS_PER_CHUNK", 64)
    assert torch.equal(CpuKernel().prepare(weight, CPU)["packed"], whole)


def test_cpu_kernel_limits_are_checked_before_the_call():
    with pytest.raises(Int4Error, match="output features divisible by 16; layer has 40"):
        CpuKernel().check("layer", random_weight(out_features=40))
    with pytest.raises(Int4Error, match="group size in"):
        CpuKernel().check("layer", random_weight(in_features=96, group_size=96))


def test_reference_kernel_is_explicit_only():
    assert isinstance(kernel_for("cpu", "native"), CpuKernel)
    assert isinstance(kernel_for("cpu", "reference"), ReferenceKernel)
    assert isinstance(kernel_for("cuda"), CudaKernel)
    with pytest.raises(Int4Error, match="int4.kernel 'fast' is unknown"):
        kernel_for("cpu", "fast")


class _FakeAten:
    """Stands in for the CUDA-only tinygemm ops, implementing the documented contract
    (int4mm.cu): pack input uint8 [N, K/2] with the even k in the high nibble; the matmul
    computes x @ ((u - 8) * scale + zero).T with [K/g, N, 2] scales_and_zeros, bf16 only."""

    def __init__(self):
        self.calls = []

    def _convert_weight_to_int4pack(self, nibbles, inner_k_tiles):
        self.calls.append(("convert", nibbles.dtype, tuple(nibbles.shape), inner_k_tiles))
        assert nibbles.dtype == torch.uint8 and nibbles.is_contiguous()
        assert nibbles.shape[1] * 2 % (16 * inner_k_tiles) == 0
        return torch.stack([nibbles >> 4, nibbles & 0xF], dim=-1).reshape(nibbles.shape[0], -1)

    def _weight_int4pack_mm(self, x, unsigned, group_size, scales_and_zeros):
        self.calls.append(("mm", x.dtype, group_size, tuple(scales_and_zeros.shape)))
        assert x.dtype == torch.bfloat16 and scales_and_zeros.dtype == torch.bfloat16
        scale = scales_and_zeros[..., 0].t().float().repeat_interleave(group_size, 1)
        zero = scales_and_zeros[..., 1].t().float().repeat_interleave(group_size, 1)
        w = (unsigned.float() - 8) * scale + zero
        return (x.float() @ w.t()).to(torch.bfloat16)


@pytest.mark.parametrize("symmetric", [False, True])
def test_cuda_kernel_builds_the_tinygemm_calls(monkeypatch, symmetric):
    fake = _FakeAten()
    monkeypatch.setattr(
        kernels,
        "torch",
        types.SimpleNamespace(
            **{
                **{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")},
                "ops": types.SimpleNamespace(aten=fake),
            }
        ),
    )
    weight = random_weight(out_features=64, in_features=256, group_size=64, symmetric=symmetric)
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16)
    kernel = CudaKernel()
    kernel.check("layer", weight)
    out = kernel.matmul(x, kernel.prepare(weight, CPU)).float()
    assert fake.calls[0] == ("convert", torch.uint8, (64, 128), 8)
    assert fake.calls[1] == ("mm", torch.bfloat16, 64, (4, 64, 2))
    ref = reference_matmul(x, weight)
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


def test_cuda_kernel_calls_pass_torchs_own_shape_checks():
    """torch registers meta kernels for the CUDA-only ops: run our calls through them."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    weight = random_weight(out_features=64, in_features=256, group_size=128)
    kernel = CudaKernel()
    with FakeTensorMode(allow_non_fake_inputs=True):
        state = kernel.prepare(weight, torch.device("meta"))
        assert state["packed"].dtype == torch.int32
        assert tuple(state["packed"].shape) == (64 // 8, 256 // (16 * 8), 32, 8 // 2)
        x = torch.empty(5, 256, dtype=torch.bfloat16, device="meta")
        assert tuple(kernel.matmul(x, state).shape) == (5, 64)
    assert CudaKernel.inner_k_tiles(256) == 8 and CudaKernel.inner_k_tiles(96) == 2


def _fake_torch_npu(chip="Ascend910B3"):
    """Implements the documented torch_npu contract (op-plugin docs and tests):
    npu_convert_weight_to_int4pack packs int32 [K, N] of values in [-8, 7] along the last dim,
    8 per int32, element i at bits 4i; npu_weight_quant_batchmatmul computes
    x @ ((w + antiquant_offset) * antiquant_scale) with [K/group, N] scale and offset."""
    calls = []

    def convert(weight, inner_k_tiles=0):
        calls.append(("convert", weight.dtype, tuple(weight.shape)))
        assert weight.dtype == torch.int32 and weight.is_contiguous()
        assert weight.shape[-1] % 8 == 0 and weight.min() >= -8 and weight.max() <= 7
        nibbles = (weight & 0xF).reshape(*weight.shape[:-1], -1, 8)
        return (nibbles << (4 * torch.arange(8, dtype=torch.int32))).sum(-1, dtype=torch.int32)

    def matmul(
        x,
        weight,
        antiquant_scale,
        antiquant_offset=None,
        quant_scale=None,
        quant_offset=None,
        bias=None,
        antiquant_group_size=0,
        inner_precise=0,
    ):
        calls.append(
            (
                "mm",
                x.dtype,
                antiquant_scale.dtype,
                tuple(antiquant_scale.shape),
                antiquant_group_size,
                antiquant_offset is not None,
            )
        )
        assert antiquant_scale.dtype == x.dtype
        shifts = 4 * torch.arange(8, dtype=torch.int32)
        w = ((weight.unsqueeze(-1) >> shifts) & 0xF).reshape(weight.shape[0], -1)
        w = torch.where(w > 7, w - 16, w).float()  # sign-extend the nibble
        if antiquant_offset is not None:
            w = w + antiquant_offset.float().repeat_interleave(antiquant_group_size, 0)
        w = w * antiquant_scale.float().repeat_interleave(antiquant_group_size, 0)
        return (x.float() @ w).to(x.dtype)

    npu = types.SimpleNamespace(get_device_name=lambda i=0: chip)
    return types.SimpleNamespace(
        npu=npu, npu_convert_weight_to_int4pack=convert, npu_weight_quant_batchmatmul=matmul
    ), calls


@pytest.mark.parametrize("symmetric", [False, True])
def test_npu_kernel_builds_the_documented_calls(symmetric):
    fake, calls = _fake_torch_npu()
    weight = random_weight(out_features=64, in_features=256, group_size=64, symmetric=symmetric)
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    kernel = NpuKernel(torch_npu=fake)
    kernel.check("layer", weight)
    out = kernel.matmul(x, kernel.prepare(weight, CPU)).float()
    assert calls[0] == ("convert", torch.int32, (256, 64))
    assert calls[1] == ("mm", torch.bfloat16, torch.bfloat16, (4, 64), 64, not symmetric)
    ref = reference_matmul(x, weight)
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max()


def test_npu_kernel_names_an_unsupported_chip():
    fake, _ = _fake_torch_npu(chip="Ascend310P3")
    with pytest.raises(Int4Error) as info:
        NpuKernel(torch_npu=fake).check("layer", random_weight())
    message = str(info.value)
    assert "Ascend310P3" in message and "Atlas A2/A3" in message and "\n" not in message


@pytest.mark.parametrize(
    ("weight", "match"),
    [
        (
            random_weight(out_features=128256 // 8 * 8 + 65536, in_features=64, group_size=32),
            "at most 65535 rows",
        ),
        (random_weight(in_features=256, group_size=256), r"multiple of 32 in \[32, K-1\]"),
        (random_weight(out_features=36, in_features=64, group_size=32), "N % 8 == 0"),
    ],
)
def test_npu_kernel_checks_the_documented_limits(weight, match):
    fake, calls = _fake_torch_npu()
    with pytest.raises(Int4Error, match=match):
        NpuKernel(torch_npu=fake).check("layer", weight)
    assert calls == []


def test_npu_lm_head_over_the_limit_says_how_to_fix_it():
    fake, _ = _fake_torch_npu()
    weight = Int4Weight.from_signed(
        q=torch.zeros(128256, 32, dtype=torch.int8),
        scale=torch.ones(128256, 1, dtype=torch.bfloat16),
        zero_point=None,
        group_size=32,
    )
    with pytest.raises(Int4Error, match="set int4.quantize_lm_head: false"):
        NpuKernel(torch_npu=fake).check("lm_head", weight)


def test_npu_kernel_without_torch_npu_fails_in_one_line():
    with pytest.raises(DeviceError) as info:
        NpuKernel().check("layer", random_weight())
    assert "torch_npu" in str(info.value) and "\n" not in str(info.value)


# --- fidelity ------------------------------------------------------------------------------


def test_compare_logits_on_known_values():
    ref = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]])
    same = compare_logits(ref, ref)
    assert same == {
        "positions": 2,
        "top1_agreement": 1.0,
        "mean_kl": 0.0,
        "max_abs_logit_error": 0.0,
    }
    cand = torch.tensor([[[0.0, 1.0], [0.0, 2.0]]])  # second position flips
    result = compare_logits(ref, cand)
    assert result["top1_agreement"] == 0.5
    assert result["max_abs_logit_error"] == 2.0
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    q = torch.softmax(torch.tensor([0.0, 2.0]), 0)
    kl = float((p * (p / q).log()).sum())
    assert result["mean_kl"] == pytest.approx(kl / 2, rel=1e-6)
