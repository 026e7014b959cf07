"""The report stage: the metrics tables in, one self-contained HTML document out (DESIGN §8).

Owns the figures (seaborn, rendered to PNG and embedded as data URIs), the headline answers
generated from the data, number formatting, and the context of the Jinja2 template
``templates/report.html.j2``. It reads only the documented outputs of the analysis stage
(runs.csv, scaling.csv, requests.csv, environment.json) and derives no metric of its own, so
the report cannot disagree with the data or with the definitions it prints.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import numpy as np
import pandas as pd

# Before pyplot is imported: reports are rendered on headless CI runners and cluster nodes.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

log = logging.getLogger(__name__)

DASH = "–"
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")
LAYOUT_ORDER = {"alone_A": 0, "alone_B": 1, "colocated": 2}

RUN_STR_COLUMNS = [
    "run_id", "scenario", "precision", "layout", "slot", "model", "backend", "device",
    "status", "error", "invalid_reasons", "warnings", "mem_source",
]  # fmt: skip
RUN_NUM_COLUMNS = [
    "prompt_tokens", "new_tokens", "batch_size",
    "window_start_s", "window_end_s", "window_s", "slot_start_s", "slot_end_s", "span_s",
    "overlap_frac", "requests", "output_tokens", "throughput_tok_s", "prefill_tok_s",
    "request_rate_rps",
    *[f"{m}_ms_{s}" for m in LATENCIES for s in STATS],
    "peak_mem_bytes", "mem_reserved_peak_bytes", "load_s", "warmup_s",
]  # fmt: skip
SCALING_STR_COLUMNS = ["scenario", "precision", "note"]
SCALING_NUM_COLUMNS = [
    "v1_A", "v1_B", "v1", "v2", "growth", "scaling_efficiency", "slowdown_A", "slowdown_B",
]  # fmt: skip
REQUEST_STR_COLUMNS = ["run_id", "scenario", "precision", "layout", "slot"]
REQUEST_NUM_COLUMNS = [
    "call", "index", "submit_s", "ttft_ms", "tpot_ms", "e2e_ms", "itl_ms_mean", "new_tokens",
]  # fmt: skip

# Alone bars light, co-located bars dark of the same hue, so each slot reads as one colour.
_PAIRED = sns.color_palette("Paired")
PALETTE = {
    "A alone": _PAIRED[0],
    "A co-located": _PAIRED[1],
    "B alone": _PAIRED[6],
    "B co-located": _PAIRED[7],
    "A+B co-located": "#555555",
}
SLOT_COLORS = {"A": _PAIRED[1], "B": _PAIRED[7]}
THROUGHPUT_BARS = ["A alone", "B alone", "A co-located", "B co-located", "A+B co-located"]
LATENCY_BARS = ["A alone", "A co-located", "B alone", "B co-located"]
DPI = 110


# ---------------------------------------------------------------------------------------------
# Number formatting (also registered as template filters)


def _num(value: Any) -> float:
    """``value`` as a float, NaN for anything missing or non-numeric."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: Any) -> bool:
    return math.isfinite(_num(value))


def fmt_fixed(value: Any, decimals: int = 1) -> str:
    """A number with ``decimals`` decimals and thousands separators; NaN as a dash."""
    v = _num(value)
    return f"{v:,.{decimals}f}" if math.isfinite(v) else DASH


def fmt_int(value: Any) -> str:
    v = _num(value)
    return f"{round(v):,}" if math.isfinite(v) else DASH


def fmt_ratio(value: Any) -> str:
    """A ratio such as a slowdown: two decimals and a multiplication sign."""
    v = _num(value)
    return f"{v:.2f}×" if math.isfinite(v) else DASH


def fmt_pct(value: Any, signed: bool = False) -> str:
    """A fraction as a percent: no decimal from 10% up, one below, where it still matters."""
    v = _num(value)
    if not math.isfinite(v):
        return DASH
    pct = 100 * v
    decimals = 0 if abs(pct) >= 9.95 else 1
    return f"{pct:+.{decimals}f}%" if signed else f"{pct:.{decimals}f}%"


def fmt_mib(value: Any) -> str:
    v = _num(value)
    return fmt_fixed(v / 2**20) if math.isfinite(v) else DASH


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


# ---------------------------------------------------------------------------------------------
# Input normalisation: CSV round trips turn "" into NaN and bools into strings; the report must
# read the same whether it gets the analysis DataFrames directly or the files.


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    if value is None or pd.isna(value):
        return False
    return bool(value)


def _normalise(
    df: pd.DataFrame | None, str_cols: list[str], num_cols: list[str], bool_cols: list[str]
) -> pd.DataFrame:
    df = pd.DataFrame() if df is None else df.copy()
    for col in str_cols:
        df[col] = df[col].fillna("").astype(str) if col in df else ""
    for col in num_cols:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else np.nan
    for col in bool_cols:
        df[col] = df[col].map(_as_bool).astype(bool) if col in df else False
    return df.reset_index(drop=True)


def _prepare_runs(runs: pd.DataFrame | None) -> pd.DataFrame:
    df = _normalise(runs, RUN_STR_COLUMNS, RUN_NUM_COLUMNS, ["valid"])
    df["status"] = df["status"].where(df["status"] != "", "unknown")
    df["label"] = [_label(lay, slot) for lay, slot in zip(df["layout"], df["slot"], strict=True)]
    df["ok"] = df["status"] == "ok"
    return df


def _label(layout: str, slot: str) -> str:
    if layout == "colocated":
        return f"{slot} co-located"
    if layout.startswith("alone"):
        return f"{slot} alone"
    return f"{slot} {layout}".strip()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        # An analysis stage with nothing to report (e.g. every run failed before any request)
        # may write a header-less file; the report still renders what exists.
        return pd.DataFrame()


# ---------------------------------------------------------------------------------------------
# Data views


def _keys(runs: pd.DataFrame, scaling: pd.DataFrame) -> list[tuple[str, str]]:
    """(scenario, precision) pairs in the order the pipeline produced them (config order)."""
    pairs = list(zip(runs["scenario"], runs["precision"], strict=True))
    pairs += list(zip(scaling["scenario"], scaling["precision"], strict=True))
    return list(dict.fromkeys(pairs))


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values))


def _lookup(runs: pd.DataFrame) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    return {
        (r["scenario"], r["precision"], r["layout"], r["slot"]): r for r in runs.to_dict("records")
    }


def _problems(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Every run × slot that failed or is invalid, with what to show about it."""
    rows = []
    for r in runs.to_dict("records"):
        if r["ok"] and r["valid"]:
            continue
        rows.append(
            {
                "run_id": r["run_id"],
                "scenario": r["scenario"],
                "precision": r["precision"],
                "slot": r["slot"],
                "label": r["label"],
                "status": r["status"],
                "failed": not r["ok"],
                "valid": r["valid"],
                "error": r["error"],
                "invalid_reasons": r["invalid_reasons"],
            }
        )
    return rows


def _key_problems(problems: list[dict[str, Any]], key: tuple[str, str]) -> list[str]:
    out = []
    for p in problems:
        if (p["scenario"], p["precision"]) != key:
            continue
        out.append(f"{p['label']}: {p['status']}" if p["failed"] else f"{p['label']}: invalid")
    return out


def _headline(
    keys: list[tuple[str, str]],
    lookup: dict[tuple[str, str, str, str], dict[str, Any]],
    scaling_by_key: dict[tuple[str, str], dict[str, Any]],
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        scenario, precision = key
        sc = scaling_by_key.get(key, {})

        def metric(layout: str, slot: str, col: str, key: tuple[str, str] = key) -> float:
            row = lookup.get((*key, layout, slot))
            return _num(row[col]) if row is not None else math.nan

        issues = _key_problems(problems, key)
        if sc and not sc.get("valid", True) and sc.get("note"):
            issues.append(f"scaling: {sc['note']}")
        rows.append(
            {
                "scenario": scenario,
                "precision": precision,
                "a_alone": fmt_fixed(metric("alone_A", "A", "throughput_tok_s")),
                "b_alone": fmt_fixed(metric("alone_B", "B", "throughput_tok_s")),
                "a_co": fmt_fixed(metric("colocated", "A", "throughput_tok_s")),
                "b_co": fmt_fixed(metric("colocated", "B", "throughput_tok_s")),
                "v1": fmt_fixed(sc.get("v1")),
                "v2": fmt_fixed(sc.get("v2")),
                "growth": fmt_pct(sc.get("growth"), signed=True),
                "efficiency": fmt_pct(sc.get("scaling_efficiency")),
                "slowdown_a": fmt_ratio(sc.get("slowdown_A")),
                "slowdown_b": fmt_ratio(sc.get("slowdown_B")),
                "latency": {
                    f"{m}_{slot}_{where}": fmt_fixed(metric(layout, slot, f"{m}_ms_p50"))
                    for m in ("ttft", "tpot")
                    for slot in ("A", "B")
                    for where, layout in (("alone", f"alone_{slot}"), ("co", "colocated"))
                },
                "issues": issues,
                "ok": not issues and bool(sc) and bool(sc.get("valid", False)),
            }
        )
    return rows


def _answers(
    keys: list[tuple[str, str]],
    lookup: dict[tuple[str, str, str, str], dict[str, Any]],
    scaling_by_key: dict[tuple[str, str], dict[str, Any]],
    problems: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One sentence per scenario × precision that answers "what does a second model buy and
    cost", then the best and worst scaling, all from the data."""
    answers = []
    for key in keys:
        name = "/".join(key)
        sc = scaling_by_key.get(key, {})
        growth = _num(sc.get("growth"))
        if not math.isfinite(growth):
            issues = _key_problems(problems, key)
            reason = sc.get("note") or ", ".join(issues) or "no alone and co-located pair"
            answers.append({"text": f"{name}: no scaling result ({reason}).", "warn": True})
            continue
        gained = (
            f"a second model adds {fmt_pct(growth, signed=True)} total throughput"
            if growth >= 0
            else f"a second model lowers total throughput by {fmt_pct(-growth)}"
        )
        text = (
            f"{name}: {gained} (V1 {fmt_fixed(sc.get('v1'))} → V2 {fmt_fixed(sc.get('v2'))} "
            f"tok/s, efficiency {fmt_pct(sc.get('scaling_efficiency'))}); "
            f"A slows {fmt_ratio(sc.get('slowdown_A'))}, B {fmt_ratio(sc.get('slowdown_B'))}."
        )
        ttft = []
        for slot in ("A", "B"):
            alone = lookup.get((*key, f"alone_{slot}", slot), {}).get("ttft_ms_p50")
            co = lookup.get((*key, "colocated", slot), {}).get("ttft_ms_p50")
            if _finite(alone) and _finite(co):
                ttft.append(f"{slot} {fmt_fixed(alone)} → {fmt_fixed(co)} ms")
        if ttft:
            text += " TTFT p50 " + ", ".join(ttft) + "."
        warn = not sc.get("valid", False)
        if warn:
            text += f" Invalid: {sc.get('note') or 'depends on an invalid or failed run'}."
        answers.append({"text": text, "warn": warn})

    effs = [
        ("/".join(k), _num(scaling_by_key[k].get("scaling_efficiency")))
        for k in keys
        if k in scaling_by_key and _finite(scaling_by_key[k].get("scaling_efficiency"))
    ]
    if len(effs) > 1:
        best = max(effs, key=lambda e: e[1])
        worst = min(effs, key=lambda e: e[1])
        answers.append(
            {
                "text": f"Best scaling: {best[0]} (efficiency {fmt_pct(best[1])}); "
                f"worst: {worst[0]} ({fmt_pct(worst[1])}).",
                "warn": False,
            }
        )
    return answers


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


def _details(
    runs: pd.DataFrame, scenarios: list[str], descriptions: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Per scenario, one table with a column per run × slot and a row per metric: alone and
    co-located values of a slot sit side by side, which is the comparison people make."""
    precisions = {p: i for i, p in enumerate(_ordered(runs["precision"]))}
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
                notes = [_clip(r["error"] or r["invalid_reasons"], 160) for r in records]
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            yield from _flatten(v, key + ".")
        elif isinstance(v, list | tuple):
            scalar = all(not isinstance(x, Mapping | list | tuple) for x in v)
            yield key, ", ".join(map(str, v)) if scalar else json.dumps(v, default=str)
        elif v is None:
            yield key, DASH
        else:
            yield key, str(v) if not isinstance(v, Mapping) else "{}"


# ---------------------------------------------------------------------------------------------
# Figures


def _png_uri(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    # No Software/date metadata: the same data gives a byte-identical report.
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(title: str, caption: str, draw: Callable[[], plt.Figure | str]) -> dict[str, Any]:
    """Run one figure function: it returns a Figure, or a sentence saying why there is none.

    A figure that raises becomes a note instead of aborting the report: the report is the last
    stage of a long pipeline, and the tables still carry every number.
    """
    fig_or_note: plt.Figure | str
    try:
        fig_or_note = draw()
    except Exception as exc:
        log.exception("figure %r failed", title)
        fig_or_note = f"This figure could not be drawn: {type(exc).__name__}: {exc}"
    if isinstance(fig_or_note, str):
        return {"title": title, "caption": caption, "uri": None, "note": fig_or_note}
    try:
        return {"title": title, "caption": caption, "uri": _png_uri(fig_or_note), "note": ""}
    finally:
        plt.close(fig_or_note)


def _flagged(keys: list[tuple[str, str]], problems: list[dict[str, Any]], scaling) -> set:
    bad = {(p["scenario"], p["precision"]) for p in problems}
    for r in scaling.to_dict("records"):
        if not r["valid"]:
            bad.add((r["scenario"], r["precision"]))
    return bad & set(keys)


def _tick(scenario: str, precision: str, flagged: set) -> str:
    return f"{scenario} ⚠" if (scenario, precision) in flagged else scenario


def _legend(fig: plt.Figure, labels: list[str], present: Iterable[str]) -> None:
    """One legend for all facets, in a strip reserved above them: built from the palette, so
    it lists every layout drawn in any facet, whatever each facet happens to contain."""
    present = set(present)
    shown = [lab for lab in labels if lab in present]
    handles = [Patch(facecolor=PALETTE[lab], label=lab) for lab in shown]
    strip = 0.45 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - strip))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(handles),
        frameon=False,
    )


def _fig_throughput(runs, scaling, scenarios, precisions, flagged) -> plt.Figure | str:
    rows = [
        {
            "scenario": r["scenario"],
            "precision": r["precision"],
            "bar": r["label"],
            "value": r["throughput_tok_s"],
        }
        for r in runs.to_dict("records")
    ]
    rows += [
        {
            "scenario": r["scenario"],
            "precision": r["precision"],
            "bar": "A+B co-located",
            "value": r["v2"],
        }
        for r in scaling.to_dict("records")
    ]
    data = pd.DataFrame(rows, columns=["scenario", "precision", "bar", "value"])
    data = data[data["bar"].isin(THROUGHPUT_BARS) & np.isfinite(data["value"].astype(float))]
    if data.empty:
        return "No run produced a throughput figure."
    fig, axes = plt.subplots(
        1,
        len(precisions),
        figsize=(max(7.0, 2.6 * len(scenarios)) * len(precisions) ** 0.8, 4.0),
        sharey=True,
        squeeze=False,
    )
    for ax, precision in zip(axes[0], precisions, strict=True):
        sub = data[data["precision"] == precision]
        if sub.empty:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.barplot(
                sub,
                x="scenario",
                y="value",
                hue="bar",
                order=scenarios,
                hue_order=THROUGHPUT_BARS,
                palette=PALETTE,
                errorbar=None,
                legend=False,
                ax=ax,
            )
            for container in ax.containers:
                ax.bar_label(container, fmt="%.0f", fontsize=7, padding=1)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([_tick(s, precision, flagged) for s in scenarios])
        ax.set_title(precision if len(precisions) > 1 else "")
        ax.set_xlabel("")
        ax.set_ylabel("output tokens/s")
    _legend(fig, THROUGHPUT_BARS, data["bar"])
    return fig


def _fig_latency(runs, scenarios, precisions, flagged) -> plt.Figure | str:
    # Two rows per bar (p50 and p90) and estimator=min with a min..max interval: seaborn then
    # draws the bar at p50 and a whisker up to p90, aligned with its bar by seaborn itself.
    rows = []
    for r in runs.to_dict("records"):
        if r["label"] not in LATENCY_BARS:
            continue
        for metric in ("ttft", "tpot"):
            p50, p90 = r[f"{metric}_ms_p50"], r[f"{metric}_ms_p90"]
            if not _finite(p50):
                continue
            base = {"scenario": r["scenario"], "precision": r["precision"], "bar": r["label"]}
            rows.append({**base, "metric": metric, "value": p50})
            if _finite(p90) and p90 >= p50:
                rows.append({**base, "metric": metric, "value": p90})
    data = pd.DataFrame(rows, columns=["scenario", "precision", "bar", "metric", "value"])
    if data.empty:
        return "No run produced latency figures."
    fig, axes = plt.subplots(
        2,
        len(precisions),
        figsize=(max(7.0, 2.2 * len(scenarios)) * len(precisions) ** 0.8, 6.0),
        sharex=True,
        squeeze=False,
    )
    for col, precision in enumerate(precisions):
        for row, metric in enumerate(("ttft", "tpot")):
            ax = axes[row][col]
            sub = data[(data["precision"] == precision) & (data["metric"] == metric)]
            if sub.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.barplot(
                    sub,
                    x="scenario",
                    y="value",
                    hue="bar",
                    order=scenarios,
                    hue_order=LATENCY_BARS,
                    palette=PALETTE,
                    estimator="min",
                    errorbar=lambda v: (v.min(), v.max()),
                    capsize=0.2,
                    err_kws={"linewidth": 1, "color": "#333333"},
                    legend=False,
                    ax=ax,
                )
            ax.set_xticks(range(len(scenarios)))
            ax.set_xticklabels([_tick(s, precision, flagged) for s in scenarios])
            ax.set_xlabel("")
            ax.set_ylabel(f"{metric.upper()} p50 (ms)")
            if row == 0 and len(precisions) > 1:
                ax.set_title(precision)
    _legend(fig, LATENCY_BARS, data["bar"])
    return fig


def _fig_scaling(scaling, keys, single_precision) -> plt.Figure | str:
    def name(s: str, p: str) -> str:
        return s if single_precision else f"{s}\n{p}"

    recs = {(r["scenario"], r["precision"]): r for r in scaling.to_dict("records")}
    eff, slow = [], []
    for key in keys:
        r = recs.get(key)
        if r is None:
            continue
        label = name(*key) + ("" if r["valid"] else " ⚠")
        if _finite(r["scaling_efficiency"]):
            eff.append({"key": label, "value": 100 * r["scaling_efficiency"]})
        for slot in ("A", "B"):
            if _finite(r[f"slowdown_{slot}"]):
                slow.append({"key": label, "slot": slot, "value": r[f"slowdown_{slot}"]})
    if not eff and not slow:
        return "No scenario has both alone and co-located results, so there is no scaling yet."
    order = _ordered([e["key"] for e in eff] + [s["key"] for s in slow])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(order) * 2), 3.6))
    if eff:
        sns.barplot(pd.DataFrame(eff), x="key", y="value", order=order, color="#4c8c6a", ax=ax1)
        for container in ax1.containers:
            ax1.bar_label(container, fmt="%.0f%%", fontsize=8, padding=1)
    ax1.axhline(100, color="#333333", lw=1, ls="--")
    ax1.axhline(50, color="#aa3333", lw=1, ls=":")
    for y, text in ((100, " no interference"), (50, " no gain")):
        ax1.text(1.0, y, text, transform=ax1.get_yaxis_transform(), va="center", fontsize=7)
    ax1.set_ylim(0, max([110.0] + [e["value"] * 1.1 for e in eff]))
    ax1.set_title("Scaling efficiency V2 / (V1_A + V1_B)")
    ax1.set_ylabel("%")
    ax1.set_xlabel("")
    if slow:
        sns.barplot(
            pd.DataFrame(slow),
            x="key",
            y="value",
            hue="slot",
            order=order,
            hue_order=["A", "B"],
            palette=SLOT_COLORS,
            ax=ax2,
        )
        for container in ax2.containers:
            ax2.bar_label(container, fmt="%.2f", fontsize=8, padding=1)
        ax2.legend(
            title="slot", frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0)
        )
    ax2.axhline(1.0, color="#333333", lw=1, ls="--")
    ax2.set_ylim(0, max([1.2] + [s["value"] * 1.15 for s in slow]))
    ax2.set_title("Slowdown: alone / co-located throughput")
    ax2.set_ylabel("×")
    ax2.set_xlabel("")
    for ax in (ax1, ax2):
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order)
    fig.tight_layout()
    return fig


def _fig_timeline(runs) -> plt.Figure | str:
    co = runs[runs["layout"] == "colocated"]
    run_ids = _ordered(co["run_id"])
    if not run_ids:
        return "No co-located runs."
    fig, axes = plt.subplots(
        len(run_ids), 1, figsize=(10.0, 0.3 + 1.15 * len(run_ids)), squeeze=False
    )
    for ax, run_id in zip(axes[:, 0], run_ids, strict=True):
        sel = co[co["run_id"] == run_id].sort_values("slot")
        slots = list(sel["slot"])
        drew = False
        for y, r in enumerate(sel.to_dict("records")):
            start, end = r["slot_start_s"], r["slot_end_s"]
            if _finite(start) and _finite(end):
                color = SLOT_COLORS.get(r["slot"], "#888888")
                ax.barh(y, end - start, left=start, height=0.55, color=color)
                drew = True
            else:
                note = f"{r['slot']}: {r['status']}, no timing"
                ax.text(
                    0.01, y, note, va="center", color="#aa3333", transform=ax.get_yaxis_transform()
                )
        starts = sel["window_start_s"].dropna()
        ends = sel["window_end_s"].dropna()
        if len(starts) and len(ends):
            ax.axvspan(starts.max(), ends.min(), color="#4c8c6a", alpha=0.18, lw=0)
        ax.set_yticks(range(len(slots)))
        ax.set_yticklabels(slots)
        ax.set_ylim(len(slots) - 0.4, -0.6)  # slot A on top
        ax.set_xlim(left=0)
        overlap = sel["overlap_frac"].dropna()
        window = sel["window_s"].dropna()
        title = run_id
        if len(window):
            title += f" · window {fmt_fixed(window.iloc[0], 2)} s"
        if len(overlap):
            title += f" · overlap {fmt_pct(overlap.iloc[0])}"
        ax.set_title(title, fontsize=9, loc="left")
        if not drew:
            ax.set_xticks([])
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("seconds since run start (shaded: co-located window)")
    fig.tight_layout()
    return fig


def _fig_ttft_distribution(requests, keys, single_precision) -> plt.Figure | str:
    if requests.empty:
        return "No per-request data."
    req = requests[requests["in_window"] & np.isfinite(requests["ttft_ms"])].copy()
    if req.empty:
        return "No request finished inside a measurement window."
    req["bar"] = [_label(lay, s) for lay, s in zip(req["layout"], req["slot"], strict=True)]
    req = req[req["bar"].isin(LATENCY_BARS)]
    req["key"] = req["scenario"] if single_precision else req["scenario"] + "/" + req["precision"]
    order = _ordered(k[0] if single_precision else "/".join(k) for k in keys)
    order = [k for k in order if k in set(req["key"])]
    if not order:
        return "No request finished inside a measurement window."
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(order)), 3.8))
    with warnings.catch_warnings():
        # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``; nothing for us to change.
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        sns.boxplot(
            req,
            x="key",
            y="ttft_ms",
            hue="bar",
            order=order,
            hue_order=LATENCY_BARS,
            palette=PALETTE,
            fliersize=1.5,
            linewidth=0.8,
            legend=False,
            ax=ax,
        )
    lo, hi = req["ttft_ms"].min(), req["ttft_ms"].max()
    if lo > 0 and hi / lo > 30:  # mixed short/long prompts span decades
        ax.set_yscale("log")
    ax.set_xlabel("")
    ax.set_ylabel("TTFT (ms)")
    _legend(fig, LATENCY_BARS, req["bar"])
    return fig


# ---------------------------------------------------------------------------------------------
# Rendering


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dualbench.report", "templates"),
        # Explicitly on: select_autoescape keys on the file extension, and ".j2" is not ".html".
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(tok=fmt_fixed, ms=fmt_fixed, ratio=fmt_ratio, pct=fmt_pct)
    return env


def render_report(
    runs: pd.DataFrame,
    scaling: pd.DataFrame,
    requests: pd.DataFrame,
    environment: dict,
    title: str,
    scenario_descriptions: dict[str, str],
    definitions: list[tuple[str, str]],
    precision_table: pd.DataFrame | None = None,
    int4_table: pd.DataFrame | None = None,
    energy_table: pd.DataFrame | None = None,
    telemetry_table: pd.DataFrame | None = None,
    hardware_notes: list[str] | None = None,
) -> str:
    """The whole report as one self-contained HTML document (no network reference).

    ``hardware_notes``: what validation resolved against the machine (native16's dtype and
    why, dtypes the device only emulates), shown first, beside every run's own warnings."""
    from dualbench.report.int4 import int4_section
    from dualbench.report.telemetry import telemetry_section

    runs = _prepare_runs(runs)
    scaling = _normalise(scaling, SCALING_STR_COLUMNS, SCALING_NUM_COLUMNS, ["valid"])
    requests = _normalise(requests, REQUEST_STR_COLUMNS, REQUEST_NUM_COLUMNS, ["in_window"])
    environment = dict(environment or {})
    descriptions = dict(scenario_descriptions or {})

    keys = _keys(runs, scaling)
    scenarios = _ordered(k[0] for k in keys)
    precisions = _ordered(k[1] for k in keys)
    lookup = _lookup(runs)
    scaling_by_key = {(r["scenario"], r["precision"]): r for r in scaling.to_dict("records")}
    problems = _problems(runs)
    scaling_problems = [r for r in scaling.to_dict("records") if not r["valid"]]
    flagged = _flagged(keys, problems, scaling)
    single = len(precisions) <= 1

    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        figures = [
            _figure(
                "Throughput",
                "Output tokens/s of each slot alone and co-located, and the co-located total "
                "(V2). ⚠ marks a scenario with a failed or invalid run.",
                lambda: _fig_throughput(runs, scaling, scenarios, precisions or [""], flagged),
            ),
            _figure(
                "Latency",
                "TTFT and TPOT p50 per slot, alone and co-located; whiskers reach p90.",
                lambda: _fig_latency(runs, scenarios, precisions or [""], flagged),
            ),
            _figure(
                "Scaling and interference",
                "Scaling efficiency (100% = no interference, 50% = the second model adds "
                "nothing) and per-model slowdown (1.00 = no slowdown).",
                lambda: _fig_scaling(scaling, keys, single),
            ),
            _figure(
                "Overlap of co-located runs",
                "Per slot, first submit to last token; shaded, the co-located window in which "
                "tokens count.",
                lambda: _fig_timeline(runs),
            ),
            _figure(
                "TTFT distribution",
                "TTFT of every request that finished inside its run's window.",
                lambda: _fig_ttft_distribution(requests, keys, single),
            ),
        ]

    env_rows = list(_flatten({k: v for k, v in environment.items() if k != "config"}))
    config = environment.get("config")
    context = {
        "title": title,
        "summary": {
            "runs": runs["run_id"].nunique(),
            "scenarios": scenarios,
            "precisions": precisions,
            "backends": _ordered(b for b in runs["backend"] if b),
            "devices": _ordered(d for d in runs["device"] if d),
            "models": _ordered(
                f"{s}: {m}" for s, m in zip(runs["slot"], runs["model"], strict=True) if m
            ),
        },
        "n_failed": sum(p["failed"] for p in problems),
        "n_invalid": sum(not p["failed"] for p in problems),
        "problems": problems,
        "scaling_problems": scaling_problems,
        "answers": _answers(keys, lookup, scaling_by_key, problems),
        "headline": _headline(keys, lookup, scaling_by_key, problems),
        "scenario_list": [(s, descriptions.get(s, "")) for s in scenarios],
        "figures": figures,
        "details": _details(runs, scenarios, descriptions),
        "int4": int4_section(precision_table, int4_table),
        "telemetry": telemetry_section(runs, energy_table, telemetry_table),
        "hardware_notes": _ordered(
            [
                *(hardware_notes or []),
                *(w for cell in runs["warnings"] if cell for w in cell.split("; ")),
            ]
        ),
        "env_rows": env_rows,
        "config_json": (
            json.dumps(config, indent=2, sort_keys=True, default=str) if config is not None else ""
        ),
        "definitions": [(str(n), str(t)) for n, t in (definitions or [])],
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    metrics_dir: Path,
    out_html: Path,
    title: str,
    scenario_descriptions: dict,
    definitions: list[tuple[str, str]],
    hardware_notes: list[str] | None = None,
) -> None:
    """Read the tables of dualbench.analysis from ``metrics_dir`` and write the report to
    ``out_html``."""
    metrics_dir, out_html = Path(metrics_dir), Path(out_html)
    html = render_report(
        runs=_read_csv(metrics_dir / "runs.csv"),
        scaling=_read_csv(metrics_dir / "scaling.csv"),
        requests=_read_csv(metrics_dir / "requests.csv"),
        environment=json.loads((metrics_dir / "environment.json").read_text()),
        title=title,
        scenario_descriptions=scenario_descriptions,
        definitions=definitions,
        hardware_notes=hardware_notes,
        # Optional: metrics written before INT4 and telemetry existed lack these tables.
        **{
            arg: _read_csv(metrics_dir / file)
            for arg, file in (
                ("precision_table", "precisions.csv"),
                ("int4_table", "int4.csv"),
                ("energy_table", "energy.csv"),
                ("telemetry_table", "telemetry.csv"),
            )
            if (metrics_dir / file).is_file()
        },
    )
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(html, encoding="utf-8")
