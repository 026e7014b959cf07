"""The Headline section's tables, per scenario × precision: throughput and scaling, then the
p50 latencies alone and co-located.

From answers.csv where the metrics have it (``Estimates``): every figure is the answer over
the blocks with its interval, each interference answer (scaling efficiency, slowdowns) with
its verdict, and the row says how many blocks it pooled, or once that one block has no
interval. Metrics written before answers.csv existed fall back to runs.csv and scaling.csv,
one block each. Either way a table is a dict the template renders generically: ``title``,
``head`` (header rows of ``{"text", "colspan", "rowspan"}``) and ``rows`` (lists of
estimates.cell dicts).
"""

from __future__ import annotations

import math
from typing import Any

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout
from dualbench.report.estimates import Estimates, blocks_note, cell, verdict_class
from dualbench.report.format import fmt_fixed, fmt_pct, fmt_ratio, number

Key = tuple[str, str]
RunLookup = dict[tuple[str, str, str, str], dict[str, Any]]
ScalingLookup = dict[Key, dict[str, Any]]
# The latencies of the answers' latency table: runs.csv metric -> its answers' name stem.
LATENCY_ANSWERS = {"ttft": "TTFT p50", "tpot": "TPOT p50", "e2e": "E2E p50"}


def _th(text: str, colspan: int = 1, rowspan: int = 1) -> dict[str, Any]:
    return {"text": text, "colspan": colspan, "rowspan": rowspan}


def _status(issues: list[str], ok: bool) -> dict[str, Any]:
    if issues:
        return cell("⚠ " + "; ".join(issues), "text bad")
    return cell("ok", "okmark") if ok else cell("–", "text")


def _keys(key: Key) -> list[dict[str, Any]]:
    return [cell(key[0], "key"), cell(key[1], "text")]


def headline_tables(
    keys: list[Key],
    issues: dict[Key, list[str]],
    estimates: Estimates,
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
) -> list[dict[str, Any]]:
    """The headline's tables; ``issues``: tables.key_issues of each key."""
    if not keys:
        return []
    if estimates:
        return [_throughput_table(keys, issues, estimates), _latency_table(keys, estimates)]
    return [
        _fallback_throughput_table(keys, issues, lookup, scaling_by_key),
        _fallback_latency_table(keys, lookup),
    ]


def _throughput_head(before: list[str], alone: str, after_co: list[str]) -> list[list]:
    """The two header rows of a throughput table: ``before`` the per-slot groups, ``alone``
    naming the first group, ``after_co`` between the co-located group and V2."""
    k = len(SLOT_NAMES)
    return [
        [
            _th("Scenario", rowspan=2),
            _th("Precision", rowspan=2),
            *[_th(name, rowspan=2) for name in before],
            _th(alone, k),
            _th("Co-located (tok/s)", k),
            *[_th(name, rowspan=2) for name in after_co],
            _th("V2 total (tok/s)", rowspan=2),
            _th("Growth", rowspan=2),
            _th("Scaling efficiency", rowspan=2),
            _th("Slowdown", k),
            _th("Status", rowspan=2),
        ],
        [_th(s) for _ in range(3) for s in SLOT_NAMES],
    ]


# ---------------------------------------------------------------------------------------------
# From answers.csv


def _throughput_table(
    keys: list[Key], issues: dict[Key, list[str]], est: Estimates
) -> dict[str, Any]:
    rows = []
    for key in keys:
        n = est.blocks(key)
        blocks = blocks_note(n)
        rows.append(
            [
                *_keys(key),
                cell(blocks, f"text {verdict_class('one repeat')}" if n == 1 else "text"),
                *[est.cell(key, "throughput", f"{alone_layout(s)}/{s}", "tok") for s in SLOT_NAMES],
                *[est.cell(key, "throughput", f"{COLOCATED}/{s}", "tok") for s in SLOT_NAMES],
                est.cell(key, "v2", "all", "tok", strong=True),
                est.cell(key, "growth", "all", "growth", strong=True),
                est.cell(key, "scaling_efficiency", "all", "pct"),
                *[est.cell(key, "slowdown_throughput", s, "ratio") for s in SLOT_NAMES],
                _status(issues.get(key, []), est.n(key, "growth", "all") > 0),
            ]
        )
    return {
        "title": "Throughput and scaling",
        "note": (
            (
                "Each figure is the estimate over the scenario's blocks with its "
                f"{est.confidence_text} interval where two blocks or more; scaling efficiency "
                "and slowdowns carry the verdict on interference. "
                if est.has_intervals()
                else "One block per scenario × precision: its figures have no interval. "
            )
            + "Slowdown: alone / co-located throughput (above 1× = slower co-located)."
        ),
        "head": _throughput_head(["Blocks"], "Alone = V1 (tok/s)", []),
        "rows": rows,
    }


def _latency_table(keys: list[Key], est: Estimates) -> dict[str, Any]:
    rows = []
    for key in keys:
        for s in SLOT_NAMES:
            row = [*_keys(key), cell(s, "text")]
            for metric in LATENCY_ANSWERS:
                row += [
                    est.cell(key, f"{metric}_p50", f"{alone_layout(s)}/{s}", "ms"),
                    est.cell(key, f"{metric}_p50", f"{COLOCATED}/{s}", "ms"),
                    est.cell(key, f"slowdown_{metric}_p50", s, "ratio"),
                ]
            rows.append(row)
    return {
        "title": "Latency p50 (ms): alone → co-located",
        "note": (
            "Slowdown: co-located / alone p50 of the same block (above 1× = slower "
            "co-located), with its verdict."
        ),
        "head": [
            [
                _th("Scenario", rowspan=2),
                _th("Precision", rowspan=2),
                _th("Slot", rowspan=2),
                *[_th(name, 3) for name in LATENCY_ANSWERS.values()],
            ],
            [_th(t) for _ in LATENCY_ANSWERS for t in ("alone", "co-located", "slowdown")],
        ],
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# Metrics without answers.csv: one block, runs.csv and scaling.csv as they are


def _fallback_throughput_table(
    keys: list[Key],
    issues: dict[Key, list[str]],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
) -> dict[str, Any]:
    def metric(key: Key, layout: str, slot: str, col: str) -> float:
        row = lookup.get((*key, layout, slot))
        return number(row[col]) if row is not None else math.nan

    rows = []
    for key in keys:
        sc = scaling_by_key.get(key, {})
        tput = "throughput_tok_s"
        rows.append(
            [
                *_keys(key),
                *[cell(fmt_fixed(metric(key, alone_layout(s), s, tput))) for s in SLOT_NAMES],
                *[cell(fmt_fixed(metric(key, COLOCATED, s, tput))) for s in SLOT_NAMES],
                cell(fmt_fixed(sc.get("v1"))),
                cell(fmt_fixed(sc.get("v2")), strong=True),
                cell(fmt_pct(sc.get("growth"), signed=True), strong=True),
                cell(fmt_pct(sc.get("scaling_efficiency"))),
                *[cell(fmt_ratio(sc.get(f"slowdown_{s}"))) for s in SLOT_NAMES],
                _status(issues.get(key, []), bool(sc) and bool(sc.get("valid", False))),
            ]
        )
    return {
        "title": "Throughput and scaling",
        "note": "",
        "head": _throughput_head([], "Alone (tok/s)", ["V1 (tok/s)"]),
        "rows": rows,
    }


def _fallback_latency_table(keys: list[Key], lookup: RunLookup) -> dict[str, Any]:
    rows = []
    for key in keys:
        row = _keys(key)
        for m in ("ttft", "tpot"):
            for s in SLOT_NAMES:
                for layout in (alone_layout(s), COLOCATED):
                    run = lookup.get((*key, layout, s))
                    row.append(cell(fmt_fixed(run[f"{m}_ms_p50"] if run else math.nan)))
        rows.append(row)
    k = 2 * len(SLOT_NAMES)
    return {
        "title": "Latency p50 (ms): alone → co-located",
        "note": "",
        "head": [
            [
                _th("Scenario", rowspan=2),
                _th("Precision", rowspan=2),
                _th("TTFT p50", k),
                _th("TPOT p50", k),
            ],
            [
                _th(f"{s} {w}")
                for _ in range(2)
                for s in SLOT_NAMES
                for w in ("alone", "co-located")
            ],
        ],
        "rows": rows,
    }
