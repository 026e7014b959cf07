"""precisions.csv and int4.csv: what each converted checkpoint is, and what INT4 changes.

- ``precision_table``: one row per model and precision, from the conversion.json facts the
  workers loaded (bytes, INT4 scheme, fidelity against the 16-bit source);
- ``int4_baseline``: the dense precision INT4 is compared with;
- ``int4_table``: INT4 / baseline per scenario, layout and slot, plus the co-located pair.
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
from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES


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
    """INT4 / baseline per scenario, layout and slot; the colocated pair adds a row with the
    summed throughput and summed peak memory of its slots."""
    baseline = int4_baseline(runs["precision"].unique()) if len(runs) else None
    if baseline is None:
        return pd.DataFrame(columns=INT4_COLUMNS)
    rows = []
    keyed = runs.set_index(["scenario", "layout", "slot", "precision"])
    for scenario, layout, slot in runs[["scenario", "layout", "slot"]].drop_duplicates().values:
        try:
            base = keyed.loc[(scenario, layout, slot, baseline)]
            int4 = keyed.loc[(scenario, layout, slot, "int4")]
        except KeyError:
            continue
        rows.append(_int4_row(scenario, layout, slot, baseline, base, int4))
    pairs = runs[runs.layout == COLOCATED].groupby(["scenario", "precision"])
    # A pair's sums need every slot's figure.
    summed = pairs[["throughput_tok_s", "peak_mem_bytes"]].sum(min_count=len(SLOT_NAMES))
    valid = pairs["valid"].all()
    for scenario in runs.loc[runs.layout == COLOCATED, "scenario"].unique():
        if (scenario, baseline) in summed.index and (scenario, "int4") in summed.index:
            base = {**summed.loc[(scenario, baseline)], "valid": valid[(scenario, baseline)]}
            int4 = {**summed.loc[(scenario, "int4")], "valid": valid[(scenario, "int4")]}
            rows.append(_int4_row(scenario, COLOCATED, "pair", baseline, base, int4))
    return pd.DataFrame(rows, columns=INT4_COLUMNS)


def _int4_row(scenario, layout, slot, baseline, base, int4) -> dict:
    row = {"scenario": scenario, "layout": layout, "slot": slot, "baseline": baseline}
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
