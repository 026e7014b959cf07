"""Roofline arithmetic (dualbench.analysis.roofline) against numbers computed by hand."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from dualbench.analysis import roofline as rl
from dualbench.model_shapes import SYNTHETIC_PRESETS

BF16 = 2
TINY = rl.Shape.from_config(SYNTHETIC_PRESETS["llama-3.2-tiny"])
ONE_B = rl.Shape.from_config(SYNTHETIC_PRESETS["llama-3.2-1b"])
# 1 layer, d 8, f 16, 2 query heads, 1 KV head, head_dim 4, vocabulary 10: small enough to
# count every FLOP by hand.
HAND = rl.Shape(
    hidden=8, intermediate=16, layers=1, heads=2, kv_heads=1, head_dim=4, vocab=10, tied=True
)


def projections(s: rl.Shape) -> list[tuple[int, int]]:
    """(in, out) of one layer's linear layers, written out independently of the module."""
    q_out, kv_out = s.heads * s.head_dim, s.kv_heads * s.head_dim
    return [
        (s.hidden, q_out),  # q_proj
        (s.hidden, kv_out),  # k_proj
        (s.hidden, kv_out),  # v_proj
        (q_out, s.hidden),  # o_proj
        (s.hidden, s.intermediate),  # gate_proj
        (s.hidden, s.intermediate),  # up_proj
        (s.intermediate, s.hidden),  # down_proj
    ]


def test_shapes_from_the_presets():
    tiny = dict(hidden=256, intermediate=1024, layers=4, heads=8, kv_heads=2, head_dim=32)
    one_b = dict(hidden=2048, intermediate=8192, layers=16, heads=32, kv_heads=8, head_dim=64)
    assert rl.Shape(**tiny, vocab=128256, tied=True) == TINY
    assert rl.Shape(**one_b, vocab=128256, tied=True) == ONE_B


def test_from_config_defaults():
    config = dict(SYNTHETIC_PRESETS["llama-3.2-1b"])
    del config["head_dim"], config["num_key_value_heads"], config["tie_word_embeddings"]
    shape = rl.Shape.from_config(config)
    assert shape.head_dim == 2048 // 32 == 64
    assert shape.kv_heads == 32  # no GQA when num_key_value_heads is absent
    assert shape.tied is False
    config["head_dim"] = None  # some config.json files write it as null
    assert rl.Shape.from_config(config).head_dim == 64


def test_kv_bytes_per_token():
    # tiny: 2 (K, V) · 4 layers · 2 KV heads · 32 head_dim · 2 bytes
    assert rl.kv_bytes_per_token(TINY, BF16) == 2 * 4 * 2 * 32 * 2 == 1024
    # 1B: 2 · 16 layers · 8 KV heads · 64 head_dim · 2 bytes
    assert rl.kv_bytes_per_token(ONE_B, BF16) == 2 * 16 * 8 * 64 * 2 == 32768
    assert rl.kv_bytes_per_token(ONE_B, 1) == 16384  # an 8-bit cache halves it


@pytest.mark.parametrize(
    ("shape", "linear", "lm_head", "norms"),
    [
        # tiny: per layer 163840 attention + 786432 MLP; lm_head 128256·256; norms 9·256
        (TINY, 4 * 950_272, 32_833_536, 2_304),
        # 1B: per layer 10485760 attention + 50331648 MLP; lm_head 128256·2048; norms 33·2048
        (ONE_B, 16 * 60_817_408, 262_668_288, 67_584),
    ],
)
def test_parameter_counts(shape, linear, lm_head, norms):
    counted = shape.layers * sum(i * o for i, o in projections(shape))
    assert shape.block_linear_params == counted == linear
    assert shape.lm_head_params == shape.vocab * shape.hidden == lm_head
    assert shape.norm_params == (2 * shape.layers + 1) * shape.hidden == norms
    # Tied: the lm_head is the embedding table, so every distinct parameter is read per step.
    assert shape.total_params == linear + lm_head + norms


def test_public_totals():
    # meta-llama/Llama-3.2-1B and -3B: 1,235,814,400 and 3,212,749,824 parameters.
    assert ONE_B.total_params == 1_235_814_400
    assert rl.Shape.from_config(SYNTHETIC_PRESETS["llama-3.2-3b"]).total_params == 3_212_749_824


def test_decode_weight_bytes_bf16():
    assert rl.decode_weight_bytes(TINY, BF16) == 2 * 36_636_928 == 73_273_856
    one_b = rl.decode_weight_bytes(ONE_B, BF16)
    assert one_b == 2 * 1_235_814_400 == 2_471_628_800
    assert one_b / 1e9 == pytest.approx(2.47, abs=0.005)


def test_untied_embedding_is_not_read_whole():
    untied = rl.Shape(**{**ONE_B.__dict__, "tied": False})
    # The decode read is the same: the lm_head is read, the embedding table is only indexed.
    assert rl.decode_weight_bytes(untied, BF16) == rl.decode_weight_bytes(ONE_B, BF16)
    assert untied.total_params == ONE_B.total_params + 128256 * 2048


def test_linear_weight_bytes_replace_the_blocks_only():
    measured = 1_000_000  # e.g. INT4 packed values + scales + zero points of the blocks
    expected = measured + (32_833_536 + 2_304) * BF16  # lm_head and norms stay 16-bit
    assert rl.decode_weight_bytes(TINY, BF16, linear_weight_bytes=measured) == expected
    assert rl.decode_weight_bytes(TINY, BF16, 0) == rl.decode_weight_bytes(TINY, BF16) - (
        3_801_088 * BF16
    )


def test_decode_step_bytes():
    # 1B, batch 4, 1000 tokens of context each: weights + 4 · 1000 · 32768
    weights = 2_471_628_800
    assert rl.decode_step_bytes(ONE_B, weights, 4, 1000, BF16) == weights + 131_072_000
    assert rl.decode_step_bytes(ONE_B, weights, 1, 0, BF16) == weights


@pytest.mark.parametrize(
    ("batch", "prompt", "new"), [(1, 0, 2), (1, 128, 64), (8, 1000, 257), (3, 7, 5)]
)
def test_mean_decode_bytes_closed_form_equals_the_loop(batch, prompt, new):
    weights = rl.decode_weight_bytes(ONE_B, BF16)
    kv = rl.kv_bytes_per_token(ONE_B, BF16)
    steps = [weights + batch * (prompt + i) * kv for i in range(1, new)]
    expected = Fraction(sum(steps), len(steps))
    got = rl.mean_decode_bytes(ONE_B, weights, batch, prompt, new, BF16)
    assert got == pytest.approx(float(expected), rel=1e-15)
    mean_flops = Fraction(
        sum(rl.decode_flops_per_step(ONE_B, batch, prompt + i) for i in range(1, new)), new - 1
    )
    assert rl.mean_decode_flops(ONE_B, batch, prompt, new) == pytest.approx(float(mean_flops))


def test_mean_decode_needs_a_decode_step():
    with pytest.raises(ValueError):
        rl.mean_decode_bytes(ONE_B, 1.0, 1, 10, 1, BF16)
    with pytest.raises(ValueError):
        rl.mean_decode_flops(ONE_B, 1, 10, 1)


def test_prefill_flops_by_hand():
    # q 8·8 + k 8·4 + v 8·4 + o 8·8 = 192; MLP 3 · 8 · 16 = 384; block linears 576
    assert HAND.block_linear_params == 64 + 32 + 32 + 64 + 384 == 576
    batch, prompt = 2, 3
    linears = 2 * 576 * (batch * prompt)  # 6912
    lm_head = 2 * (10 * 8) * batch  # last position only: 320
    # per sequence 2 (QK, AV) · 2 FLOPs · 1 layer · 2 heads · 4 head_dim · 3²/2 = 144
    attention = batch * 2 * 2 * 1 * 2 * 4 * prompt**2 // 2  # 288
    assert rl.prefill_flops(HAND, batch, prompt) == linears + lm_head + attention == 7520
    all_logits = linears + 2 * 80 * batch * prompt + attention
    assert rl.prefill_flops(HAND, batch, prompt, all_logits=True) == all_logits == 8160


def test_decode_flops_by_hand():
    # batch 2, context 5: 2 · (576 + 80) · 2 + 2 · 2 · 2 · 1 · 2 · 4 · 5
    assert rl.decode_flops_per_step(HAND, 2, 5) == 2624 + 320 == 2944


def test_bandwidth_utilisation_and_intensity():
    achieved = rl.achieved_bandwidth(2_471_628_800, 0.005)
    assert achieved == pytest.approx(494_325_760_000)
    assert rl.mbu(achieved, 3.35e12) == pytest.approx(494_325_760_000 / 3.35e12)
    assert rl.mfu(1e14, 4e14) == 0.25
    assert rl.arithmetic_intensity(2944, 736) == 4.0
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            rl.achieved_bandwidth(1.0, bad)
    with pytest.raises(ValueError):
        rl.mbu(1.0, 0)
    with pytest.raises(ValueError):
        rl.mfu(1.0, 0)
    with pytest.raises(ValueError):
        rl.arithmetic_intensity(1.0, 0)


@pytest.mark.parametrize(
    ("mbu", "mfu", "label"),
    [
        (0.5, 0.0, "bandwidth-bound"),  # at the threshold
        (0.5, 0.5, "bandwidth-bound"),  # a tie goes to bandwidth
        (0.7, 0.6, "bandwidth-bound"),
        (0.49, 0.5, "compute-bound"),
        (0.5, 0.51, "compute-bound"),
        (0.0, 0.9, "compute-bound"),
        # Below both roofs: where the run is, not why (no overhead is measured).
        (0.49, 0.49, "below-roofs"),
        (0.0, 0.0, "below-roofs"),
        (0.4999999, 0.1, "below-roofs"),
        (0.02, 0.26, "below-roofs"),  # a long prefill at 26% MFU, 2% MBU
    ],
)
def test_regime_boundaries(mbu, mfu, label):
    assert rl.BOUND_FRACTION == 0.5
    assert rl.regime(mbu, mfu) == label
    assert label in rl.REGIMES


def test_regime_threshold_and_nan():
    assert rl.regime(0.3, 0.1, bound_fraction=0.3) == "bandwidth-bound"
    assert rl.regime(0.1, 0.3, bound_fraction=0.3) == "compute-bound"
    assert rl.regime(0.3, 0.1, bound_fraction=0.31) == "below-roofs"
    assert "overhead-bound" not in rl.REGIMES  # never given: nothing measures the overhead
    with pytest.raises(ValueError):
        rl.regime(math.nan, 0.1)


def test_torch_parameter_counts_match():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(**SYNTHETIC_PRESETS["llama-3.2-tiny"])
    model = transformers.LlamaForCausalLM(config)
    numel = {name: p.numel() for name, p in model.named_parameters()}
    attention = sum(n for k, n in numel.items() if ".self_attn." in k)
    mlp = sum(n for k, n in numel.items() if ".mlp." in k)
    norms = sum(n for k, n in numel.items() if k.endswith("norm.weight"))
    assert attention == TINY.layers * TINY.attention_params
    assert mlp == TINY.layers * TINY.mlp_params
    assert attention + mlp == TINY.block_linear_params
    assert norms == TINY.norm_params
    assert model.lm_head.weight.numel() == TINY.lm_head_params
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied: one tensor
    assert sum(numel.values()) == TINY.total_params == 36_636_928


def stored_bytes(model_dir) -> int:
    from dualbench.models.safetensors_file import SafetensorsFile

    total = 0
    for path in model_dir.glob("*.safetensors"):
        for info in SafetensorsFile(path).entries.values():
            begin, end = info["data_offsets"]
            total += end - begin
    return total


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_int4"])
def test_checkpoint_bytes_match(fixture, request):
    """A tied checkpoint's tensors are exactly what a decode step reads: bf16 from the shape,
    INT4 with the measured blocks' linear bytes (lm_head and norms kept bf16)."""
    from dualbench.models.convert import linear_weight_bytes

    model_dir = request.getfixturevalue(fixture)
    shape = rl.Shape.from_config(json.loads((model_dir / "config.json").read_text()))
    assert shape == TINY
    measured = linear_weight_bytes(model_dir)
    assert rl.decode_weight_bytes(shape, BF16, measured) == stored_bytes(model_dir)
    if fixture == "tiny_model":
        assert measured == TINY.block_linear_params * BF16
