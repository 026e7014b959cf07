"""precisions.csv and int4.csv: what each converted checkpoint is, and what INT4 changes.

- ``precision_table``: one row per model and precision, from the conversion.json facts the
  workers loaded (bytes, INT4 scheme, fidelity against the 16-bit source);
- ``int4_baseline``: the dense precision INT4 is compared with;
- ``int4_table``: INT4 / baseline per scenario, block, layout and slot, plus each group
  layout's sum (slot "A+B", dualbench.analysis.layouts.sum_slot).
"""

from __future__ import annotations

import math

import pandas as pd

from dualbench.analysis.columns import (
    CONVERSION_COLUMNS,
    FIDELITY,
    INT4_COLUMNS,
    INT4_RATIOS,
    PRECISION_COLUMNS,
)
from dualbench.analysis.layouts import data_models, members, sum_slot
from dualbench.config.vocabulary import is_group

# What a group layout's summed row adds up (its latencies have no sum).
SUMMED = ["throughput_tok_s", "peak_mem_bytes"]


def precision_table(records: list[dict], model_sources: dict[str, str]) -> pd.DataFrame:
    """One row per model and precision, from the conversion.json the workers loaded."""
    rows = {}
    for record in records:
        for name, slot in record["slots"].items():
            result = slot["result"] or {}
            conversion = result.get("conversion")
            if not conversion:
                continue
            fidelity = conversion.get("fidelity") or {}
            rows[(name, conversion["precision"])] = {
                "model": model_sources.get(name, conversion.get("source")),
                "slot": name,
                **{k: conversion.get(k) for k in CONVERSION_COLUMNS},
                **{k: fidelity.get(k) for k in FIDELITY},
                "fidelity_inputs": fidelity.get("inputs"),
                "kernel": (result.get("weights") or {}).get("kernel"),
            }
    return pd.DataFrame([rows[k] for k in sorted(rows)], columns=PRECISION_COLUMNS)


def int4_baseline(precisions) -> str | None:
    """The dense precision INT4 is compared with: fp16 (the origin note's question) when it
    was measured, else bf16, else fp32 (what native16 runs on a CPU without native bf16);
    None without int4 or without a dense precision."""
    present = set(precisions)
    if "int4" not in present:
        return None
    return next((p for p in ("fp16", "bf16", "fp32") if p in present), None)


def int4_table(runs: pd.DataFrame) -> pd.DataFrame:
    """INT4 / baseline per scenario, block, layout and slot; each group layout adds a row
    (slot "A+B") with the summed throughput and summed peak memory of its models. Block r of
    INT4 is set
    against block r of the baseline, though the two ran at different times: the answers'
    intervals over INT4 ratios are therefore unpaired (dualbench.analysis.answers)."""
    baseline = int4_baseline(runs["precision"].unique()) if len(runs) else None
    if baseline is None:
        return pd.DataFrame(columns=INT4_COLUMNS)
    rows = []
    keyed = runs.set_index(["scenario", "repeat", "layout", "slot", "precision"])
    keys = runs[["scenario", "repeat", "layout", "slot"]].drop_duplicates().values
    for scenario, repeat, layout, slot in keys:
        try:
            base = keyed.loc[(scenario, repeat, layout, slot, baseline)]
            int4 = keyed.loc[(scenario, repeat, layout, slot, "int4")]
        except KeyError:
            continue
        rows.append(_int4_row(scenario, repeat, layout, slot, baseline, base, int4))
    names = data_models(runs)
    grouped = runs[[is_group(layout) for layout in runs.layout]]
    groups = grouped.groupby(["scenario", "repeat", "layout", "precision"], sort=False)
    keys = grouped[["scenario", "repeat", "layout"]].drop_duplicates().values
    for scenario, repeat, layout in keys:
        group = members(layout, names)
        b, q = (scenario, repeat, layout, baseline), (scenario, repeat, layout, "int4")
        if b in groups.groups and q in groups.groups:
            base, int4 = (_summed(groups.get_group(k), len(group)) for k in (b, q))
            rows.append(_int4_row(scenario, repeat, layout, sum_slot(group), baseline, base, int4))
    return pd.DataFrame(rows, columns=INT4_COLUMNS)


def _summed(rows: pd.DataFrame, k: int) -> dict:
    """A group run's summed throughput and memory; NaN unless all ``k`` models have them."""
    sums = rows[SUMMED].sum(min_count=k)
    return {**sums, "valid": bool(rows["valid"].all()) and len(rows) == k}


def _int4_row(scenario, repeat, layout, slot, baseline, base, int4) -> dict:
    row = {
        "scenario": scenario,
        "repeat": repeat,
        "layout": layout,
        "slot": slot,
        "baseline": baseline,
    }
    for metric in INT4_RATIOS:
        b, q = _num(base.get(metric)), _num(int4.get(metric))
        row[f"{metric}_baseline"], row[f"{metric}_int4"] = b, q
        row[f"{metric}_ratio"] = q / b if b and not math.isnan(b) else math.nan
    row["valid"] = bool(base.get("valid")) and bool(int4.get("valid"))
    return row


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
