"""blocks.csv: each repeat block's order, the machine when it started, and the drift guard.

A block whose alone runs are faster or slower than the other blocks' by more than the
tolerance was measured on a machine in another state (a neighbour's load, a lower clock, a
hotter device): its ratios still pair alone with co-located of the same block, but the block
is flagged so a reader can see it and its machine state (load average, CPU clock, device
temperature) beside the others.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dualbench.analysis.columns import BLOCK_COLUMNS
from dualbench.analysis.layouts import data_models
from dualbench.config.vocabulary import alone_layout

# The device temperature metric the telemetry records (NVML), in °C.
TEMPERATURE_METRIC = "temperature_c"


def blocks_table(
    runs: pd.DataFrame, samples: pd.DataFrame | None, tolerance: float = 0.1
) -> pd.DataFrame:
    """One row per scenario, precision and block; ``samples``: telemetry.csv's rows."""
    rows = []
    for (scenario, precision), group in runs.groupby(["scenario", "precision"], sort=False):
        drift = _drift_notes(group, tolerance)
        for repeat, block in group.groupby("repeat", sort=True):
            first = block.sort_values("position", na_position="last").iloc[0]
            notes = drift.get(repeat, [])
            rows.append(
                {
                    "scenario": scenario,
                    "precision": precision,
                    "repeat": repeat,
                    "order": " → ".join(_order(block)),
                    "loadavg_1m": first.get("loadavg_1m"),
                    "cpu_mhz": first.get("cpu_mhz"),
                    "device_temp_c": _start_temperature(samples, first["run_id"]),
                    "drift": bool(notes),
                    "drift_note": "; ".join(notes),
                }
            )
    return pd.DataFrame(rows, columns=BLOCK_COLUMNS)


def _order(block: pd.DataFrame) -> list[str]:
    """The block's layouts in the order they ran."""
    runs = block.drop_duplicates("layout").sort_values("position", na_position="last")
    return list(runs["layout"])


def _drift_notes(group: pd.DataFrame, tolerance: float) -> dict[int, list[str]]:
    """{repeat: notes} for the blocks whose alone throughput of some model (of the data) lies
    more than ``tolerance`` from the median of the other blocks' (needs two blocks or more)."""
    notes: dict[int, list[str]] = {}
    for slot in data_models(group):
        layout = alone_layout(slot)
        sel = group[(group.layout == layout) & (group.slot == slot)]
        values = {
            int(r["repeat"]): float(r["throughput_tok_s"])
            for r in sel.to_dict("records")
            if _finite(r.get("throughput_tok_s"))
        }
        for repeat, value in values.items():
            others = [v for r, v in values.items() if r != repeat]
            if not others:
                continue
            median = float(np.median(others))
            change = value / median - 1 if median > 0 else math.nan
            if math.isfinite(change) and abs(change) > tolerance:
                where = "above" if change > 0 else "below"
                notes.setdefault(repeat, []).append(
                    f"{layout} throughput {abs(change):.0%} {where} the other blocks' median "
                    f"(tolerance {tolerance:.0%})"
                )
    return notes


def _start_temperature(samples: pd.DataFrame | None, run_id: str) -> float | None:
    """The first device temperature sampled in a run (the mean over devices), if any."""
    if samples is None or samples.empty:
        return None
    sel = samples[(samples.run_id == run_id) & (samples.metric == TEMPERATURE_METRIC)]
    if sel.empty:
        return None
    first = sel[sel.t_s == sel.t_s.min()]
    return float(first["value"].mean())


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
