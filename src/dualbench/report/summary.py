"""The report's Headline sentences (``answers``), per scenario × precision, all from the data:
what a second model adds (growth, V1 → V2), what it costs (scaling efficiency, each slot's
slowdown, TTFT p50 alone → co-located), then the best and worst scaling.

From answers.csv where the metrics have it (``Estimates``): each figure with its interval
over the blocks and each interference answer with its verdict, coloured by kind; a scenario ×
precision with one block says once that it has no interval. Metrics written before answers.csv
existed fall back to scaling.csv and runs.csv as they are.

A sentence is ``{"parts": [(text, CSS class)], "text": the whole, "warn": bool}``: the
template colours the parts with a class (the verdicts, estimates.verdict_class).
"""

from __future__ import annotations

import math
from typing import Any

from dualbench.config.vocabulary import COLOCATED, SLOT_NAMES, alone_layout
from dualbench.report.estimates import ONE_REPEAT, Estimates, verdict_class
from dualbench.report.format import DASH, fmt_fixed, fmt_pct, fmt_ratio, is_finite, number

Key = tuple[str, str]
RunLookup = dict[tuple[str, str, str, str], dict[str, Any]]
ScalingLookup = dict[Key, dict[str, Any]]
Parts = list[tuple[str, str]]


def _sentence(parts: Parts, warn: bool) -> dict[str, Any]:
    return {"parts": parts, "text": "".join(text for text, _ in parts), "warn": warn}


def answers(
    keys: list[Key],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    issues: dict[Key, list[str]],
    estimates: Estimates,
) -> list[dict[str, Any]]:
    """One sentence per scenario × precision that answers "what does a second model buy and
    cost", then the best and worst scaling. ``issues``: tables.key_issues of each key."""
    if estimates:
        return _from_estimates(keys, issues, estimates)
    return _from_scaling(keys, lookup, scaling_by_key, issues)


# ---------------------------------------------------------------------------------------------
# From answers.csv


def _from_estimates(
    keys: list[Key], issues: dict[Key, list[str]], est: Estimates
) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        name = "/".join(key)
        wrong = issues.get(key, [])
        growth = est.interval(key, "growth", "all")[0]
        if est.n(key, "growth", "all") <= 0 or not math.isfinite(growth):
            reason = "; ".join(wrong) or "no alone and co-located pair"
            out.append(_sentence([(f"{name}: no scaling result ({reason}).", "")], True))
            continue
        parts: Parts = [(name, "")]
        if est.blocks(key) == 1:
            parts += [(" (", ""), (ONE_REPEAT, verdict_class("one repeat")), (")", "")]
        if growth >= 0:
            gained = f"adds {est.figure(key, 'growth', 'all', 'growth')} total throughput"
        else:
            fall = est.figure(key, "growth", "all", "pct", negated=True)
            gained = f"lowers total throughput by {fall}"
        v1 = ", ".join(f"{s} {est.figure(key, 'v1', s, 'tok')}" for s in SLOT_NAMES)
        parts.append(
            (
                f": a second model {gained} (V1 {v1} → V2 {est.figure(key, 'v2', 'all', 'tok')} "
                "tok/s); scaling efficiency ",
                "",
            )
        )
        parts += est.judged(key, "scaling_efficiency", "all", "pct")
        for i, s in enumerate(SLOT_NAMES):
            parts.append((f"; {s} slows " if i == 0 else f", {s} ", ""))
            parts += est.judged(key, "slowdown_throughput", s, "ratio")
        parts.append((".", ""))
        ttft: Parts = []
        for s in SLOT_NAMES:
            alone = est.figure(key, "ttft_p50", f"{alone_layout(s)}/{s}", "ms")
            co = est.figure(key, "ttft_p50", f"{COLOCATED}/{s}", "ms")
            if DASH in (alone, co):
                continue
            ttft.append(((", " if ttft else " TTFT p50 ") + f"{s} {alone} → {co} ms", ""))
            words, kind = est.verdict(key, "slowdown_ttft_p50", s)
            if words:
                ttft += [(" — ", ""), (words, verdict_class(kind))]
        if ttft:
            parts += [*ttft, (".", "")]
        if wrong:
            parts.append((f" ⚠ {'; '.join(wrong)}.", ""))
        out.append(_sentence(parts, bool(wrong)))

    effs = [
        (key, est.interval(key, "scaling_efficiency", "all")[0])
        for key in keys
        if est.n(key, "scaling_efficiency", "all") > 0
    ]
    effs = [(key, e) for key, e in effs if math.isfinite(e)]
    if len(effs) > 1:
        best = max(effs, key=lambda e: e[1])[0]
        worst = min(effs, key=lambda e: e[1])[0]
        text = (
            f"Best scaling: {'/'.join(best)} (efficiency "
            f"{est.figure(best, 'scaling_efficiency', 'all', 'pct')}); worst: {'/'.join(worst)} "
            f"({est.figure(worst, 'scaling_efficiency', 'all', 'pct')})."
        )
        out.append(_sentence([(text, "")], False))
    return out


# ---------------------------------------------------------------------------------------------
# Metrics without answers.csv: one block, scaling.csv and runs.csv as they are


def _from_scaling(
    keys: list[Key],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    issues: dict[Key, list[str]],
) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        name = "/".join(key)
        sc = scaling_by_key.get(key, {})
        growth = number(sc.get("growth"))
        if not math.isfinite(growth):
            reason = (
                sc.get("note")
                or ", ".join(i for i in issues.get(key, []) if not i.startswith("scaling"))
                or "no alone and co-located pair"
            )
            out.append(_sentence([(f"{name}: no scaling result ({reason}).", "")], True))
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
        out.append(_sentence([(text, "")], warn))

    effs = [
        ("/".join(k), number(scaling_by_key[k].get("scaling_efficiency")))
        for k in keys
        if k in scaling_by_key and is_finite(scaling_by_key[k].get("scaling_efficiency"))
    ]
    if len(effs) > 1:
        best = max(effs, key=lambda e: e[1])
        worst = min(effs, key=lambda e: e[1])
        text = (
            f"Best scaling: {best[0]} (efficiency {fmt_pct(best[1])}); "
            f"worst: {worst[0]} ({fmt_pct(worst[1])})."
        )
        out.append(_sentence([(text, "")], False))
    return out
