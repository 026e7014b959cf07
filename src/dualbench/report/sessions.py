"""What each measuring session says beside its verdict (sessions.csv): how many rounds it ran,
how long it took, why it stopped and how wide its widest verdict-bearing interval was. Where
a verdict is inconclusive because the session's budget ran out, the verdict says so, with the
half-width it reached, so that "inconclusive" is never read as "no interference"."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dualbench.report.estimates import Key


def session_lookup(sessions: pd.DataFrame | None) -> dict[Key, dict[str, Any]]:
    """{(scenario, precision): sessions.csv's row}; empty without the table (metrics written
    before sessions existed)."""
    if sessions is None or sessions.empty:
        return {}
    return {(r["scenario"], r["precision"]): r for r in sessions.to_dict("records")}


def _percent(half_width) -> str:
    try:
        value = float(half_width)
    except (TypeError, ValueError):
        return "no interval"
    return f"±{100 * value:.1f}%" if math.isfinite(value) else "no interval"


def session_note(row: dict[str, Any] | None) -> dict[str, str]:
    """{"short": the verdict table's cell, "text": the sentence of the verdict block}."""
    if row is None:
        return {"short": "–", "text": ""}
    widest = _percent(row["worst_half_width"])
    rounds = int(row["rounds"])
    short = f"{rounds} rounds · {float(row['seconds']):.0f} s · widest {widest}"
    text = (
        f"Measured in {rounds} rounds ({int(row['trials'])} trials) in "
        f"{float(row['seconds']):.0f} s, {100 * float(row['inside_share']):.0f}% of it inside "
        f"trial windows; stopped: {row['stopped']}; the widest verdict-bearing interval is "
        f"{widest} ({row['worst_answer'] or '–'}; "
        f"target ±{100 * float(row['target_half_width']):g}%)"
    )
    return {"short": short, "text": text}


def budget_verdict(row: dict[str, Any] | None) -> str | None:
    """The words of an inconclusive verdict whose session ran out of budget (None otherwise):
    "inconclusive at ±x% after n rounds (budget spent)"."""
    if row is None or row["stopped"] != "budget spent":
        return None
    reached = _percent(row["worst_half_width"])
    return f"inconclusive at {reached} after {int(row['rounds'])} rounds (budget spent)"


def annotate(cards: list[dict[str, Any]], sessions: pd.DataFrame | None) -> None:
    """Each verdict of ``cards`` (dualbench.report.verdicts) with its session's note; an
    inconclusive one whose session spent its budget says how far it got."""
    lookup = session_lookup(sessions)
    for card in cards:
        for entry in card["keys"]:
            row = lookup.get((card["scenario"], entry["precision"]))
            entry["session"] = session_note(row)
            words = budget_verdict(row)
            if entry["kind"] == "inconclusive" and words:
                entry["verdict"] = words
