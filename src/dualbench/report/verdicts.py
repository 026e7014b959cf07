"""The report's first screen: a verdict per scenario × precision that answers the mission's
questions before any table — how much the added models give, who slows whom by how much,
which resource is the wall, what INT4 buys — each figure with its interval, coloured by what
it means. Nothing is computed here: the figures and verdicts are answers.csv's (Estimates),
the wall is dualbench.report.wall's and the INT4 ratios are the INT4 section's rows.

The verdict of a scenario × precision comes from its slowdown answers (throughput and TPOT
p50) of each model co-located with every other, as dualbench.analysis.answers judged them:
- "interference detected" (``detected``): any verdict is an effect (slower or faster);
- "no interference detected" (``clear``): every verdict is equivalence, within the margin;
- "inconclusive" (``inconclusive``): otherwise; "(one block)" where there is no interval;
- "not judged" (``unjudged``): no slowdown answer (one model, no valid pair, metrics
  written before answers.csv existed).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dualbench.config.vocabulary import COLOCATED
from dualbench.report.estimates import Estimates, Key
from dualbench.report.format import DASH
from dualbench.report.int4 import SUM_SUFFIX
from dualbench.report.layouts import members, slot_names
from dualbench.report.wall import SLOWDOWN_ANSWERS, wall_reason
from dualbench.report.wall_regime import alone_regime, regime_text, regime_words

# What limits a scenario, in a few words, by the kind of wall.wall_reason; with bandwidth to
# spare ("room"), the alone runs' regime names it ("below both roofs, bandwidth to spare").
LIMITS = {
    "wall": "memory bandwidth",
    "other": "a shared resource besides bandwidth",
}
VERDICTS = {
    "detected": "interference detected",
    "clear": "no interference detected",
    "inconclusive": "inconclusive",
    "unjudged": "not judged",
}


def key_verdict(est: Estimates, key: Key, names: list[str]) -> tuple[str, str]:
    """(words, kind) of ``key``'s verdict; kind is a VERDICTS key."""
    kinds = [
        row["verdict_kind"]
        for answer in SLOWDOWN_ANSWERS
        for slot in names
        if (row := est.get(key, answer, f"{COLOCATED}/{slot}")) is not None
    ]
    kinds = [k for k in kinds if k in ("effect", "equivalent", "inconclusive", "one repeat")]
    if not kinds:
        return VERDICTS["unjudged"], "unjudged"
    if "effect" in kinds:
        return VERDICTS["detected"], "detected"
    if set(kinds) == {"equivalent"}:
        return VERDICTS["clear"], "clear"
    if set(kinds) == {"one repeat"}:
        return "inconclusive (one block)", "inconclusive"
    return VERDICTS["inconclusive"], "inconclusive"


def _adds(est: Estimates, key: Key, group: list[str]) -> dict[str, str]:
    """What the added models give: {"short": "+85% (+70…+99%)", "text": "a second model adds
    +85% (+70…+99%) total throughput (V1 81.6 + 85.1 → V2 154.6 tok/s)"}; dashes without a
    growth answer."""
    if len(group) < 2 or est.n(key, "growth_per_model", COLOCATED) <= 0:
        return {"short": DASH, "text": ""}
    growth = est.interval(key, "growth_per_model", COLOCATED)[0]
    who = "A second model" if len(group) == 2 else "Each added model"
    short = est.figure(key, "growth_per_model", COLOCATED, "growth")
    if growth >= 0:
        gives = f"adds {short}"
    else:
        gives = f"takes {est.figure(key, 'growth_per_model', COLOCATED, 'pct', negated=True)} off"
    v1 = " + ".join(est.figure(key, "v1", s, "tok") for s in group)
    total = est.figure(key, "v_total", COLOCATED, "tok")
    text = f"{who} {gives} total throughput (V1 {v1} → V{len(group)} {total} tok/s)"
    return {"short": short, "text": text}


def _slowdowns(est: Estimates, key: Key, group: list[str]) -> list[dict[str, Any]]:
    """Per model: its throughput slowdown co-located (alone ÷ co-located) as (text, CSS class)
    parts: the figure with its interval and the verdict coloured by kind (Estimates.judged);
    with one block the figure alone, as the verdict says "one block" once."""
    return [
        {
            "slot": slot,
            "parts": est.judged(key, "slowdown_throughput", f"{COLOCATED}/{slot}", "ratio"),
        }
        for slot in (group if len(group) > 1 else [])
    ]


def wall_brief(
    key: Key, runs: pd.DataFrame, calibration: pd.DataFrame, est: Estimates
) -> dict[str, str]:
    """What limits ``key``: {"limit": a few words (LIMITS' values, the regime where bandwidth
    is to spare, or "unknown"), "regime": the alone runs' regime and utilisation, "reason":
    the wall sentence's reason}. ``runs`` as wall.wall_section takes them."""
    k = len(members(COLOCATED, slot_names(runs)))
    reason, kind = wall_reason(runs, calibration, est, key, k)
    found = alone_regime(runs, key)
    if kind == "room":
        regime = regime_words(found["regime"]) if found else ""
        limit = f"{regime}, bandwidth to spare" if regime else "bandwidth to spare"
    else:
        limit = LIMITS.get(kind, "unknown")
    return {"limit": limit, "regime": regime_text(found), "reason": reason}


def _int4_line(int4: dict[str, Any] | None, scenario: str) -> str:
    """What INT4 buys in ``scenario``: the co-located models' summed throughput and memory
    ratios (or the first row's where there is no sum), from the INT4 section's rows."""
    if not int4:
        return ""
    rows = [r for r in int4["scenarios"] if r["scenario"] == scenario]
    if not rows:
        return ""
    row = next((r for r in rows if r["label"].endswith(SUM_SUFFIX)), rows[0])
    summed = row["label"].endswith(SUM_SUFFIX)
    who = row["label"].removesuffix(SUM_SUFFIX) + (", summed" if summed else "")
    memory = "" if row["memory_ratio"] == DASH else f", peak memory {row['memory_ratio']}"
    flag = "" if row["valid"] else " ⚠ a run is failed or invalid"
    return f"{who}: throughput {row['throughput_ratio']}{memory}{flag}"


def verdicts(
    keys: list[Key],
    est: Estimates,
    names: list[str],
    roofline_runs: pd.DataFrame,
    calibration: pd.DataFrame,
    wall_shown: bool,
    int4: dict[str, Any] | None,
    issues: dict[Key, list[str]],
) -> list[dict[str, Any]]:
    """One entry per scenario, in ``keys``' order: {"scenario", "keys": [one per precision:
    {"precision", "verdict", "kind", "adds", "slowdowns", "limit", "wall" (whether the wall
    is known), "regime", "reason", "issues"}], "int4"}. ``roofline_runs``: tables.
    prepare_roofline's runs; ``wall_shown``: whether the report has its wall section (else
    no wall line)."""
    group = members(COLOCATED, names)
    scenarios: dict[str, dict[str, Any]] = {}
    for key in keys:
        entry = scenarios.setdefault(
            key[0], {"scenario": key[0], "keys": [], "int4": _int4_line(int4, key[0])}
        )
        words, kind = key_verdict(est, key, names)
        brief = wall_brief(key, roofline_runs, calibration, est) if wall_shown else None
        entry["keys"].append(
            {
                "precision": key[1],
                "verdict": words,
                "kind": kind,
                "adds": _adds(est, key, group),
                "slowdowns": _slowdowns(est, key, group),
                "limit": brief["limit"] if brief else DASH,
                "wall": bool(brief),
                "regime": brief["regime"] if brief else "",
                "reason": brief["reason"] if brief else "",
                "issues": issues.get(key, []),
            }
        )
    return list(scenarios.values())
