"""Any number of models: the scaling curve, the interference matrix and the schedule
comparisons on hand-made runs.csv rows of three models (known throughputs, so every figure is
worked out by hand), model names taken from the data, and the runs.csv columns a lockstep run
adds (its turns) and every run adds (schedule, TPOT sd) from hand-built records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dualbench.analysis.answers import answers_table
from dualbench.analysis.columns import INTERFERENCE_COLUMNS, RUN_COLUMNS, SCALING_COLUMNS
from dualbench.analysis.int4 import int4_table
from dualbench.analysis.intervals import paired_ratio, value_interval
from dualbench.analysis.layouts import data_models, group_layouts, layout_key, sum_slot
from dualbench.analysis.runs import record_rows
from dualbench.analysis.scaling import interference_table, scaling_table

# Throughput alone in block 1; block r multiplies every figure of the block by SCALE[r - 1],
# so ratios within a block are the same in every block and their intervals have no width.
ALONE = {"A": 10.0, "B": 20.0, "C": 30.0}
SCALE = [1.0, 1.1, 0.9]
# Throughput of each model in each group layout, in block 1.
GROUPS = {
    "colocated:A+B": {"A": 8.0, "B": 16.0},
    "colocated": {"A": 5.0, "B": 10.0, "C": 15.0},
    "lockstep": {"A": 4.0, "B": 8.0, "C": 12.0},
    "single_thread_streams": {"A": 6.0, "B": 12.0, "C": 18.0},
}
# TPOT p50 and sd (ms) of every model, by schedule; alone: TPOT 10 ms.
TPOT = {"alone": 10.0, "colocated": 20.0, "lockstep": 25.0, "single_thread_streams": 20.0}
TPOT_SD = {"alone": 1.0, "colocated": 4.0, "lockstep": 1.0, "single_thread_streams": 4.0}
HANDOFF_US = [50.0, 60.0, 40.0]  # the lockstep run's mean hand-over, per block


def _row(repeat: int, layout: str, slot: str, tput: float, kind: str, valid: bool) -> dict:
    scale = SCALE[repeat - 1]
    return {
        "scenario": "s",
        "precision": "bf16",
        "repeat": repeat,
        "layout": layout,
        "slot": slot,
        "valid": valid,
        "throughput_tok_s": tput * scale,
        "ttft_ms_p50": (100.0 if kind == "alone" else 150.0) * scale,
        "tpot_ms_p50": TPOT[kind] * scale,
        "tpot_ms_sd": TPOT_SD[kind] * scale,
        "e2e_ms_p50": 1000.0 * scale,
        "peak_mem_bytes": 1e9,
        "handoff_us_mean": HANDOFF_US[repeat - 1] if kind == "lockstep" else math.nan,
    }


def runs_frame(blocks=3, invalid=(), missing=(), precision="bf16") -> pd.DataFrame:
    """Three models' runs.csv rows; ``invalid`` / ``missing``: (repeat, layout, slot) runs
    marked invalid / left out."""
    rows = []
    for repeat in range(1, blocks + 1):
        for slot, tput in ALONE.items():
            rows.append(_row(repeat, f"alone_{slot}", slot, tput, "alone", True))
        for layout, per_slot in GROUPS.items():
            kind = layout.split(":")[0]
            for slot, tput in per_slot.items():
                rows.append(_row(repeat, layout, slot, tput, kind, True))
    frame = pd.DataFrame(rows)
    frame["precision"] = precision
    key = list(zip(frame.repeat, frame.layout, frame.slot, strict=True))
    frame["valid"] = [k not in invalid for k in key]
    return frame[[k not in missing for k in key]].reset_index(drop=True)


def answer(table: pd.DataFrame, name: str, subject: str) -> pd.Series:
    sel = table[(table.answer == name) & (table.subject == subject)]
    assert len(sel) == 1, (name, subject, len(sel))
    return sel.iloc[0]


# --- the scaling curve and the interference matrix, per block ---------------------------------


def test_scaling_curve_of_three_models():
    table = scaling_table(runs_frame(blocks=1))
    assert list(table.columns) == SCALING_COLUMNS
    by = table.set_index("layout")
    # every group layout, subsets before the whole group, free before the schedules
    assert list(table.layout) == [
        "colocated:A+B",
        "colocated",
        "lockstep",
        "single_thread_streams",
    ]
    ab = by.loc["colocated:A+B"]
    assert (ab.models, ab.k, ab.schedule) == ("A+B", 2, "free")
    assert (ab.v1_sum, ab.v1_mean, ab.v_total) == pytest.approx((30.0, 15.0, 24.0))
    assert ab.growth_per_model == pytest.approx(0.6)  # (24 / 15 - 1) / 1
    assert ab.scaling_efficiency == pytest.approx(0.8)  # 24 / 30
    abc = by.loc["colocated"]
    assert (abc.models, abc.k) == ("A+B+C", 3)
    assert (abc.v1_sum, abc.v1_mean, abc.v_total) == pytest.approx((60.0, 20.0, 30.0))
    assert abc.growth_per_model == pytest.approx(0.25)  # (30 / 20 - 1) / (3 - 1)
    assert abc.scaling_efficiency == pytest.approx(0.5)
    assert by.loc["lockstep", "schedule"] == "lockstep"
    assert by.loc["lockstep", "v_total"] == pytest.approx(24.0)
    assert by.loc["single_thread_streams", "schedule"] == "single_thread"
    assert by.loc["single_thread_streams", "growth_per_model"] == pytest.approx(0.4)  # 36/20
    assert table["valid"].all() and (table["note"] == "").all()


def test_interference_matrix_of_three_models():
    table = interference_table(runs_frame(blocks=1))
    assert list(table.columns) == INTERFERENCE_COLUMNS
    assert len(table) == 2 + 3 + 3 + 3  # one row per member of each group layout
    ab = table[table.layout == "colocated:A+B"].set_index("victim")
    assert list(ab.neighbours) == ["B", "A"]
    assert list(ab.slowdown_throughput) == pytest.approx([1.25, 1.25])  # 10/8, 20/16
    abc = table[table.layout == "colocated"].set_index("victim")
    assert list(abc.neighbours) == ["B+C", "A+C", "A+B"]
    assert list(abc.slowdown_throughput) == pytest.approx([2.0, 2.0, 2.0])
    assert list(abc.slowdown_ttft_p50) == pytest.approx([1.5] * 3)  # 150 / 100
    assert list(abc.slowdown_tpot_p50) == pytest.approx([2.0] * 3)  # 20 / 10
    assert list(abc.slowdown_e2e_p50) == pytest.approx([1.0] * 3)
    lock = table[table.layout == "lockstep"]
    assert set(lock.schedule) == {"lockstep"}
    assert list(lock.slowdown_tpot_p50) == pytest.approx([2.5] * 3)
    assert table["valid"].all()


def test_a_missing_or_invalid_run_marks_exactly_what_needs_it():
    runs = runs_frame(blocks=1, invalid={(1, "alone_C", "C")}, missing={(1, "colocated", "B")})
    table = scaling_table(runs).set_index("layout")
    # alone_C invalid: only the layouts with C depend on it; colocated lacks B's run
    assert bool(table.loc["colocated:A+B", "valid"]) is True
    assert table.loc["colocated", "note"] == "missing runs: colocated"
    assert math.isnan(table.loc["colocated", "v_total"])
    assert table.loc["lockstep", "note"] == "depends on an invalid or failed run"
    assert table.loc["lockstep", "v_total"] == pytest.approx(24.0)  # the figures stay
    matrix = interference_table(runs).set_index(["layout", "victim"])
    assert not matrix.loc[("colocated", "B"), "valid"]
    assert math.isnan(matrix.loc[("colocated", "B"), "slowdown_throughput"])
    assert matrix.loc[("colocated", "A"), "valid"]
    assert not matrix.loc[("lockstep", "C"), "valid"]
    assert matrix.loc[("lockstep", "B"), "valid"]


# --- answers over blocks ----------------------------------------------------------------------


def test_answers_of_three_models_over_blocks():
    table = answers_table(runs_frame(), pd.DataFrame())
    for model, v1 in ALONE.items():
        row = answer(table, "v1", model)
        geometric = v1 * math.exp(np.mean(np.log(SCALE)))
        assert (row.estimate, row.n, row.unit) == (pytest.approx(geometric), 3, "tok/s")
    row = answer(table, "v_total", "colocated")
    assert row.estimate == pytest.approx(30.0 * math.exp(np.mean(np.log(SCALE))))
    growth = answer(table, "growth_per_model", "colocated")
    assert (growth.estimate, growth.lo, growth.hi) == pytest.approx((0.25, 0.25, 0.25))
    assert growth.unit == "fraction" and growth.method == "paired log-ratio t"
    assert answer(table, "growth_per_model", "colocated:A+B").estimate == pytest.approx(0.6)
    eff = answer(table, "scaling_efficiency", "colocated")
    assert eff.estimate == pytest.approx(0.5) and eff.verdict_kind == "effect"
    slow = answer(table, "slowdown_throughput", "colocated/C")
    assert slow.estimate == pytest.approx(2.0) and slow.n == 3
    assert answer(table, "slowdown_ttft_p50", "colocated:A+B/A").estimate == pytest.approx(1.5)
    assert answer(table, "slowdown_e2e_p50", "lockstep/B").verdict_kind == "equivalent"
    assert answer(table, "tpot_sd", "lockstep/A").estimate == pytest.approx(
        math.exp(np.mean(np.log(SCALE)))
    )
    # No model names anywhere but the data's: slowdown subjects are layout/victim.
    subjects = set(table.loc[table.answer == "slowdown_throughput", "subject"])
    assert subjects == {f"{lay}/{m}" for lay, per in GROUPS.items() for m in per}


def test_an_invalid_run_drops_exactly_the_answers_that_need_it():
    table = answers_table(runs_frame(invalid={(2, "alone_C", "C")}), pd.DataFrame())
    assert answer(table, "v1", "C").n == 2
    assert answer(table, "v1", "A").n == 3
    # everything built on C alone loses block 2; what does not involve C keeps it
    assert answer(table, "growth_per_model", "colocated").n == 2
    assert answer(table, "scaling_efficiency", "lockstep").n == 2
    assert answer(table, "slowdown_throughput", "colocated/C").n == 2
    assert answer(table, "slowdown_throughput", "colocated/A").n == 3
    assert answer(table, "scaling_efficiency", "colocated:A+B").n == 3
    assert answer(table, "v_total", "colocated").n == 3
    assert answer(table, "schedule_throughput_ratio", "lockstep").n == 3
    table = answers_table(runs_frame(invalid={(3, "colocated", "B")}), pd.DataFrame())
    assert answer(table, "v_total", "colocated").n == 2
    assert answer(table, "schedule_throughput_ratio", "lockstep").n == 2
    assert answer(table, "schedule_tpot_p50_ratio", "lockstep/B").n == 2
    assert answer(table, "schedule_tpot_p50_ratio", "lockstep/A").n == 3
    assert answer(table, "v_total", "lockstep").n == 3


def test_schedule_comparisons_against_free_colocation_of_the_same_models():
    energy = pd.DataFrame(
        {
            "scenario": "s",
            "precision": "bf16",
            "repeat": [r for r in (1, 2, 3) for _ in range(3)],
            "layout": ["colocated", "lockstep", "single_thread_streams"] * 3,
            "tokens_per_j": [2.0, 1.5, 2.02] * 3,
        }
    )
    table = answers_table(runs_frame(), energy)
    lock = answer(table, "schedule_throughput_ratio", "lockstep")
    assert (lock.estimate, lock.lo, lock.hi) == pytest.approx((0.8, 0.8, 0.8))  # 24 / 30
    assert lock.verdict_kind == "effect" and lock.verdict.startswith("0.80×")
    single = answer(table, "schedule_throughput_ratio", "single_thread_streams")
    assert single.estimate == pytest.approx(1.2)  # 36 / 30
    tpot = answer(table, "schedule_tpot_p50_ratio", "lockstep/C")
    assert tpot.estimate == pytest.approx(25.0 / 20.0)
    sd = answer(table, "schedule_tpot_sd_ratio", "lockstep/A")
    assert sd.estimate == pytest.approx(0.25)  # 1 ms against 4 ms
    same = answer(table, "schedule_tpot_sd_ratio", "single_thread_streams/B")
    assert same.verdict_kind == "equivalent"
    assert same.verdict == "no detectable difference from free co-location (±3%)"
    joules = answer(table, "schedule_tokens_per_j_ratio", "lockstep")
    assert (joules.estimate, joules.n) == (pytest.approx(0.75), 3)
    assert answer(table, "schedule_tokens_per_j_ratio", "single_thread_streams").verdict_kind == (
        "equivalent"
    )
    handoff = answer(table, "handoff_us", "lockstep")
    expected = value_interval(HANDOFF_US)
    assert (handoff.estimate, handoff.lo, handoff.hi) == pytest.approx(
        (expected.estimate, expected.lo, expected.hi)
    )
    assert handoff.unit == "us" and handoff.n == 3
    # the hand-over is lockstep's alone; a free layout is compared with nothing
    assert table[(table.answer == "handoff_us")].subject.tolist() == ["lockstep"]
    scheduled = table[table.answer.str.startswith("schedule_")].subject.str.split("/").str[0]
    assert set(scheduled) == {"lockstep", "single_thread_streams"}


def test_a_schedule_without_its_free_colocation_in_the_data_is_not_compared():
    runs = runs_frame()
    table = answers_table(runs[runs.layout != "colocated"], pd.DataFrame())
    assert not table.answer.str.startswith("schedule_").any()
    assert answer(table, "v_total", "lockstep").n == 3  # its own figures stay


def test_int4_sums_each_group_layout():
    runs = pd.concat([runs_frame(), runs_frame(precision="int4")], ignore_index=True)
    runs.loc[runs.precision == "int4", "throughput_tok_s"] *= 2.0
    table = answers_table(runs, pd.DataFrame())
    sums = table[table.subject.str.endswith("/A+B+C") | table.subject.str.endswith("/A+B")]
    assert set(sums.subject) == {
        "colocated:A+B/A+B",
        "colocated/A+B+C",
        "lockstep/A+B+C",
        "single_thread_streams/A+B+C",
    }
    row = sums[(sums.answer == "int4_throughput_tok_s_ratio") & (sums.subject == "lockstep/A+B+C")]
    assert row.estimate.iloc[0] == pytest.approx(2.0)
    rows = int4_table(runs)
    summed = rows[rows.slot.str.contains("+", regex=False) & (rows.repeat == 1)]
    summed = summed.set_index("layout")
    assert len(summed) == len(GROUPS)
    assert summed.loc["colocated", "slot"] == "A+B+C"
    assert summed.loc["colocated", "throughput_tok_s_baseline"] == pytest.approx(30.0)
    assert summed.loc["colocated", "peak_mem_bytes_baseline"] == pytest.approx(3e9)


# --- names from the data ------------------------------------------------------------------------


def test_model_names_come_from_the_data():
    renamed = runs_frame().replace({"slot": {"A": "Tiny", "B": "Mid", "C": "Big"}})
    renamed["layout"] = renamed["layout"].replace(
        {
            "alone_A": "alone_Tiny",
            "alone_B": "alone_Mid",
            "alone_C": "alone_Big",
            "colocated:A+B": "colocated:Mid+Tiny",
        }
    )
    assert data_models(renamed) == ("Big", "Mid", "Tiny")
    assert group_layouts(renamed)[0] == "colocated:Mid+Tiny"
    table = answers_table(renamed, pd.DataFrame())
    assert answer(table, "v1", "Big").estimate == pytest.approx(
        30.0 * math.exp(np.mean(np.log(SCALE)))
    )
    assert answer(table, "slowdown_throughput", "colocated/Tiny").estimate == pytest.approx(2.0)
    assert answer(table, "growth_per_model", "colocated:Mid+Tiny").estimate == pytest.approx(0.6)
    assert set(scaling_table(renamed).models) == {"Mid+Tiny", "Big+Mid+Tiny"}
    assert sum_slot(("Tiny", "Mid")) == "Mid+Tiny"


def test_layouts_sort_alone_first_then_groups_by_kind_and_size():
    layouts = ["lockstep", "colocated", "alone_B", "colocated:A+B", "alone_A", "lockstep:A+C"]
    assert sorted(layouts, key=layout_key) == [
        "alone_A",
        "alone_B",
        "colocated:A+B",
        "colocated",
        "lockstep:A+C",
        "lockstep",
    ]


# --- two models: the new answers are the old ones under new names ----------------------------


def test_two_models_give_the_two_model_answers():
    """For A and B co-located, v_total / growth_per_model / scaling_efficiency of colocated and
    the slowdowns of colocated/<m> are what V2, growth, efficiency and the slowdowns were:
    computed here the old way, from the per-block series."""
    runs = runs_frame()
    runs = runs[runs.slot.isin(["A", "B"]) & runs.layout.isin(["alone_A", "alone_B"])]
    co = runs_frame()
    co = co[co.layout == "colocated:A+B"].assign(layout="colocated")
    runs = pd.concat([runs, co], ignore_index=True)
    # unequal spread across blocks, so the intervals have width
    runs.loc[(runs.layout == "colocated") & (runs.repeat == 2), "throughput_tok_s"] *= 1.07
    table = answers_table(runs, pd.DataFrame())

    def series(layout, slot):
        sel = runs[(runs.layout == layout) & (runs.slot == slot)].sort_values("repeat")
        return sel.throughput_tok_s.to_numpy()

    v1 = series("alone_A", "A") + series("alone_B", "B")
    v2 = series("colocated", "A") + series("colocated", "B")
    old_v2, old_eff = value_interval(v2), paired_ratio(v2, v1)
    old_growth = paired_ratio(v2, v1 / 2)
    new = answer(table, "v_total", "colocated")
    assert (new.estimate, new.lo, new.hi) == (old_v2.estimate, old_v2.lo, old_v2.hi)
    new = answer(table, "scaling_efficiency", "colocated")
    assert (new.estimate, new.lo, new.hi) == (old_eff.estimate, old_eff.lo, old_eff.hi)
    new = answer(table, "growth_per_model", "colocated")
    assert (new.estimate, new.lo, new.hi) == (
        old_growth.estimate - 1,
        old_growth.lo - 1,
        old_growth.hi - 1,
    )
    old_slow = paired_ratio(series("alone_B", "B"), series("colocated", "B"))
    new = answer(table, "slowdown_throughput", "colocated/B")
    assert (new.estimate, new.lo, new.hi) == (old_slow.estimate, old_slow.lo, old_slow.hi)
    scaling = scaling_table(runs)
    assert list(scaling.models) == ["A+B"] * 3
    assert list(scaling.v_total) == list(v2)
    assert list(scaling.growth_per_model) == list((v2 - v1 / 2) / (v1 / 2))


# --- runs.csv: schedule, TPOT sd and a lockstep run's turns -----------------------------------

MS = 1_000_000
SETTINGS = {
    "prompt_tokens": 4,
    "new_tokens": 3,
    "batch_size": 2,
    "warmup_requests": 0,
    "min_requests": 2,
}


def _record(layout: str, turns: dict[str, list] | None = None) -> dict:
    """Slots A and B, released at 0 ms, 4 calls of 500 ms each: tokens at +100, +200 and
    +500 ms (gaps 100 and 300 ms), the last at 2000 ms; ``turns``: each slot's turns_ns."""
    slots = {}
    for name in ("A", "B"):
        calls = [
            {
                "submit_ns": 500 * i * MS,
                "token_ns": [(500 * i + t) * MS for t in (100, 200, 500)],
                "delivered": 3,
            }
            for i in range(4)
        ]
        if turns:
            calls[0]["turns_ns"] = turns[name]
        result = {
            "release_ns": 0,
            "calls": calls,
            "load_s": 1.0,
            "warmup_s": 0.1,
            "memory": {"peak_mem_bytes": 1, "mem_reserved_peak_bytes": None, "mem_source": "x"},
        }
        slots[name] = {
            "slot": {"name": name},
            "device": f"cpu:{name}",
            "model": name,
            "settings": {**SETTINGS, "model": name, "device": f"cpu:{name}"},
            "result": result,
        }
    spec = {"scenario": "s", "precision": "bf16", "layout": layout, "duration_s": 2}
    return {"spec": spec, "status": "ok", "error": "", "backend": {"kind": "cpu"}, "slots": slots}


def _ring(b_start_ms: int) -> dict[str, list]:
    """A's turns at 100k .. 100k + 40 ms, B's at 100k + b_start .. 100k + 90 ms, k < 20."""
    return {
        "A": [[100 * k * MS, (100 * k + 40) * MS] for k in range(20)],
        "B": [[(100 * k + b_start_ms) * MS, (100 * k + 90) * MS] for k in range(20)],
    }


def test_every_run_has_a_schedule_and_a_tpot_sd():
    rows = record_rows(_record("colocated")).runs
    assert set(rows[0]) == set(RUN_COLUMNS)
    for row in rows:
        assert row["schedule"] == "free"
        # gaps 100 and 300 ms in every request (each twice, batch 2): sd 100 ms
        assert row["tpot_ms_sd"] == pytest.approx(100.0)
        assert row["tpot_ms_p50"] == pytest.approx(200.0)
        assert (row["turns"], row["turn_overlaps"]) == (0, 0)
        assert math.isnan(row["handoff_us_mean"])
    single = record_rows(_record("single_thread_streams")).runs
    assert {r["schedule"] for r in single} == {"single_thread"}


def test_a_lockstep_runs_turns_and_hand_overs():
    rows = record_rows(_record("lockstep", _ring(b_start_ms=50))).runs
    for row in rows:
        assert row["valid"] is True, row["invalid_reasons"]
        assert row["schedule"] == "lockstep"
        assert (row["turns"], row["turn_overlaps"]) == (40, 0)
        # every hand-over (A's release to B's turn, and B's to A's next) takes 10 ms
        assert row["handoff_us_p50"] == pytest.approx(10_000.0)
        assert row["handoff_us_mean"] == pytest.approx(10_000.0)


def test_a_lockstep_run_whose_turns_overlap_is_invalid():
    rows = record_rows(_record("lockstep", _ring(b_start_ms=30))).runs
    for row in rows:
        assert row["turn_overlaps"] == 20
        assert row["valid"] is False
        assert row["invalid_reasons"] == (
            "lockstep: 20 pair(s) of turns of different slots overlapped in the window; "
            "the turns were not strict"
        )
