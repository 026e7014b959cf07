"""The metrics tables as the report reads them, and the views of the runs it is built from.

- reading a table back (``read_csv``) and normalising it (``normalise``, ``prepare_runs``,
  ``prepare_scaling``, ``prepare_requests``) to the columns and types the report reads
  (``*_STR_COLUMNS``, ``*_NUM_COLUMNS``);
- run lookups: the (scenario, precision) keys in pipeline order (``scenario_keys``), the runs
  by scenario, precision, layout and slot (``run_lookup``, ``scaling_lookup``), the failed or
  invalid ones (``run_problems``, ``key_problems``, ``flagged_keys``) and the label of a slot
  in a layout (``run_label``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES
from dualbench.report.format import as_bool

LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")

RUN_STR_COLUMNS = [
    "run_id", "scenario", "precision", "layout", "slot", "model", "backend", "device",
    "status", "error", "invalid_reasons", "warnings", "mem_source",
]  # fmt: skip
RUN_NUM_COLUMNS = [
    "prompt_tokens", "new_tokens", "batch_size",
    "window_start_s", "window_end_s", "window_s", "slot_start_s", "slot_end_s", "span_s",
    "overlap_frac", "requests", "output_tokens", "throughput_tok_s", "prefill_tok_s",
    "request_rate_rps",
    *[f"{m}_ms_{s}" for m in LATENCIES for s in STATS],
    "peak_mem_bytes", "mem_reserved_peak_bytes", "load_s", "warmup_s",
]  # fmt: skip
SCALING_STR_COLUMNS = ["scenario", "precision", "note"]
SCALING_NUM_COLUMNS = [
    *[f"v1_{slot}" for slot in SLOT_NAMES], "v1", "v2", "growth", "scaling_efficiency",
    *[f"slowdown_{slot}" for slot in SLOT_NAMES],
]  # fmt: skip
REQUEST_STR_COLUMNS = ["run_id", "scenario", "precision", "layout", "slot"]
REQUEST_NUM_COLUMNS = [
    "call", "index", "submit_s", "ttft_ms", "tpot_ms", "e2e_ms", "itl_ms_mean", "new_tokens",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Input normalisation: CSV round trips turn "" into NaN and bools into strings; the report must
# read the same whether it gets the analysis DataFrames directly or the files.


def read_csv(path: Path) -> pd.DataFrame:
    """A metrics table read back; an empty file reads as an empty DataFrame."""
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        # An analysis stage with nothing to report (e.g. every run failed before any request)
        # may write a header-less file; the report still renders what exists.
        return pd.DataFrame()


def normalise(
    df: pd.DataFrame | None, str_cols: list[str], num_cols: list[str], bool_cols: list[str]
) -> pd.DataFrame:
    """A copy of ``df`` (None: an empty table) with every listed column present: texts with ""
    for missing, numbers with NaN, bools with False."""
    df = pd.DataFrame() if df is None else df.copy()
    for col in str_cols:
        # Via object: a text column with no value at all reads back from CSV as float64, which
        # pandas will no longer fill with "".
        df[col] = df[col].astype(object).fillna("").astype(str) if col in df else ""
    for col in num_cols:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    for col in bool_cols:
        df[col] = df[col].map(as_bool).astype(bool) if col in df else False
    return df.reset_index(drop=True)


def prepare_runs(runs: pd.DataFrame | None) -> pd.DataFrame:
    """runs.csv normalised, with a ``label`` per row and ``ok`` for status "ok"."""
    df = normalise(runs, RUN_STR_COLUMNS, RUN_NUM_COLUMNS, ["valid"])
    df["status"] = df["status"].where(df["status"] != "", "unknown")
    df["label"] = [run_label(lay, slot) for lay, slot in zip(df["layout"], df["slot"], strict=True)]
    df["ok"] = df["status"] == "ok"
    return df


def prepare_scaling(scaling: pd.DataFrame | None) -> pd.DataFrame:
    """scaling.csv normalised."""
    return normalise(scaling, SCALING_STR_COLUMNS, SCALING_NUM_COLUMNS, ["valid"])


def prepare_requests(requests: pd.DataFrame | None) -> pd.DataFrame:
    """requests.csv normalised."""
    return normalise(requests, REQUEST_STR_COLUMNS, REQUEST_NUM_COLUMNS, ["in_window"])


def run_label(layout: str, slot: str) -> str:
    """How the report names a slot in a layout: "A alone", "B co-located"."""
    if layout == COLOCATED:
        return f"{slot} co-located"
    if layout.startswith("alone"):
        return f"{slot} alone"
    return f"{slot} {layout}".strip()


# ---------------------------------------------------------------------------------------------
# Run lookups


def unique_in_order(values: Iterable[str]) -> list[str]:
    """``values`` without repeats, each where it first appears."""
    return list(dict.fromkeys(v for v in values))


def scenario_keys(runs: pd.DataFrame, scaling: pd.DataFrame) -> list[tuple[str, str]]:
    """(scenario, precision) pairs in the order the pipeline produced them (config order)."""
    pairs = list(zip(runs["scenario"], runs["precision"], strict=True))
    pairs += list(zip(scaling["scenario"], scaling["precision"], strict=True))
    return list(dict.fromkeys(pairs))


def run_lookup(runs: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Each run row by (scenario, precision, layout, slot)."""
    return {
        (r["scenario"], r["precision"], r["layout"], r["slot"]): r for r in runs.to_dict("records")
    }


def scaling_lookup(scaling: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Each scaling row by (scenario, precision)."""
    return {(r["scenario"], r["precision"]): r for r in scaling.to_dict("records")}


def run_problems(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Every run × slot that failed or is invalid, with what to show about it."""
    rows = []
    for r in runs.to_dict("records"):
        if r["ok"] and r["valid"]:
            continue
        rows.append(
            {
                "run_id": r["run_id"],
                "scenario": r["scenario"],
                "precision": r["precision"],
                "slot": r["slot"],
                "label": r["label"],
                "status": r["status"],
                "failed": not r["ok"],
                "valid": r["valid"],
                "error": r["error"],
                "invalid_reasons": r["invalid_reasons"],
            }
        )
    return rows


def key_problems(problems: list[dict[str, Any]], key: tuple[str, str]) -> list[str]:
    """One short line per problem of the scenario and precision ``key``."""
    out = []
    for p in problems:
        if (p["scenario"], p["precision"]) != key:
            continue
        out.append(f"{p['label']}: {p['status']}" if p["failed"] else f"{p['label']}: invalid")
    return out


def flagged_keys(
    keys: list[tuple[str, str]], problems: list[dict[str, Any]], scaling: pd.DataFrame
) -> set[tuple[str, str]]:
    """The keys with a failed or invalid run or an invalid scaling result."""
    bad = {(p["scenario"], p["precision"]) for p in problems}
    for r in scaling.to_dict("records"):
        if not r["valid"]:
            bad.add((r["scenario"], r["precision"]))
    return bad & set(keys)
