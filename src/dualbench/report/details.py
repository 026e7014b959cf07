"""The report's per-scenario detail tables: one column per run × slot (with several blocks,
per block: "A alone · r2"; layouts in tables.sort_layouts order: each model alone, then the
group layouts), one row per metric, in the groups of ``DETAIL_GROUPS`` (name,
runs.csv column, kind of ``format.FORMATTERS``); and the Blocks table (``blocks_rows``).

A p90 or p99 over fewer values than it needs (dualbench.analysis.intervals.PERCENTILE_MIN_N,
counted in runs.csv's ``*_n`` columns) reads "max, n = …" instead of its number
(``percentile_text``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dualbench.analysis.intervals import PERCENTILE_MIN_N, percentile_label
from dualbench.report.format import DASH, FORMATTERS, clip, fmt_fixed, fmt_int, is_finite, number
from dualbench.report.layouts import sort_layouts
from dualbench.report.tables import LATENCIES, STATS, unique_in_order

# Shown only for a scenario with a lockstep run: other runs have no turns.
LOCKSTEP_GROUP = "Lockstep turns"
DETAIL_GROUPS: list[tuple[str, list[tuple[str, str, str]]]] = [
    (
        "Run",
        [
            ("Status", "status", "str"),
            ("Model", "model", "str"),
            ("Device", "device", "str"),
            ("Prompt tokens", "prompt_tokens", "int"),
            ("New tokens", "new_tokens", "int"),
            ("Batch size", "batch_size", "int"),
            ("Block", "repeat", "int"),
            ("Position in block", "position", "int"),
        ],
    ),
    (
        "Window",
        [
            ("Window (s)", "window_s", "s"),
            ("Span (s)", "span_s", "s"),
            ("Overlap", "overlap_frac", "pct"),
            ("Requests in window", "requests", "int"),
            ("Output tokens in window", "output_tokens", "int"),
        ],
    ),
    (
        "Throughput",
        [
            ("Output (tok/s)", "throughput_tok_s", "tok"),
            ("Prefill (tok/s)", "prefill_tok_s", "tok"),
            ("Request rate (req/s)", "request_rate_rps", "rate"),
        ],
    ),
    *[
        (
            f"{m.upper()} (ms)",
            [
                *[(s, f"{m}_ms_{s}", "ms") for s in STATS],
                # How steady the decode pace is: what lockstep's turns trade for throughput.
                *([("sd", "tpot_ms_sd", "ms")] if m == "tpot" else []),
            ],
        )
        for m in LATENCIES
    ],
    (
        LOCKSTEP_GROUP,
        [
            ("Hand-off p50 (µs)", "handoff_us_p50", "rate"),
            ("Hand-off mean (µs)", "handoff_us_mean", "rate"),
            ("Overlapping turns", "turn_overlaps", "int"),
        ],
    ),
    (
        "Memory (MiB)",
        [
            ("Peak", "peak_mem_bytes", "mib"),
            ("Peak reserved", "mem_reserved_peak_bytes", "mib"),
            ("Source", "mem_source", "str"),
        ],
    ),
    ("Setup (s)", [("Load", "load_s", "s"), ("Warmup", "warmup_s", "s")]),
    (
        "Machine at start",
        [("Load average (1 min)", "loadavg_1m", "rate"), ("CPU clock (MHz)", "cpu_mhz", "int")],
    ),
]


def percentile_text(run: Mapping[str, Any], column: str) -> str | None:
    """ "max, n = 9" for a latency p90/p99 column (``ttft_ms_p99``) over too few values, from
    the run's count (``ttft_n``); None for other columns and where the count is enough or
    missing."""
    metric, _, stat = column.partition("_ms_")
    if stat not in PERCENTILE_MIN_N or not is_finite(run.get(f"{metric}_n")):
        return None
    return percentile_label(stat, int(number(run[f"{metric}_n"])))


def blocks_rows(blocks: pd.DataFrame) -> list[dict[str, Any]]:
    """The Blocks table: one row per scenario, precision and block (blocks.csv as
    tables.prepare_blocks returns it), its order, the machine at its start and the drift
    guard's note."""
    return [
        {
            "scenario": r["scenario"],
            "precision": r["precision"],
            "block": f"r{r['repeat']}",
            "order": r["order"] or DASH,
            "load": fmt_fixed(r["loadavg_1m"], 2),
            "cpu_mhz": fmt_int(r["cpu_mhz"]),
            "temp": fmt_fixed(r["device_temp_c"]),
            "drift": bool(r["drift"]),
            "note": r["drift_note"] or ("drift" if r["drift"] else ""),
        }
        for r in blocks.to_dict("records")
    ]


def scenario_anchor(scenario: str) -> str:
    """A scenario's name as an HTML id's tail: letters and digits kept, the rest "-"."""
    return "".join(c if c.isalnum() else "-" for c in scenario)


def details(
    runs: pd.DataFrame, scenarios: list[str], descriptions: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per scenario and precision, one table with a column per run × slot and a row per
    metric: alone and co-located values of a slot sit side by side, which is the comparison
    people make; with several blocks, block after block. One table per precision keeps a
    table's columns to the layouts × models of one block set, so it fits or scrolls alone.

    ``runs``: runs.csv as tables.prepare_runs returns it."""
    # Columns of a table: each model alone, in name order, then the group layouts.
    layout_order = {layout: i for i, layout in enumerate(sort_layouts(runs["layout"]))}
    out = []
    for scenario in scenarios:
        sel = runs[runs["scenario"] == scenario]
        tables = []
        for precision in unique_in_order(sel["precision"]):
            records = sorted(
                sel[sel["precision"] == precision].to_dict("records"),
                key=lambda r: (r["repeat"], layout_order[r["layout"]], r["slot"]),
            )
            tables.append({"precision": precision, **_detail_table(records)})
        out.append(
            {
                "scenario": scenario,
                "anchor": "scenario-" + scenario_anchor(scenario),
                "description": descriptions.get(scenario, ""),
                "tables": tables,
            }
        )
    return out


def _text_cell(text: str, bad: bool) -> dict[str, Any]:
    return {"text": text, "bad": bad, "num": False, "approx": False}


def _detail_table(records: list[dict]) -> dict[str, Any]:
    """{"columns", "groups"} of one scenario × precision's runs, in ``records``' order."""
    columns = [
        {
            "precision": r["precision"],
            "label": r["block_label"],
            "run_id": r["run_id"],
            "bad": not (r["ok"] and r["valid"]),
        }
        for r in records
    ]
    groups = []
    lockstep = any(r.get("schedule") == "lockstep" for r in records)
    for group, rows in DETAIL_GROUPS:
        if group == LOCKSTEP_GROUP and not lockstep:
            continue
        body = []
        for name, col, kind in rows:
            cells = []
            for r in records:
                label = percentile_text(r, col)
                text = label or FORMATTERS[kind](r[col])
                bad = col == "status" and not r["ok"]
                cells.append(
                    {"text": text, "bad": bad, "num": kind != "str", "approx": bool(label)}
                )
            body.append({"name": name, "cells": cells})
        if group == "Run":
            valid = [_text_cell("yes" if r["valid"] else "no", not r["valid"]) for r in records]
            body.insert(1, {"name": "Valid", "cells": valid})
            # Tracebacks can be long; the failures section shows them whole.
            notes = [clip(r["error"] or r["invalid_reasons"], 160) for r in records]
            if any(notes):
                cells = [_text_cell(n or DASH, bool(n)) for n in notes]
                body.insert(2, {"name": "Error / reasons", "cells": cells})
        groups.append({"name": group, "rows": body})
    return {"columns": columns, "groups": groups}
