"""The metrics tables as the report reads them, and the views of the runs it is built from.

- reading a table back (``read_csv``) and normalising it (``normalise``, ``prepare_runs``,
  ``prepare_scaling``, ``prepare_requests``, ``prepare_answers``, ``prepare_blocks``) to the
  columns and types the report reads (``*_STR_COLUMNS``, ``*_NUM_COLUMNS``);
- run lookups: the (scenario, precision) keys in pipeline order (``scenario_keys``), the runs
  by scenario, precision, layout and slot (``run_lookup``), the scaling and interference rows
  by layout (``scaling_lookup``, ``interference_lookup``), the failed or invalid runs
  (``run_problems``, ``key_problems``, ``flagged_keys``), the drifted blocks
  (``drifted_blocks``), everything wrong with a scenario × precision (``key_issues``) and the
  label of a slot in a layout (``run_label``), of a run in its block (``block_label``);
- the "Where is the wall" tables (``prepare_calibration``, ``prepare_contention``,
  ``prepare_contention_curve``, ``prepare_contention_fits``) and runs.csv's roofline columns
  (``prepare_roofline``), typed from their column lists in dualbench.analysis.columns.

Runs are repeated in blocks (runs.csv's ``repeat``); metrics written before blocks existed
have no such column and read as block 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dualbench.analysis.columns import (
    CALIBRATION_COLUMNS,
    CONTENTION_COLUMNS,
    CONTENTION_CURVE_COLUMNS,
    CONTENTION_FIT_COLUMNS,
    INTERFERENCE_SLOWDOWNS,
    ROOFLINE_COLUMNS,
)
from dualbench.report.format import as_bool
from dualbench.report.layouts import group_rows, run_label

LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")

RUN_STR_COLUMNS = [
    "run_id", "scenario", "precision", "layout", "schedule", "slot", "model", "backend", "device",
    "status", "error", "invalid_reasons", "warnings", "mem_source", "percentile_note",
]  # fmt: skip
RUN_NUM_COLUMNS = [
    "repeat", "position", "prompt_tokens", "new_tokens", "batch_size",
    "window_start_s", "window_end_s", "window_s", "slot_start_s", "slot_end_s", "span_s",
    "overlap_frac", "requests", "output_tokens", "throughput_tok_s", "prefill_tok_s",
    "request_rate_rps",
    *[f"{m}_ms_{s}" for m in LATENCIES for s in STATS],
    *[f"{m}_n" for m in LATENCIES],
    "peak_mem_bytes", "mem_reserved_peak_bytes", "load_s", "warmup_s", "loadavg_1m", "cpu_mhz",
    "tpot_ms_sd", "turns", "turn_overlaps", "handoff_us_p50", "handoff_us_mean",
]  # fmt: skip
# scaling.csv: one row per block and group layout; interference.csv: one per block, group
# layout and member (the victim).
SCALING_STR_COLUMNS = ["scenario", "precision", "layout", "schedule", "models", "note"]
SCALING_NUM_COLUMNS = [
    "repeat", "k", "v1_sum", "v1_mean", "v_total", "growth_per_model", "scaling_efficiency",
]  # fmt: skip
INTERFERENCE_STR_COLUMNS = ["scenario", "precision", "layout", "schedule", "victim", "neighbours"]
INTERFERENCE_NUM_COLUMNS = ["repeat", *INTERFERENCE_SLOWDOWNS]
REQUEST_STR_COLUMNS = ["run_id", "scenario", "precision", "layout", "slot"]
REQUEST_NUM_COLUMNS = [
    "repeat", "call", "index", "submit_s", "queue_ms", "ttft_ms", "tpot_ms", "e2e_ms",
    "itl_ms_mean", "new_tokens",
]  # fmt: skip
ANSWER_STR_COLUMNS = [
    "scenario", "precision", "answer", "subject", "unit", "method", "verdict_kind", "verdict",
]  # fmt: skip
ANSWER_NUM_COLUMNS = ["estimate", "lo", "hi", "n", "confidence"]
BLOCK_STR_COLUMNS = ["scenario", "precision", "order", "drift_note"]
BLOCK_NUM_COLUMNS = ["repeat", "loadavg_1m", "cpu_mhz", "device_temp_c"]


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


def _repeat_column(df: pd.DataFrame) -> pd.DataFrame:
    """``repeat`` as an int, 1 where missing (metrics written before blocks existed)."""
    df["repeat"] = df["repeat"].fillna(1).astype(int)
    return df


def prepare_runs(runs: pd.DataFrame | None) -> pd.DataFrame:
    """runs.csv normalised, with a ``label`` per row ("A alone"), a ``block_label`` that names
    the block where its scenario × precision has several ("A alone · r2"), and ``ok`` for
    status "ok"."""
    df = _repeat_column(normalise(runs, RUN_STR_COLUMNS, RUN_NUM_COLUMNS, ["valid"]))
    df["status"] = df["status"].where(df["status"] != "", "unknown")
    df["label"] = [run_label(lay, slot) for lay, slot in zip(df["layout"], df["slot"], strict=True)]
    blocks = df.groupby(["scenario", "precision"])["repeat"].transform("nunique")
    df["block_label"] = [
        block_label(label, repeat, several)
        for label, repeat, several in zip(df["label"], df["repeat"], blocks > 1, strict=True)
    ]
    df["ok"] = df["status"] == "ok"
    return df


def prepare_scaling(scaling: pd.DataFrame | None) -> pd.DataFrame:
    """scaling.csv normalised (one row per scenario, precision, block and group layout); rows
    of no group layout (a table written before layouts had rows) are left out."""
    df = _repeat_column(normalise(scaling, SCALING_STR_COLUMNS, SCALING_NUM_COLUMNS, ["valid"]))
    return group_rows(df).reset_index(drop=True)


def prepare_interference(interference: pd.DataFrame | None) -> pd.DataFrame:
    """interference.csv normalised (one row per scenario, precision, block, group layout and
    victim); None (metrics written before it existed) reads as empty."""
    df = normalise(interference, INTERFERENCE_STR_COLUMNS, INTERFERENCE_NUM_COLUMNS, ["valid"])
    df = _repeat_column(df)
    return group_rows(df).reset_index(drop=True)


def prepare_answers(answers: pd.DataFrame | None) -> pd.DataFrame:
    """answers.csv normalised; None (metrics written before it existed) reads as empty."""
    df = normalise(answers, ANSWER_STR_COLUMNS, ANSWER_NUM_COLUMNS, [])
    df["n"] = df["n"].fillna(0).astype(int)
    return df


def prepare_blocks(blocks: pd.DataFrame | None) -> pd.DataFrame:
    """blocks.csv normalised; None reads as empty."""
    return _repeat_column(normalise(blocks, BLOCK_STR_COLUMNS, BLOCK_NUM_COLUMNS, ["drift"]))


def prepare_requests(requests: pd.DataFrame | None) -> pd.DataFrame:
    """requests.csv normalised."""
    return normalise(requests, REQUEST_STR_COLUMNS, REQUEST_NUM_COLUMNS, ["in_window", "cut"])


def _typed(
    df: pd.DataFrame | None,
    columns: list[str],
    texts: set[str],
    bools: set[str] | frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """``normalise`` with every column of ``columns`` numeric but the ``texts`` and ``bools``:
    the new tables' column lists are long, and naming only their few text columns keeps the
    types in step with dualbench.analysis.columns."""
    strs = [c for c in columns if c in texts]
    flags = [c for c in columns if c in bools]
    return normalise(df, strs, [c for c in columns if c not in texts | bools], flags)


def prepare_calibration(calibration: pd.DataFrame | None) -> pd.DataFrame:
    """calibration.csv normalised; None (metrics written before it existed) reads as empty."""
    return _typed(calibration, CALIBRATION_COLUMNS, {"slot", "device", "backend", "dtype", "note"})


def prepare_contention(contention: pd.DataFrame | None) -> pd.DataFrame:
    """contention.csv normalised (``backlog`` is left as written: the report does not read it)."""
    texts = {"scenario", "precision", "victim", "neighbour", "invalid_reasons", "note"}
    columns = [c for c in CONTENTION_COLUMNS if c != "backlog"]
    return _typed(contention, columns, texts, {"valid"})


def prepare_contention_curve(curve: pd.DataFrame | None) -> pd.DataFrame:
    """contention_curve.csv normalised; ``n`` as an int (0 where missing)."""
    texts = {"scenario", "precision", "victim", "neighbour", "metric", "method"}
    df = _typed(curve, CONTENTION_CURVE_COLUMNS, texts)
    df["n"] = df["n"].fillna(0).astype(int)
    return df


def prepare_contention_fits(fits: pd.DataFrame | None) -> pd.DataFrame:
    """contention_fits.csv normalised."""
    texts = {"scenario", "precision", "victim", "neighbour", "model", "formula", "residuals",
             "note"}  # fmt: skip
    bools = {"converged", "preferred", "distinguishable"}
    return _typed(fits, CONTENTION_FIT_COLUMNS, texts, bools)


def prepare_roofline(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` (as prepare_runs returns it) with runs.csv's roofline columns typed; runs
    written before the roofline existed get them empty."""
    labels = {"decode_regime", "prefill_regime", "regime", "regime_phase"}
    return _typed(runs, ROOFLINE_COLUMNS, labels)


def block_label(label: str, repeat: int, several: bool) -> str:
    """A run's label with its block where there are several: "A alone · r2"."""
    return f"{label} · r{repeat}" if several else label


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


def scaling_lookup(scaling: pd.DataFrame) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Each scaling row by (scenario, precision, layout) (the last block's, where several)."""
    return {(r["scenario"], r["precision"], r["layout"]): r for r in scaling.to_dict("records")}


def interference_lookup(
    interference: pd.DataFrame,
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Each interference row by (scenario, precision, layout, victim) (the last block's)."""
    return {
        (r["scenario"], r["precision"], r["layout"], r["victim"]): r
        for r in interference.to_dict("records")
    }


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
                "label": r["block_label"],
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


def drifted_blocks(blocks: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of blocks.csv (as prepare_blocks returns it) that the drift guard flagged."""
    return [r for r in blocks.to_dict("records") if r["drift"]]


def key_issues(
    key: tuple[str, str],
    problems: list[dict[str, Any]],
    scaling: pd.DataFrame,
    drifted: list[dict[str, Any]],
) -> list[str]:
    """Everything wrong with the scenario and precision ``key``, one short line each: its
    failed or invalid runs, its scaling rows flagged invalid (per layout and block where there
    are several) and its drifted blocks."""
    issues = key_problems(problems, key)
    rows = [r for r in scaling.to_dict("records") if (r["scenario"], r["precision"]) == key]
    several_layouts = len({r["layout"] for r in rows}) > 1
    several_blocks = len({r["repeat"] for r in rows}) > 1
    for r in rows:
        if not r["valid"] and r["note"]:
            where = "scaling" + (f" {r['layout']}" if several_layouts else "")
            where += f" r{r['repeat']}" if several_blocks else ""
            issues.append(f"{where}: {r['note']}")
    issues += [
        f"block r{b['repeat']} drifted" for b in drifted if (b["scenario"], b["precision"]) == key
    ]
    return list(dict.fromkeys(issues))
