"""Repeat blocks: their seeded order, and the drift guard over their alone runs."""

from __future__ import annotations

import collections
import math

import pandas as pd
import pytest

from dualbench.analysis.blocks import blocks_table
from dualbench.config.round_order import trial_order

LAYOUTS = ["alone_A", "alone_B", "colocated"]


def test_the_first_six_blocks_take_every_order_once():
    orders = [tuple(trial_order(LAYOUTS, 0, "short", "bf16", r)) for r in range(1, 7)]
    assert len(set(orders)) == 6
    # Over 3! blocks every layout takes every position equally often.
    for position in range(3):
        counts = collections.Counter(order[position] for order in orders)
        assert set(counts.values()) == {2}


def test_the_order_depends_on_seed_scenario_precision_and_block_only():
    order = trial_order(LAYOUTS, 0, "short", "bf16", 2)
    assert order == trial_order(LAYOUTS, 0, "short", "bf16", 2)
    others = {
        tuple(trial_order(LAYOUTS, seed, scenario, precision, 2))
        for seed, scenario, precision in [(1, "short", "bf16"), (0, "long", "bf16"),
                                          (0, "short", "int4"), (7, "peak", "fp16")]
    }  # fmt: skip
    assert others - {tuple(order)}, "every other seed gave the same order"


def test_many_layouts_are_shuffled_per_block():
    layouts = [f"l{i}" for i in range(7)]  # 7! orders: not listed
    orders = [trial_order(layouts, 0, "s", "bf16", r) for r in range(1, 4)]
    assert all(sorted(o) == layouts for o in orders)
    assert len({tuple(o) for o in orders}) == 3


def test_blocks_are_numbered_from_one():
    with pytest.raises(ValueError, match="from 1"):
        trial_order(LAYOUTS, 0, "s", "bf16", 0)


def runs_frame(alone_a: list[float]) -> pd.DataFrame:
    rows = []
    for repeat, value in enumerate(alone_a, start=1):
        for position, (layout, slot, tput) in enumerate(
            [("alone_A", "A", value), ("alone_B", "B", 50.0), ("colocated", "A", 40.0)],
            start=1,
        ):
            rows.append(
                {
                    "run_id": f"s/bf16/r{repeat}/{layout}",
                    "scenario": "s",
                    "precision": "bf16",
                    "repeat": repeat,
                    "position": position,
                    "layout": layout,
                    "slot": slot,
                    "throughput_tok_s": tput,
                    "loadavg_1m": 0.5 * repeat,
                    "cpu_mhz": 2600.0,
                }
            )
    return pd.DataFrame(rows)


def test_a_block_whose_alone_run_drifted_is_flagged():
    table = blocks_table(runs_frame([100.0, 101.0, 85.0, 99.0]), None, tolerance=0.1)
    flagged = table[table.drift]
    assert list(flagged.repeat) == [3]
    assert "alone_A throughput 15% below the other blocks' median" in flagged.drift_note.item()
    assert list(table.order) == ["alone_A → alone_B → colocated"] * 4
    assert list(table.loadavg_1m) == [0.5, 1.0, 1.5, 2.0]


def test_within_tolerance_and_single_blocks_are_not_flagged():
    assert not blocks_table(runs_frame([100.0, 105.0, 96.0]), None, 0.1).drift.any()
    assert not blocks_table(runs_frame([100.0]), None, 0.1).drift.any()


def test_the_device_temperature_is_the_runs_first_sample():
    samples = pd.DataFrame(
        [
            {"run_id": "s/bf16/r1/alone_A", "t_s": -2.0, "metric": "temperature_c", "value": 40},
            {"run_id": "s/bf16/r1/alone_A", "t_s": 1.0, "metric": "temperature_c", "value": 55},
            {"run_id": "s/bf16/r1/alone_A", "t_s": -2.0, "metric": "power_w", "value": 300},
        ]
    )
    table = blocks_table(runs_frame([100.0]), samples, 0.1)
    assert table.device_temp_c.item() == 40
    assert math.isnan(blocks_table(runs_frame([100.0]), None, 0.1).device_temp_c.astype(float)[0])
