"""The report's per-scenario detail tables: one column per run × slot, one row per metric, in
the groups of ``DETAIL_GROUPS`` (name, runs.csv column, kind of ``format.FORMATTERS``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout
from dualbench.report.format import DASH, FORMATTERS, clip
from dualbench.report.tables import LATENCIES, STATS, unique_in_order

# Columns of a scenario: each slot alone, in slot order, then co-located.
LAYOUT_ORDER = {layout: i for i, layout in enumerate([*map(alone_layout, SLOT_NAMES), COLOCATED])}

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
            [(s, f"{m}_ms_{s}", "ms") for s in STATS],
        )
        for m in LATENCIES
    ],
    (
        "Memory (MiB)",
        [
            ("Peak", "peak_mem_bytes", "mib"),
            ("Peak reserved", "mem_reserved_peak_bytes", "mib"),
            ("Source", "mem_source", "str"),
        ],
    ),
    ("Setup (s)", [("Load", "load_s", "s"), ("Warmup", "warmup_s", "s")]),
]


def details(
    runs: pd.DataFrame, scenarios: list[str], descriptions: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per scenario, one table with a column per run × slot and a row per metric: alone and
    co-located values of a slot sit side by side, which is the comparison people make.

    ``runs``: runs.csv as tables.prepare_runs returns it."""
    precisions = {p: i for i, p in enumerate(unique_in_order(runs["precision"]))}
    out = []
    for scenario in scenarios:
        sel = runs[runs["scenario"] == scenario]
        records = sorted(
            sel.to_dict("records"),
            key=lambda r: (
                precisions.get(r["precision"], 99),
                LAYOUT_ORDER.get(r["layout"], 9),
                r["slot"],
            ),
        )
        columns = [
            {
                "precision": r["precision"],
                "label": r["label"],
                "run_id": r["run_id"],
                "bad": not (r["ok"] and r["valid"]),
            }
            for r in records
        ]
        groups = []
        for group, rows in DETAIL_GROUPS:
            body = []
            for name, col, kind in rows:
                cells = []
                for r in records:
                    text = FORMATTERS[kind](r[col])
                    bad = col == "status" and not r["ok"]
                    cells.append({"text": text, "bad": bad, "num": kind != "str"})
                body.append({"name": name, "cells": cells})
            if group == "Run":
                body.insert(
                    1,
                    {
                        "name": "Valid",
                        "cells": [
                            {
                                "text": "yes" if r["valid"] else "no",
                                "bad": not r["valid"],
                                "num": False,
                            }
                            for r in records
                        ],
                    },
                )
                # Tracebacks can be long; the failures section shows them whole.
                notes = [clip(r["error"] or r["invalid_reasons"], 160) for r in records]
                if any(notes):
                    body.insert(
                        2,
                        {
                            "name": "Error / reasons",
                            "cells": [
                                {"text": n or DASH, "bad": bool(n), "num": False} for n in notes
                            ],
                        },
                    )
            groups.append({"name": group, "rows": body})
        out.append(
            {
                "scenario": scenario,
                "anchor": "scenario-" + "".join(c if c.isalnum() else "-" for c in scenario),
                "description": descriptions.get(scenario, ""),
                "columns": columns,
                "groups": groups,
            }
        )
    return out
