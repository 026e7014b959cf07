"""answers.csv on constructed runs with known answers: paired ratios per block, INT4 unpaired,
invalid runs leave their block out, one block gives no interval."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dualbench.analysis.answers import answers_table
from dualbench.analysis.columns import ANSWER_COLUMNS

ALONE = {"A": [100.0, 110.0, 90.0], "B": [50.0, 55.0, 45.0]}
SLOW = {"A": 1.25, "B": 1.6}  # throughput alone / co-located, the same in every block


def runs_frame(precision="bf16", scale=1.0, blocks=3, invalid=()) -> pd.DataFrame:
    rows = []
    for repeat in range(1, blocks + 1):
        for slot in ("A", "B"):
            alone = ALONE[slot][repeat - 1] * scale
            for layout, tput, ttft in [
                (f"alone_{slot}", alone, 10.0 * repeat),
                ("colocated", alone / SLOW[slot], 12.0 * repeat),
            ]:
                rows.append(
                    {
                        "scenario": "s",
                        "precision": precision,
                        "repeat": repeat,
                        "layout": layout,
                        "slot": slot,
                        "valid": (repeat, layout, slot) not in invalid,
                        "throughput_tok_s": tput,
                        "ttft_ms_p50": ttft,
                        "tpot_ms_p50": 5.0,
                        "e2e_ms_p50": 50.0,
                        "peak_mem_bytes": 1e9 / scale,
                    }
                )
    return pd.DataFrame(rows)


def answer(table, name, subject, precision="bf16") -> pd.Series:
    sel = table[(table.answer == name) & (table.subject == subject)]
    return sel[sel.precision == precision].iloc[0]


def test_constant_slowdowns_are_recovered_exactly():
    table = answers_table(runs_frame(), pd.DataFrame())
    assert list(table.columns) == ANSWER_COLUMNS
    for slot, value in SLOW.items():
        row = answer(table, "slowdown_throughput", f"colocated/{slot}")
        assert row.estimate == pytest.approx(value) and row.n == 3
        assert row.lo == pytest.approx(value) and row.hi == pytest.approx(value)
        assert row.verdict_kind == "effect" and row.verdict.startswith(f"{value:.2f}×")
    ttft = answer(table, "slowdown_ttft_p50", "colocated/A")
    assert ttft.estimate == pytest.approx(1.2)  # co-located 12 ms per 10 ms alone
    tpot = answer(table, "slowdown_tpot_p50", "colocated/A")
    assert tpot.verdict_kind == "equivalent"
    assert tpot.verdict == "no detectable interference (±3%)"


def test_efficiency_growth_and_v_total_from_the_same_blocks():
    table = answers_table(runs_frame(), pd.DataFrame())
    # per block: V2 = A/1.25 + B/1.6, V1 sum = A + B; A = 2B in every block
    eff = (2 / 1.25 + 1 / 1.6) / 3
    assert answer(table, "scaling_efficiency", "colocated").estimate == pytest.approx(eff)
    assert answer(table, "growth_per_model", "colocated").estimate == pytest.approx(2 * eff - 1)
    v2 = [a / 1.25 + b / 1.6 for a, b in zip(ALONE["A"], ALONE["B"], strict=True)]
    geometric = math.exp(sum(math.log(v) for v in v2) / 3)
    assert answer(table, "v_total", "colocated").estimate == pytest.approx(geometric)
    assert answer(table, "v1", "A").lo < answer(table, "v1", "A").estimate


def test_an_invalid_run_leaves_its_block_out_of_that_answer():
    table = answers_table(runs_frame(invalid={(2, "colocated", "B")}), pd.DataFrame())
    assert answer(table, "slowdown_throughput", "colocated/B").n == 2
    assert answer(table, "slowdown_throughput", "colocated/A").n == 3
    assert answer(table, "scaling_efficiency", "colocated").n == 2


def test_one_block_has_no_interval():
    table = answers_table(runs_frame(blocks=1), pd.DataFrame())
    row = answer(table, "slowdown_throughput", "colocated/A")
    assert row.n == 1 and math.isnan(row.lo) and math.isnan(row.hi)
    assert row.verdict == "one round: no interval"


def test_int4_ratios_are_unpaired_over_the_blocks_of_each_precision():
    runs = pd.concat([runs_frame("bf16"), runs_frame("int4", scale=1.5)], ignore_index=True)
    table = answers_table(runs, pd.DataFrame())
    row = answer(table, "int4_throughput_tok_s_ratio", "alone_A/A", precision="int4")
    assert row.estimate == pytest.approx(1.5) and row.n == 3
    assert row.method == "unpaired log-ratio Welch t" and row.unit == "ratio to bf16"
    pair = answer(table, "int4_peak_mem_bytes_ratio", "colocated/A+B", precision="int4")
    assert pair.estimate == pytest.approx(1 / 1.5)


def test_tokens_per_joule_over_the_blocks_where_energy_was_measured():
    energy = pd.DataFrame(
        {
            "scenario": "s",
            "precision": "bf16",
            "layout": ["colocated"] * 3,
            "tokens_per_j": [2.0, 2.0, 2.0],
        }
    )
    row = answer(answers_table(runs_frame(), energy), "tokens_per_j", "colocated")
    assert row.estimate == pytest.approx(2.0) and row.n == 3 and row.unit == "tok/J"


def test_each_runs_own_figures_are_answers_too():
    table = answers_table(runs_frame(), pd.DataFrame())
    row = answer(table, "throughput", "colocated/B")
    co_b = [b / 1.6 for b in ALONE["B"]]
    assert row.estimate == pytest.approx(math.exp(sum(math.log(v) for v in co_b) / 3))
    assert row.unit == "tok/s" and row.n == 3 and row.lo < row.estimate < row.hi
    assert answer(table, "ttft_p50", "alone_A/A").unit == "ms"
