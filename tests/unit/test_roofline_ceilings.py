"""Which ceiling a run's slot is held against and which regime follows
(dualbench.analysis.bandwidth, .roofline), on hand-made records: a single-thread run against
the contended ceiling of its process's cores, a long prefill below both roofs, and the
bandwidth- and compute-bound labels as before."""

from __future__ import annotations

import math

import pytest

from dualbench.analysis import roofline as rl
from dualbench.analysis.bandwidth import add_roofline, hosted_slots, process_peaks
from dualbench.analysis.calibration import NO_PEAKS, Peaks
from dualbench.model_shapes import SYNTHETIC_PRESETS

TINY_BF16 = {
    "source": "synthetic:llama-3.2-tiny",
    "dtype": "bfloat16",
    "linear_weight_bytes": 7_602_176,
    "precision": "bf16",
}
RESULT = {"conversion": TINY_BF16, "dtype": "bfloat16"}
SETTINGS = {"batch_size": 1, "prompt_tokens": 16, "new_tokens": 8}
GB = 1e9
# Per slot: 14 GB/s alone, 9 GB/s while both copy (18 GB/s together), 100 GFLOP/s.
A = Peaks(bw_bytes_s=14 * GB, contended_bw_bytes_s=9 * GB, contended_total_bytes_s=18 * GB,
          flop_s=1e11)  # fmt: skip
B = Peaks(bw_bytes_s=15 * GB, contended_bw_bytes_s=9 * GB, contended_total_bytes_s=18 * GB,
          flop_s=1.2e11)  # fmt: skip
PEAKS = {("A", "bfloat16"): A, ("B", "bfloat16"): B}
# A decode step of the tiny model at 16 + 8/2 = 20 tokens of context reads 73,294,336 bytes.
STEP_BYTES = 73_294_336


def record(schedule: str, process_slots: list[str] | None = None) -> dict:
    def slot() -> dict:
        result = dict(RESULT)
        if process_slots is not None:
            result["single_thread"] = {"process_slots": process_slots, "streams": False}
        return {"result": result, "settings": SETTINGS}

    return {
        "spec": {"precision": "bf16", "schedule": schedule},
        "slots": {"A": slot(), "B": slot()},
    }


def rows(tpot_ms: float = 7.0) -> list[dict]:
    return [{"slot": s, "tpot_ms_mean": tpot_ms, "ttft_ms_mean": 20.0} for s in ("A", "B")]


def test_a_single_thread_run_is_held_against_its_cores_contended_ceiling():
    # 73.3 MB a step in 7 ms: 10.5 GB/s, 0.75 of one slot's 14 GB/s alone, but the process ran
    # on both slots' cores: against their contended 9 + 9 = 18 GB/s it is 0.58.
    single = rows()
    add_roofline(record("single_thread", ["A", "B"]), single, PEAKS)
    for row in single:
        assert row["peak_bw_bytes_s"] == 18 * GB == A.contended_total_bytes_s
        assert row["peak_flop_s"] == pytest.approx(2.2e11)
        assert row["mbu"] == pytest.approx(STEP_BYTES / 0.007 / (18 * GB))
        assert row["mfu"] == pytest.approx(row["prefill_flop_s"] / 2.2e11)
    free = rows()
    add_roofline(record("free"), free, PEAKS)
    assert [r["peak_bw_bytes_s"] for r in free] == [14 * GB, 15 * GB]  # each slot's own
    assert free[0]["mbu"] == pytest.approx(STEP_BYTES / 0.007 / (14 * GB))
    assert free[0]["mbu"] > single[0]["mbu"]


def test_the_single_thread_process_is_read_from_the_result_then_the_schedule():
    assert hosted_slots(record("single_thread", ["A", "B"]), "A") == ["A", "B"]
    assert hosted_slots(record("single_thread"), "B") == ["A", "B"]  # no process_slots
    assert hosted_slots(record("free"), "B") == ["B"]
    assert hosted_slots(record("lockstep"), "A") == ["A"]


def test_the_union_ceiling_is_unknown_where_a_slot_is_uncalibrated():
    union = process_peaks({**PEAKS, ("B", "bfloat16"): NO_PEAKS}, ["A", "B"], "bf16")
    assert math.isnan(union.bw_bytes_s) and math.isnan(union.flop_s)
    out = rows()
    add_roofline(record("single_thread", ["A", "B"]), out, {("A", "bfloat16"): A})
    assert math.isnan(out[0]["mbu"]) and out[0]["regime"] == ""


def test_a_long_prefill_at_26_percent_mfu_and_2_percent_mbu_is_below_both_roofs():
    settings = {"batch_size": 1, "prompt_tokens": 4096, "new_tokens": 2}
    shape = rl.Shape.from_config(SYNTHETIC_PRESETS["llama-3.2-tiny"])
    flops = rl.prefill_flops(shape, 1, 4096)
    moved = 73_273_856 + 4096 * rl.kv_bytes_per_token(shape, 2)
    # A 1 s prefill, against peaks that put it at 26% of compute and 2% of bandwidth.
    peaks = Peaks(bw_bytes_s=moved / 0.02, flop_s=flops / 0.26)
    row = {"slot": "A", "tpot_ms_mean": 50.0, "ttft_ms_mean": 1000.0}
    one = {"spec": {"precision": "bf16", "schedule": "free"},
           "slots": {"A": {"result": RESULT, "settings": settings}}}  # fmt: skip
    add_roofline(one, [row], {("A", "bfloat16"): peaks})
    assert (row["mfu"], row["prefill_mbu"]) == (pytest.approx(0.26), pytest.approx(0.02))
    assert row["regime_phase"] == "prefill"  # 1 s of prefill against one 50 ms decode step
    assert row["prefill_regime"] == row["regime"] == "below-roofs"
    assert row["decode_regime"] == "below-roofs"  # decode at MBU 0.4
    assert row["mbu"] < rl.BOUND_FRACTION


def test_bandwidth_and_compute_bound_are_labelled_as_before():
    bound = rows(tpot_ms=7.0)
    add_roofline(record("free"), bound, PEAKS)  # MBU 0.75 of 14 GB/s alone
    assert bound[0]["decode_regime"] == bound[0]["regime"] == "bandwidth-bound"
    assert rl.regime(0.2, 0.6) == "compute-bound" and rl.regime(0.6, 0.6) == "bandwidth-bound"
