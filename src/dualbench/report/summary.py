"""The report's Headline sentences (``answers``), per scenario × precision and free co-located
layout, all from the data: what the added models buy (growth, V1 → V_k), what they cost
(scaling efficiency, each model's slowdown, TTFT p50 alone → co-located), then the best and
worst scaling. The lockstep and single-thread layouts speak in the Schedules section
(dualbench.report.schedules).

The models are the data's (``names``: tables.slot_names). A key with one free co-located
layout (two models: ``colocated``) reads as it always has, "a second model adds …"; with
several, each sentence names its layout; with k > 2 models the growth is per added model,
(V_k / mean V1 − 1) / (k − 1). A key of a single model says so.

From answers.csv where the metrics have it (``Estimates``): each figure with its interval
over the blocks and each interference answer with its verdict, coloured by kind; a scenario ×
precision with one block says once that it has no interval. Metrics written before answers.csv
existed fall back to scaling.csv, interference.csv and runs.csv as they are.

A sentence is ``{"parts": [(text, CSS class)], "text": the whole, "warn": bool}``: the
template colours the parts with a class (the verdicts, estimates.verdict_class).
"""

from __future__ import annotations

import math
from typing import Any

from dualbench.config.vocabulary import COLOCATED, alone_layout
from dualbench.report.estimates import ONE_REPEAT, Estimates, verdict_class
from dualbench.report.format import DASH, fmt_fixed, fmt_pct, fmt_ratio, is_finite, number
from dualbench.report.headline import (
    InterferenceLookup,
    Key,
    RunLookup,
    ScalingLookup,
    key_layouts,
)
from dualbench.report.layouts import group_label, group_layouts_of, members

Parts = list[tuple[str, str]]


def _sentence(parts: Parts, warn: bool) -> dict[str, Any]:
    return {"parts": parts, "text": "".join(text for text, _ in parts), "warn": warn}


def _free(layouts: dict[Key, list[str]]) -> dict[Key, list[str]]:
    return {key: group_layouts_of(found, COLOCATED) for key, found in layouts.items()}


def _name(key: Key, layout: str, several: bool, names: list[str]) -> str:
    """ "short/bf16", or "short/bf16, A+B co-located" where the key has several layouts."""
    return "/".join(key) + (f", {group_label(layout, names)}" if several else "")


def _what_added(k: int) -> str:
    return "a second model" if k == 2 else "each added model"


def answers(
    keys: list[Key],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    interference_by_key: InterferenceLookup,
    issues: dict[Key, list[str]],
    estimates: Estimates,
    names: list[str],
) -> list[dict[str, Any]]:
    """One sentence per scenario × precision and free co-located layout that answers "what
    do more models buy and cost", then the best and worst scaling. ``issues``:
    tables.key_issues of each key; ``names``: the models of the data."""
    layouts = _free(key_layouts(keys, estimates, scaling_by_key))
    if estimates:
        return _from_estimates(keys, layouts, issues, estimates, names)
    return _from_scaling(keys, layouts, lookup, scaling_by_key, interference_by_key, issues, names)


def _single_model(key: Key, est: Estimates | None, lookup: RunLookup, name: str) -> dict:
    subject = f"{alone_layout(name)}/{name}"
    if est:
        figure = est.figure(key, "throughput", subject, "tok")
    else:
        figure = fmt_fixed(lookup.get((*key, alone_layout(name), name), {}).get("throughput_tok_s"))
    text = f"{'/'.join(key)}: one model, V1 {name} {figure} tok/s (nothing co-located)."
    return _sentence([(text, "")], figure == DASH)


# ---------------------------------------------------------------------------------------------
# From answers.csv


def _from_estimates(
    keys: list[Key],
    layouts: dict[Key, list[str]],
    issues: dict[Key, list[str]],
    est: Estimates,
    names: list[str],
) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        wrong = issues.get(key, [])
        if len(names) == 1:
            out.append(_single_model(key, est, {}, names[0]))
            continue
        several = len(layouts[key]) > 1
        for layout in layouts[key] or [None]:
            out.append(_estimate_sentence(key, layout, several, wrong, est, names))

    effs = [
        (key, lay, est.interval(key, "scaling_efficiency", lay)[0])
        for key in keys
        for lay in layouts[key]
        if est.n(key, "scaling_efficiency", lay) > 0
    ]
    effs = [e for e in effs if math.isfinite(e[2])]
    if len(effs) > 1:
        several = len({lay for _, lay, _ in effs}) > 1
        best = max(effs, key=lambda e: e[2])
        worst = min(effs, key=lambda e: e[2])
        text = (
            f"Best scaling: {_name(best[0], best[1], several, names)} (efficiency "
            f"{est.figure(best[0], 'scaling_efficiency', best[1], 'pct')}); worst: "
            f"{_name(worst[0], worst[1], several, names)} "
            f"({est.figure(worst[0], 'scaling_efficiency', worst[1], 'pct')})."
        )
        out.append(_sentence([(text, "")], False))
    return out


def _estimate_sentence(
    key: Key,
    layout: str | None,
    several: bool,
    wrong: list[str],
    est: Estimates,
    names: list[str],
) -> dict[str, Any]:
    name = _name(key, layout, several, names) if layout else "/".join(key)
    growth = est.interval(key, "growth_per_model", layout)[0] if layout else math.nan
    if not layout or est.n(key, "growth_per_model", layout) <= 0 or not math.isfinite(growth):
        reason = "; ".join(wrong) or "no alone and co-located pair"
        return _sentence([(f"{name}: no scaling result ({reason}).", "")], True)
    group = members(layout, names)
    k = len(group)
    parts: Parts = [(name, "")]
    if est.blocks(key) == 1:
        parts += [(" (", ""), (ONE_REPEAT, verdict_class("one repeat")), (")", "")]
    on_average = "" if k == 2 else " on average"
    if growth >= 0:
        figure = est.figure(key, "growth_per_model", layout, "growth")
        gained = f"adds {figure} total throughput{on_average}"
    else:
        fall = est.figure(key, "growth_per_model", layout, "pct", negated=True)
        gained = f"lowers total throughput by {fall}{on_average}"
    v1 = ", ".join(f"{s} {est.figure(key, 'v1', s, 'tok')}" for s in group)
    total = est.figure(key, "v_total", layout, "tok")
    parts.append(
        (
            f": {_what_added(k)} {gained} (V1 {v1} → V{k} {total} tok/s); scaling efficiency ",
            "",
        )
    )
    parts += est.judged(key, "scaling_efficiency", layout, "pct")
    for i, s in enumerate(group):
        parts.append((f"; {s} slows " if i == 0 else f", {s} ", ""))
        parts += est.judged(key, "slowdown_throughput", f"{layout}/{s}", "ratio")
    parts.append((".", ""))
    ttft: Parts = []
    for s in group:
        alone = est.figure(key, "ttft_p50", f"{alone_layout(s)}/{s}", "ms")
        co = est.figure(key, "ttft_p50", f"{layout}/{s}", "ms")
        if DASH in (alone, co):
            continue
        ttft.append(((", " if ttft else " TTFT p50 ") + f"{s} {alone} → {co} ms", ""))
        words, kind = est.verdict(key, "slowdown_ttft_p50", f"{layout}/{s}")
        if words:
            ttft += [(" — ", ""), (words, verdict_class(kind))]
    if ttft:
        parts += [*ttft, (".", "")]
    if wrong:
        parts.append((f" ⚠ {'; '.join(wrong)}.", ""))
    return _sentence(parts, bool(wrong))


# ---------------------------------------------------------------------------------------------
# Metrics without answers.csv: one block, scaling.csv, interference.csv and runs.csv as they are


def _from_scaling(
    keys: list[Key],
    layouts: dict[Key, list[str]],
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    interference_by_key: InterferenceLookup,
    issues: dict[Key, list[str]],
    names: list[str],
) -> list[dict[str, Any]]:
    out = []
    for key in keys:
        if len(names) == 1:
            out.append(_single_model(key, None, lookup, names[0]))
            continue
        several = len(layouts[key]) > 1
        for layout in layouts[key] or [None]:
            out.append(
                _scaling_sentence(
                    key, layout, several, lookup, scaling_by_key, interference_by_key, issues,
                    names,
                )
            )  # fmt: skip

    effs = [
        (key, lay, number(scaling_by_key[(*key, lay)].get("scaling_efficiency")))
        for key in keys
        for lay in layouts[key]
        if is_finite(scaling_by_key[(*key, lay)].get("scaling_efficiency"))
    ]
    if len(effs) > 1:
        several = len({lay for _, lay, _ in effs}) > 1
        best = max(effs, key=lambda e: e[2])
        worst = min(effs, key=lambda e: e[2])
        text = (
            f"Best scaling: {_name(best[0], best[1], several, names)} (efficiency "
            f"{fmt_pct(best[2])}); worst: {_name(worst[0], worst[1], several, names)} "
            f"({fmt_pct(worst[2])})."
        )
        out.append(_sentence([(text, "")], False))
    return out


def _scaling_sentence(
    key: Key,
    layout: str | None,
    several: bool,
    lookup: RunLookup,
    scaling_by_key: ScalingLookup,
    interference_by_key: InterferenceLookup,
    issues: dict[Key, list[str]],
    names: list[str],
) -> dict[str, Any]:
    name = _name(key, layout, several, names) if layout else "/".join(key)
    sc = scaling_by_key.get((*key, layout or ""), {})
    growth = number(sc.get("growth_per_model"))
    if not math.isfinite(growth):
        reason = (
            sc.get("note")
            or ", ".join(i for i in issues.get(key, []) if not i.startswith("scaling"))
            or "no alone and co-located pair"
        )
        return _sentence([(f"{name}: no scaling result ({reason}).", "")], True)
    group = members(layout, names)
    k = len(group)
    on_average = "" if k == 2 else " on average"
    gained = (
        f"{_what_added(k)} adds {fmt_pct(growth, signed=True)} total throughput{on_average}"
        if growth >= 0
        else f"{_what_added(k)} lowers total throughput by {fmt_pct(-growth)}{on_average}"
    )
    # "A slows 1.23×, B 1.19×"
    slowdowns = ", ".join(
        f"{slot}{' slows' if i == 0 else ''} "
        + fmt_ratio(interference_by_key.get((*key, layout, slot), {}).get("slowdown_throughput"))
        for i, slot in enumerate(group)
    )
    text = (
        f"{name}: {gained} (V1 {fmt_fixed(sc.get('v1_mean'))} → V{k} "
        f"{fmt_fixed(sc.get('v_total'))} tok/s, efficiency {fmt_pct(sc.get('scaling_efficiency'))}"
        f"); {slowdowns}."
    )
    ttft = []
    for slot in group:
        alone = lookup.get((*key, alone_layout(slot), slot), {}).get("ttft_ms_p50")
        co = lookup.get((*key, layout, slot), {}).get("ttft_ms_p50")
        if is_finite(alone) and is_finite(co):
            ttft.append(f"{slot} {fmt_fixed(alone)} → {fmt_fixed(co)} ms")
    if ttft:
        text += " TTFT p50 " + ", ".join(ttft) + "."
    warn = not sc.get("valid", False)
    if warn:
        text += f" Invalid: {sc.get('note') or 'depends on an invalid or failed run'}."
    return _sentence([(text, "")], warn)
