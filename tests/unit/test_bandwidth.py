"""The roofline of a run's slot (dualbench.analysis.bandwidth) on hand-computed values, and
calibration records to peaks (dualbench.analysis.calibration)."""

from __future__ import annotations

import math

import pytest

from dualbench.analysis.bandwidth import add_roofline, model_shape, roofline_columns
from dualbench.analysis.calibration import NO_PEAKS, Peaks, calibration_rows, peaks_by_slot
from dualbench.analysis.columns import CALIBRATION_COLUMNS, ROOFLINE_COLUMNS

# The tiny model in bf16, as its conversion.json records it.
TINY_BF16 = {
    "source": "synthetic:llama-3.2-tiny",
    "dtype": "bfloat16",
    "linear_weight_bytes": 7_602_176,
    "precision": "bf16",
}
SETTINGS = {"batch_size": 1, "prompt_tokens": 16, "new_tokens": 8}
PEAKS = Peaks(
    bw_bytes_s=1e10, contended_bw_bytes_s=6e9, contended_total_bytes_s=1.2e10, flop_s=1e11
)
# W = 7,602,176 linear + (32,833,536 lm_head + 2,304 norms) · 2 bytes = 73,273,856
WEIGHTS = 73_273_856
# 2 · 4 layers · 2 KV heads · 32 head_dim · 2 bytes
KV_PER_TOKEN = 1024


def columns(row, result=None, settings=SETTINGS, peaks=PEAKS):
    result = result or {"conversion": TINY_BF16, "dtype": "bfloat16"}
    return roofline_columns(result, settings, row, peaks)


def test_decode_bytes_bandwidth_and_mbu_by_hand():
    out = columns({"tpot_ms_mean": 10.0, "ttft_ms_mean": 20.0})
    # mean context over the 7 decode steps: 16 + 8/2 = 20 tokens
    step = WEIGHTS + 20 * KV_PER_TOKEN
    assert out["decode_bytes_per_step"] == step == 73_294_336
    assert out["decode_bw_bytes_s"] == pytest.approx(step / 0.010)
    assert out["mbu"] == pytest.approx(step / 0.010 / 1e10)
    # 2 · (3,801,088 + 32,833,536) + 4 · 4 · 8 · 32 · 20
    assert out["decode_flops_per_step"] == 73_351_168
    assert out["decode_intensity"] == pytest.approx(73_351_168 / step)
    assert out["decode_mfu"] == pytest.approx(73_351_168 / 0.010 / 1e11)
    assert out["decode_regime"] == "bandwidth-bound"  # MBU 0.73


def test_prefill_flops_mfu_and_the_regime_of_the_longer_phase():
    out = columns({"tpot_ms_mean": 10.0, "ttft_ms_mean": 20.0})
    # 2 · 3,801,088 · 16 + 2 · 32,833,536 + 2 · 4 · 8 · 32 · 16²
    assert out["prefill_flops"] == 187_826_176
    assert out["prefill_bytes"] == WEIGHTS + 16 * KV_PER_TOKEN
    assert out["mfu"] == pytest.approx(187_826_176 / 0.020 / 1e11)
    assert out["prefill_regime"] == "below-roofs"  # MBU 0.37, MFU 0.09
    assert out["regime"] == "bandwidth-bound"  # decode: 7 · 10 ms > 20 ms prefill
    assert out["regime_phase"] == "decode"
    slow_prefill = columns({"tpot_ms_mean": 10.0, "ttft_ms_mean": 200.0})
    assert slow_prefill["regime"] == slow_prefill["prefill_regime"] == "below-roofs"
    assert slow_prefill["regime_phase"] == "prefill"


def test_queueing_is_not_prefill_time():
    out = columns({"tpot_ms_mean": 10.0, "ttft_ms_mean": 25.0, "queue_ms_mean": 5.0})
    assert out["prefill_flop_s"] == pytest.approx(187_826_176 / 0.020)


def test_int4_reads_the_packed_blocks_and_a_16_bit_head():
    conversion = {**TINY_BF16, "precision": "int4", "linear_weight_bytes": 2_000_000}
    out = columns(
        {"tpot_ms_mean": 10.0, "ttft_ms_mean": 20.0},
        {"conversion": conversion, "dtype": "bfloat16"},
    )
    assert out["decode_bytes_per_step"] == 2_000_000 + (32_833_536 + 2_304) * 2 + 20 * 1024
    quantised_head = {**conversion, "quantize_lm_head": True}
    out = columns({"tpot_ms_mean": 10.0}, {"conversion": quantised_head, "dtype": "bfloat16"})
    per_weight = 2_000_000 / 3_801_088  # the blocks' stored bytes per weight
    expected = 2_000_000 + 32_833_536 * per_weight + 2_304 * 2 + 20 * 1024
    assert out["decode_bytes_per_step"] == pytest.approx(expected)


def test_fp32_counts_four_bytes_per_value():
    conversion = {**TINY_BF16, "dtype": "float32", "linear_weight_bytes": 4 * 3_801_088}
    out = columns({"tpot_ms_mean": 10.0}, {"conversion": conversion, "dtype": "float32"})
    assert out["decode_bytes_per_step"] == 2 * WEIGHTS + 20 * 2 * KV_PER_TOKEN


def test_missing_figures_give_nan_not_errors():
    uncalibrated = columns({"tpot_ms_mean": 10.0, "ttft_ms_mean": 20.0}, peaks=NO_PEAKS)
    assert uncalibrated["decode_bw_bytes_s"] > 0 and math.isnan(uncalibrated["mbu"])
    assert uncalibrated["regime"] == ""
    failed = columns({"tpot_ms_mean": math.nan, "ttft_ms_mean": math.nan})
    assert math.isnan(failed["decode_bw_bytes_s"]) and failed["regime"] == ""
    assert failed["regime_phase"] == ""
    unknown = roofline_columns({"conversion": {"source": "local:/x"}}, SETTINGS, {}, PEAKS)
    assert set(unknown) == set(ROOFLINE_COLUMNS) and math.isnan(unknown["decode_bytes_per_step"])
    assert unknown["peak_bw_bytes_s"] == 1e10
    one_token = columns({"ttft_ms_mean": 20.0}, settings={**SETTINGS, "new_tokens": 1})
    assert math.isnan(one_token["mbu"]) and one_token["prefill_flops"] == 187_826_176


def test_the_recorded_model_config_wins_over_the_preset():
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
              "num_attention_heads": 2, "vocab_size": 100, "tie_word_embeddings": True}  # fmt: skip
    assert model_shape({"model_config": config, "conversion": TINY_BF16}).hidden == 64
    assert model_shape({"conversion": TINY_BF16}).hidden == 256
    assert model_shape({}) is None


def test_calibration_records_to_rows_and_peaks():
    records = [
        {"slot": "B", "dtype": "bfloat16", "copy_alone_bytes_s": 3e10,
         "copy_contended_bytes_s": 1.7e10, "copy_contended_total_bytes_s": 3.4e10,
         "matmul_flop_s": 2e11, "extra": 1},
        {"slot": "A", "dtype": "bfloat16", "copy_alone_bytes_s": 2.9e10, "matmul_flop_s": None},
    ]  # fmt: skip
    rows = calibration_rows(records)
    assert [r["slot"] for r in rows] == ["A", "B"] and set(rows[0]) == set(CALIBRATION_COLUMNS)
    peaks = peaks_by_slot(records)
    assert peaks["B", "bfloat16"] == Peaks(3e10, 1.7e10, 3.4e10, 2e11)
    assert math.isnan(peaks["A", "bfloat16"].flop_s)


def test_add_roofline_uses_the_slot_and_the_precisions_dtype():
    record = {
        "spec": {"precision": "int4"},
        "slots": {
            "A": {"result": {"conversion": TINY_BF16, "dtype": "bfloat16"}, "settings": SETTINGS}
        },
    }
    rows = [{"slot": "A", "tpot_ms_mean": 10.0, "ttft_ms_mean": 20.0}]
    add_roofline(record, rows, {("A", "bfloat16"): PEAKS, ("B", "bfloat16"): NO_PEAKS})
    assert rows[0]["peak_bw_bytes_s"] == 1e10  # int4 computes in bf16
    assert rows[0]["regime"] == "bandwidth-bound"
