"""answers.csv as the report reads it: each answer of a scenario × precision over its blocks,
looked up by name and subject, written with its interval and, for the interference answers,
with its verdict in words.

``Estimates`` wraps the table as tables.prepare_answers returns it; an empty one (metrics
written before answers.csv existed) is falsy, and the report then falls back to the
per-block tables. Nothing here computes: the estimate, its interval, ``n`` and the verdict all
come from the table (dualbench.analysis.answers); this module only picks and formats them.

Where a scenario × precision has one block, its answers have no interval: the report says so
once per row or sentence (``ONE_REPEAT``, ``blocks_note``), not on every number. Where an
answer pooled fewer blocks than its scenario × precision has (a block with an invalid run is
left out), its figure carries "n = …".
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dualbench.report.format import DASH, fmt_estimate, fmt_pct, number

Key = tuple[str, str]

ONE_REPEAT = "one round: no interval"
# The verdicts that the report shows beside a figure ("one repeat" is said once per row, not
# on every number); their CSS classes are verdict_class's.
SHOWN_VERDICTS = ("equivalent", "effect", "inconclusive", "no data")


def verdict_class(kind: str) -> str:
    """The CSS class of a verdict kind: "v-equivalent", "v-one-repeat"."""
    return "v-" + kind.replace(" ", "-") if kind else ""


def blocks_note(n: int) -> str:
    """What a row says about its blocks: "3 blocks", ``ONE_REPEAT`` or "no data"."""
    if n <= 0:
        return "no data"
    return ONE_REPEAT if n == 1 else f"{n} blocks"


def cell(text: str, cls: str = "num", **extra: Any) -> dict[str, Any]:
    """A cell of a table the template renders generically: its text and CSS class, with
    optional ``strong``, ``verdict`` (words) and ``kind`` (the verdict's CSS class)."""
    return {"text": text, "cls": cls, "strong": False, "verdict": "", "kind": "", **extra}


class Estimates:
    """The answers of answers.csv by (scenario, precision, answer, subject)."""

    def __init__(self, answers: pd.DataFrame) -> None:
        self._rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._blocks: dict[Key, int] = {}
        for r in answers.to_dict("records"):
            key = (r["scenario"], r["precision"])
            self._rows[(*key, r["answer"], r["subject"])] = r
            self._blocks[key] = max(self._blocks.get(key, 0), int(r["n"]))
        confidences = [c for c in answers.get("confidence", []) if math.isfinite(number(c))]
        self.confidence = float(confidences[0]) if confidences else 0.95

    def __bool__(self) -> bool:
        return bool(self._rows)

    @property
    def confidence_text(self) -> str:
        """The intervals' confidence as the report writes it: "95%"."""
        return fmt_pct(self.confidence)

    def has_intervals(self) -> bool:
        """Whether any answer has an interval (some scenario × precision has two blocks)."""
        return any(n >= 2 for n in self._blocks.values())

    def blocks(self, key: Key) -> int:
        """The most blocks any answer of ``key`` pooled (0: no answer or no valid block)."""
        return self._blocks.get(key, 0)

    def get(self, key: Key, answer: str, subject: str) -> dict[str, Any] | None:
        return self._rows.get((*key, answer, subject))

    def rows(self, answer_prefix: str = "") -> list[dict[str, Any]]:
        """Every answer whose name starts with ``answer_prefix``, in the table's order."""
        return [r for r in self._rows.values() if r["answer"].startswith(answer_prefix)]

    def subjects(self, key: Key, answer: str) -> list[str]:
        """The subjects ``key`` has an ``answer`` for, in the table's order."""
        return [s for (sc, p, a, s) in self._rows if (sc, p) == key and a == answer]

    def n(self, key: Key, answer: str, subject: str) -> int:
        row = self.get(key, answer, subject)
        return int(row["n"]) if row else 0

    def interval(self, key: Key, answer: str, subject: str) -> tuple[float, float, float]:
        """(estimate, lo, hi); lo and hi NaN where the answer has no interval (n < 2); all
        NaN where there is no such answer."""
        row = self.get(key, answer, subject)
        if row is None:
            return (math.nan, math.nan, math.nan)
        if row["n"] < 2:
            return (number(row["estimate"]), math.nan, math.nan)
        return (number(row["estimate"]), number(row["lo"]), number(row["hi"]))

    def figure(self, key: Key, answer: str, subject: str, kind: str, negated: bool = False) -> str:
        """The answer's estimate with its interval in the report's format (format.
        fmt_estimate's ``kind``), "n = …" where it pooled fewer blocks than ``key`` has.
        ``negated``: written with the sign turned (a fall of 12% rather than a -12% growth)."""
        row = self.get(key, answer, subject)
        if row is None or row["n"] <= 0:
            return DASH
        estimate, lo, hi = self.interval(key, answer, subject)
        if negated:
            estimate, lo, hi = -estimate, -hi, -lo
        note = f"n = {row['n']}" if row["n"] < self.blocks(key) else ""
        return fmt_estimate(estimate, lo, hi, kind, note)

    def verdict(self, key: Key, answer: str, subject: str) -> tuple[str, str]:
        """(words, kind) of an interference answer's verdict where the report shows one (see
        SHOWN_VERDICTS), else ("", "")."""
        row = self.get(key, answer, subject)
        if row is None or row["verdict_kind"] not in SHOWN_VERDICTS:
            return ("", "")
        return (row["verdict"], row["verdict_kind"])

    def cell(self, key: Key, answer: str, subject: str, kind: str, **extra: Any) -> dict:
        """A table cell: the figure with its interval, and the verdict under it."""
        words, verdict_kind = self.verdict(key, answer, subject)
        return cell(
            self.figure(key, answer, subject, kind),
            verdict=words,
            kind=verdict_class(verdict_kind),
            **extra,
        )

    def judged(self, key: Key, answer: str, subject: str, kind: str) -> list[tuple[str, str]]:
        """A figure in a sentence, as (text, CSS class) parts: the figure, then its verdict
        coloured by kind. An effect's verdict already is the ratio with its interval, so for
        a ratio it stands in place of the figure; "no data" stands in place of a dash."""
        figure = self.figure(key, answer, subject, kind)
        words, verdict_kind = self.verdict(key, answer, subject)
        if not words:
            return [(figure, "")]
        if verdict_kind == "no data":
            return [(words, verdict_class(verdict_kind))]
        if verdict_kind == "effect":
            if kind == "ratio":
                return [(words, verdict_class(verdict_kind))]
            words = f"effect {words}"
        return [(figure, ""), (" — ", ""), (words, verdict_class(verdict_kind))]
