"""The Headline section's tables, per scenario × precision and group layout: throughput and
scaling, then the p50 latencies alone and in the layout.

The models are the data's (``names``: tables.slot_names), any number of them; a row per group
layout the key ran (``colocated``, its subsets, lockstep, single-thread), the layout named in a
column of its own where the data hold any layout but ``colocated``. A key with no group layout
(a single model, or only alone runs) has one row of its alone figures.

From answers.csv where the metrics have it (``Estimates``): every figure is the answer over
the blocks with its interval, each interference answer (scaling efficiency, slowdowns) with
its verdict, and the row says how many blocks it pooled, or once that one block has no
interval. Metrics written before answers.csv existed fall back to runs.csv, scaling.csv and
interference.csv, one block each. Either way a table is a dict the template renders
generically: ``title``, ``head`` (header rows of ``{"text", "colspan", "rowspan"}``) and
``rows`` (lists of estimates.cell dicts).
"""

from __future__ import annotations

import math
from typing import Any

from dualbench.config.vocabulary import COLOCATED, alone_layout
from dualbench.report.estimates import Estimates, blocks_note, cell, verdict_class
from dualbench.report.format import DASH, fmt_fixed, fmt_pct, fmt_ratio, number
from dualbench.report.layouts import group_label, group_layouts_of, members

Key = tuple[str, str]
RunLookup = dict[tuple[str, str, str, str], dict[str, Any]]
ScalingLookup = dict[tuple[str, str, str], dict[str, Any]]
InterferenceLookup = dict[tuple[str, str, str, str], dict[str, Any]]
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


def key_layouts(
    keys: list[Key], estimates: Estimates, scaling_by_key: ScalingLookup
) -> dict[Key, list[str]]:
    """Each key's group layouts in table order: those answers.csv has a total (``v_total``)
    or scaling efficiency for, else those scaling.csv has a row for."""
    out = {}
    for key in keys:
        if estimates:
            found = estimates.subjects(key, "v_total") + estimates.subjects(
                key, "scaling_efficiency"
            )
        else:
            found = [lay for (s, p, lay) in scaling_by_key if (s, p) == key]
        out[key] = group_layouts_of(found)
    return out


def _shows_layout(layouts: dict[Key, list[str]]) -> bool:
    """Whether the tables need a Layout column: some key ran a group layout other than every
    model co-located (so a row alone would not say which layout it is)."""
    return any(lay != COLOCATED for found in layouts.values() for lay in found)


def _sizes(layouts: dict[Key, list[str]], names: list[str]) -> set[int]:
    return {len(members(lay, names)) for found in layouts.values() for lay in found}


def headline_tables(
    keys: list[Key],
    issues: dict[Key, list[str]],
    estimates: Estimates,
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    interference_by_key: InterferenceLookup,
    names: list[str],
) -> list[dict[str, Any]]:
    """The headline's tables; ``issues``: tables.key_issues of each key; ``names``: the
    models of the data."""
    if not keys:
        return []
    layouts = key_layouts(keys, estimates, scaling_by_key)
    if estimates:
        return [
            _throughput_table(keys, layouts, issues, estimates, names),
            _latency_table(keys, layouts, estimates, names),
        ]
    return [
        _fallback_throughput_table(
            keys, layouts, issues, lookup, scaling_by_key, interference_by_key, names
        ),
        _fallback_latency_table(keys, layouts, lookup, names),
    ]


def _throughput_head(
    layouts: dict[Key, list[str]],
    names: list[str],
    before: list[str],
    alone: str,
    after_co: list[str],
) -> list[list]:
    """The two header rows of a throughput table: ``before`` the per-model groups, ``alone``
    naming the first group, ``after_co`` between the co-located group and the total. A single
    model has its alone group only."""
    n = len(names)
    first = [
        _th("Scenario", rowspan=2),
        _th("Precision", rowspan=2),
        *([_th("Layout", rowspan=2)] if _shows_layout(layouts) else []),
        *[_th(name, rowspan=2) for name in before],
        _th(alone, n),
    ]
    if n < 2:
        return [[*first, _th("Status", rowspan=2)], [_th(s) for s in names]]
    sizes = _sizes(layouts, names)
    two = sizes <= {2}
    return [
        [
            *first,
            _th("Co-located (tok/s)", n),
            *[_th(name, rowspan=2) for name in after_co],
            _th("V2 total (tok/s)" if two else "Total V_k (tok/s)", rowspan=2),
            _th("Growth" if two else "Growth per added model", rowspan=2),
            _th("Scaling efficiency", rowspan=2),
            _th("Slowdown", n),
            _th("Status", rowspan=2),
        ],
        [_th(s) for _ in range(3) for s in names],
    ]


def _rows_of(layouts: dict[Key, list[str]], keys: list[Key]) -> list[tuple[Key, str | None]]:
    """(key, layout) per row: each group layout of a key, or (key, None) for a key with none."""
    return [(key, lay) for key in keys for lay in (layouts[key] or [None])]


def _layout_cell(layouts: dict[Key, list[str]], layout: str | None, names: list[str]) -> list:
    if not _shows_layout(layouts):
        return []
    return [cell(group_label(layout, names) if layout else DASH, "text")]


# ---------------------------------------------------------------------------------------------
# From answers.csv


def _throughput_table(
    keys: list[Key],
    layouts: dict[Key, list[str]],
    issues: dict[Key, list[str]],
    est: Estimates,
    names: list[str],
) -> dict[str, Any]:
    rows = []
    for key, layout in _rows_of(layouts, keys):
        n = est.blocks(key)
        blocks = blocks_note(n)
        row = [
            *_keys(key),
            *_layout_cell(layouts, layout, names),
            cell(blocks, f"text {verdict_class('one repeat')}" if n == 1 else "text"),
            *[est.cell(key, "throughput", f"{alone_layout(s)}/{s}", "tok") for s in names],
        ]
        if len(names) < 2:
            ok = any(est.n(key, "throughput", f"{alone_layout(s)}/{s}") > 0 for s in names)
            rows.append([*row, _status(issues.get(key, []), ok)])
            continue
        lay = layout or ""
        rows.append(
            [
                *row,
                *[est.cell(key, "throughput", f"{lay}/{s}", "tok") for s in names],
                est.cell(key, "v_total", lay, "tok", strong=True),
                est.cell(key, "growth_per_model", lay, "growth", strong=True),
                est.cell(key, "scaling_efficiency", lay, "pct"),
                *[est.cell(key, "slowdown_throughput", f"{lay}/{s}", "ratio") for s in names],
                _status(issues.get(key, []), est.n(key, "growth_per_model", lay) > 0),
            ]
        )
    per_model = "" if _sizes(layouts, names) <= {2} else (
        "Growth per added model: (V_total / mean V1 − 1) / (k − 1) for k models. "
    )  # fmt: skip
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
            + per_model
            + (
                "Slowdown: alone / co-located throughput (above 1× = slower co-located)."
                if len(names) > 1
                else ""
            )
        ),
        "head": _throughput_head(layouts, names, ["Blocks"], "Alone = V1 (tok/s)", []),
        "rows": rows,
    }


def _latency_table(
    keys: list[Key], layouts: dict[Key, list[str]], est: Estimates, names: list[str]
) -> dict[str, Any]:
    group = len(names) > 1
    rows = []
    for key, layout in _rows_of(layouts, keys):
        for s in members(layout, names) if layout else names:
            row = [*_keys(key), *_layout_cell(layouts, layout, names), cell(s, "text")]
            for metric in LATENCY_ANSWERS:
                row.append(est.cell(key, f"{metric}_p50", f"{alone_layout(s)}/{s}", "ms"))
                if group:
                    subject = f"{layout or ''}/{s}"
                    row += [
                        est.cell(key, f"{metric}_p50", subject, "ms"),
                        est.cell(key, f"slowdown_{metric}_p50", subject, "ratio"),
                    ]
            rows.append(row)
    columns = ("alone", "co-located", "slowdown") if group else ("alone",)
    return {
        "title": "Latency p50 (ms): alone → co-located" if group else "Latency p50 (ms)",
        "note": (
            "Slowdown: co-located / alone p50 of the same block (above 1× = slower "
            "co-located), with its verdict."
            if group
            else ""
        ),
        "head": [
            [
                _th("Scenario", rowspan=2),
                _th("Precision", rowspan=2),
                *([_th("Layout", rowspan=2)] if _shows_layout(layouts) else []),
                _th("Slot", rowspan=2),
                *[_th(name, len(columns)) for name in LATENCY_ANSWERS.values()],
            ],
            [_th(t) for _ in LATENCY_ANSWERS for t in columns],
        ],
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# Metrics without answers.csv: one block, runs.csv, scaling.csv and interference.csv as they are


def _fallback_throughput_table(
    keys: list[Key],
    layouts: dict[Key, list[str]],
    issues: dict[Key, list[str]],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    interference_by_key: InterferenceLookup,
    names: list[str],
) -> dict[str, Any]:
    def metric(key: Key, layout: str | None, slot: str, col: str) -> float:
        row = lookup.get((*key, layout or "", slot))
        return number(row[col]) if row is not None else math.nan

    tput = "throughput_tok_s"
    rows = []
    for key, layout in _rows_of(layouts, keys):
        row = [
            *_keys(key),
            *_layout_cell(layouts, layout, names),
            *[cell(fmt_fixed(metric(key, alone_layout(s), s, tput))) for s in names],
        ]
        sc = scaling_by_key.get((*key, layout or ""), {})
        if len(names) < 2:
            ok = any(math.isfinite(metric(key, alone_layout(s), s, tput)) for s in names)
            rows.append([*row, _status(issues.get(key, []), ok)])
            continue
        slowdowns = [
            interference_by_key.get((*key, layout or "", s), {}).get("slowdown_throughput")
            for s in names
        ]
        rows.append(
            [
                *row,
                *[cell(fmt_fixed(metric(key, layout, s, tput))) for s in names],
                cell(fmt_fixed(sc.get("v1_mean"))),
                cell(fmt_fixed(sc.get("v_total")), strong=True),
                cell(fmt_pct(sc.get("growth_per_model"), signed=True), strong=True),
                cell(fmt_pct(sc.get("scaling_efficiency"))),
                *[cell(fmt_ratio(v)) for v in slowdowns],
                _status(issues.get(key, []), bool(sc) and bool(sc.get("valid", False))),
            ]
        )
    return {
        "title": "Throughput and scaling",
        "note": "",
        "head": _throughput_head(layouts, names, [], "Alone (tok/s)", ["V1 (tok/s)"]),
        "rows": rows,
    }


def _fallback_latency_table(
    keys: list[Key], layouts: dict[Key, list[str]], lookup: RunLookup, names: list[str]
) -> dict[str, Any]:
    where = ("alone", "co-located") if len(names) > 1 else ("alone",)
    rows = []
    for key, layout in _rows_of(layouts, keys):
        row = [*_keys(key), *_layout_cell(layouts, layout, names)]
        for m in ("ttft", "tpot"):
            for s in names:
                for lay in (alone_layout(s), layout or "")[: len(where)]:
                    run = lookup.get((*key, lay, s))
                    row.append(cell(fmt_fixed(run[f"{m}_ms_p50"] if run else math.nan)))
        rows.append(row)
    k = len(where) * len(names)
    return {
        "title": "Latency p50 (ms): alone → co-located" if len(names) > 1 else "Latency p50 (ms)",
        "note": "",
        "head": [
            [
                _th("Scenario", rowspan=2),
                _th("Precision", rowspan=2),
                *([_th("Layout", rowspan=2)] if _shows_layout(layouts) else []),
                _th("TTFT p50", k),
                _th("TPOT p50", k),
            ],
            [_th(f"{s} {w}") for _ in range(2) for s in names for w in where],
        ],
        "rows": rows,
    }
