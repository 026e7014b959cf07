"""Number and text formatting for the report, and the NaN-tolerant readers it formats with.

Every value the template shows arrives as a string from here: a missing or non-numeric number
reads as a dash (``DASH``), never as "nan". ``FORMATTERS`` maps the kinds of the detail tables
(dualbench.report.details) to their formatter; render.py registers some as template filters.
``fmt_estimate`` writes an estimate with its interval in the kinds of ``ESTIMATE_FORMATTERS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

DASH = "–"


# ---------------------------------------------------------------------------------------------
# Readers: a cell of a table as a float, a bool or a text, whatever its missing value looks like


def number(value: Any) -> float:
    """``value`` as a float, NaN for anything missing or non-numeric."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def is_finite(value: Any) -> bool:
    """Whether ``value`` reads as a finite number."""
    return math.isfinite(number(value))


def as_bool(value: Any) -> bool:
    """A bool cell: CSV round trips turn bools into strings ("True") and missing into NaN."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    if value is None or pd.isna(value):
        return False
    return bool(value)


def text_or(value: Any, empty: str = DASH) -> str:
    """A text cell, or ``empty`` for NaN (an empty cell read back), None and ""."""
    return empty if value is None or pd.isna(value) or value == "" else str(value)


# ---------------------------------------------------------------------------------------------
# Formatters (also registered as template filters)


def fmt_fixed(value: Any, decimals: int = 1) -> str:
    """A number with ``decimals`` decimals and thousands separators; NaN as a dash."""
    v = number(value)
    return f"{v:,.{decimals}f}" if math.isfinite(v) else DASH


def fmt_int(value: Any) -> str:
    v = number(value)
    return f"{round(v):,}" if math.isfinite(v) else DASH


def fmt_ratio(value: Any) -> str:
    """A ratio such as a slowdown: two decimals and a multiplication sign."""
    v = number(value)
    return f"{v:.2f}×" if math.isfinite(v) else DASH


def fmt_pct(value: Any, signed: bool = False) -> str:
    """A fraction as a percent: no decimal from 10% up, one below, where it still matters."""
    v = number(value)
    if not math.isfinite(v):
        return DASH
    pct = 100 * v
    decimals = 0 if abs(pct) >= 9.95 else 1
    return f"{pct:+.{decimals}f}%" if signed else f"{pct:.{decimals}f}%"


def fmt_mib(value: Any) -> str:
    v = number(value)
    return fmt_fixed(v / 2**20) if math.isfinite(v) else DASH


def fmt_change(ratio: Any) -> str:
    """A new/old ratio with the change it means: 0.38× (-62%)."""
    v = number(ratio)
    if not math.isfinite(v):
        return DASH
    return f"{fmt_ratio(v)} ({fmt_pct(v - 1, signed=True)})"


def _unsuffixed(text: str, suffix: str) -> str:
    return text.removesuffix(suffix)


def fmt_bounds(lo: Any, hi: Any, kind: str) -> str:
    """An interval's bounds in the unit of ``kind``, the unit written once: "0.85–1.21",
    "91–108%", "+82…+117%" (signed bounds take an ellipsis, so a minus sign cannot read as a
    dash); "" when either bound is missing."""
    if not (is_finite(lo) and is_finite(hi)):
        return ""
    fmt = ESTIMATE_FORMATTERS[kind]
    if kind == "growth":
        return f"{_unsuffixed(fmt(lo), '%')}…{fmt(hi)}"
    if kind == "pct":
        return f"{_unsuffixed(fmt(lo), '%')}–{fmt(hi)}"
    if kind == "ratio":
        return f"{_unsuffixed(fmt(lo), '×')}–{_unsuffixed(fmt(hi), '×')}"
    return f"{fmt(lo)}–{fmt(hi)}"


def fmt_estimate(
    value: Any, lo: Any = None, hi: Any = None, kind: str = "tok", note: str = ""
) -> str:
    """An estimate with its interval in parentheses: "1.02× (0.85–1.21)", "+98% (+82…+117%)",
    "127.1 (111.3–145.1)"; the estimate alone where the interval is missing (one block).
    ``note`` (e.g. "n = 2") joins the parentheses. NaN reads as a dash."""
    text = ESTIMATE_FORMATTERS[kind](value)
    if text == DASH:
        return DASH
    inside = [part for part in (fmt_bounds(lo, hi, kind), note) if part]
    return f"{text} ({', '.join(inside)})" if inside else text


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


FORMATTERS: dict[str, Callable[[Any], str]] = {
    "tok": fmt_fixed,
    "ms": fmt_fixed,
    "s": lambda v: fmt_fixed(v, 2),
    "rate": lambda v: fmt_fixed(v, 2),
    "int": fmt_int,
    "pct": fmt_pct,
    "mib": fmt_mib,
    "str": lambda v: str(v) if str(v) else DASH,
}

# Kinds of fmt_estimate: tok/s and ms with one decimal, tokens per joule with three, a ratio
# (1.02×), a ratio as a percent (scaling efficiency, 99%) and a signed change (growth, +98%).
ESTIMATE_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "tok": fmt_fixed,
    "ms": fmt_fixed,
    "tpj": lambda v: fmt_fixed(v, 3),
    "ratio": fmt_ratio,
    "pct": fmt_pct,
    "growth": lambda v: fmt_pct(v, signed=True),
}
