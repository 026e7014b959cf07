"""The report's Headline section: the answer sentences (``answers``) and the rows of its
throughput and latency tables (``headline``), per scenario × precision, all from the data.

Both take the views of dualbench.report.tables: ``keys`` (scenario_keys), ``lookup``
(run_lookup), ``scaling_by_key`` (scaling_lookup) and ``problems`` (run_problems). Per-slot
values are lists in the order of ``SLOT_NAMES``, which the template's columns follow.
"""

from __future__ import annotations

import math
from typing import Any

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout
from dualbench.report.format import fmt_fixed, fmt_pct, fmt_ratio, is_finite, number
from dualbench.report.tables import key_problems

RunLookup = dict[tuple[str, str, str, str], dict[str, Any]]
ScalingLookup = dict[tuple[str, str], dict[str, Any]]


def headline(
    keys: list[tuple[str, str]],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per scenario × precision: each slot's throughput alone and co-located, V1, V2,
    growth, efficiency, each slot's slowdown, p50 latencies and what is wrong with it."""
    rows = []
    for key in keys:
        scenario, precision = key
        sc = scaling_by_key.get(key, {})

        def metric(layout: str, slot: str, col: str, key: tuple[str, str] = key) -> float:
            row = lookup.get((*key, layout, slot))
            return number(row[col]) if row is not None else math.nan

        issues = key_problems(problems, key)
        if sc and not sc.get("valid", True) and sc.get("note"):
            issues.append(f"scaling: {sc['note']}")
        rows.append(
            {
                "scenario": scenario,
                "precision": precision,
                "alone": [
                    fmt_fixed(metric(alone_layout(slot), slot, "throughput_tok_s"))
                    for slot in SLOT_NAMES
                ],
                "co": [
                    fmt_fixed(metric(COLOCATED, slot, "throughput_tok_s")) for slot in SLOT_NAMES
                ],
                "v1": fmt_fixed(sc.get("v1")),
                "v2": fmt_fixed(sc.get("v2")),
                "growth": fmt_pct(sc.get("growth"), signed=True),
                "efficiency": fmt_pct(sc.get("scaling_efficiency")),
                "slowdown": [fmt_ratio(sc.get(f"slowdown_{slot}")) for slot in SLOT_NAMES],
                "latency": {
                    f"{m}_{slot}_{where}": fmt_fixed(metric(layout, slot, f"{m}_ms_p50"))
                    for m in ("ttft", "tpot")
                    for slot in SLOT_NAMES
                    for where, layout in (("alone", alone_layout(slot)), ("co", COLOCATED))
                },
                "issues": issues,
                "ok": not issues and bool(sc) and bool(sc.get("valid", False)),
            }
        )
    return rows


def answers(
    keys: list[tuple[str, str]],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One sentence per scenario × precision that answers "what does a second model buy and
    cost", then the best and worst scaling, all from the data."""
    out = []
    for key in keys:
        name = "/".join(key)
        sc = scaling_by_key.get(key, {})
        growth = number(sc.get("growth"))
        if not math.isfinite(growth):
            issues = key_problems(problems, key)
            reason = sc.get("note") or ", ".join(issues) or "no alone and co-located pair"
            out.append({"text": f"{name}: no scaling result ({reason}).", "warn": True})
            continue
        gained = (
            f"a second model adds {fmt_pct(growth, signed=True)} total throughput"
            if growth >= 0
            else f"a second model lowers total throughput by {fmt_pct(-growth)}"
        )
        # "A slows 1.23×, B 1.19×"
        slowdowns = ", ".join(
            f"{slot}{' slows' if i == 0 else ''} {fmt_ratio(sc.get(f'slowdown_{slot}'))}"
            for i, slot in enumerate(SLOT_NAMES)
        )
        text = (
            f"{name}: {gained} (V1 {fmt_fixed(sc.get('v1'))} → V2 {fmt_fixed(sc.get('v2'))} "
            f"tok/s, efficiency {fmt_pct(sc.get('scaling_efficiency'))}); {slowdowns}."
        )
        ttft = []
        for slot in SLOT_NAMES:
            alone = lookup.get((*key, alone_layout(slot), slot), {}).get("ttft_ms_p50")
            co = lookup.get((*key, COLOCATED, slot), {}).get("ttft_ms_p50")
            if is_finite(alone) and is_finite(co):
                ttft.append(f"{slot} {fmt_fixed(alone)} → {fmt_fixed(co)} ms")
        if ttft:
            text += " TTFT p50 " + ", ".join(ttft) + "."
        warn = not sc.get("valid", False)
        if warn:
            text += f" Invalid: {sc.get('note') or 'depends on an invalid or failed run'}."
        out.append({"text": text, "warn": warn})

    effs = [
        ("/".join(k), number(scaling_by_key[k].get("scaling_efficiency")))
        for k in keys
        if k in scaling_by_key and is_finite(scaling_by_key[k].get("scaling_efficiency"))
    ]
    if len(effs) > 1:
        best = max(effs, key=lambda e: e[1])
        worst = min(effs, key=lambda e: e[1])
        out.append(
            {
                "text": f"Best scaling: {best[0]} (efficiency {fmt_pct(best[1])}); "
                f"worst: {worst[0]} ({fmt_pct(worst[1])}).",
                "warn": False,
            }
        )
    return out
