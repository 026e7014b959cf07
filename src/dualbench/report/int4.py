"""The report's "16-bit vs INT4" section: memory, speed and fidelity, from precisions.csv,
int4.csv and answers.csv (dualbench.analysis). Like the rest of the report it derives no metric
of its own: ratios and bytes come from the tables, this module only arranges and formats them.

Where answers.csv holds the INT4 ratios (``int4_<metric>_ratio``), the per-scenario table
shows them over the blocks with their intervals (``_answer_rows``); else int4.csv's ratios of
its one block (``_scenario_rows``).

Besides each model in each layout, int4.csv and the answers compare each group layout's sum
(throughput and memory of its models together): int4.csv's row of slot "A+B" (the models
joined by "+", analysis.layouts.sum_slot; "pair" in tables written for two models before any
number was allowed), an answer's subject "<layout>/A+B" or the group layout itself
(``_subject``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dualbench.analysis.columns import INT4_RATIOS
from dualbench.config.vocabulary import COLOCATED, SUBSET_SEPARATOR
from dualbench.report.estimates import Estimates, blocks_note
from dualbench.report.figures import embedded_figure, readable
from dualbench.report.format import (
    DASH,
    as_bool,
    fmt_change,
    fmt_fixed,
    fmt_int,
    fmt_mib,
    fmt_pct,
)
from dualbench.report.layouts import group_label, is_group_layout, run_label
from dualbench.report.tables import unique_in_order

# int4.csv's slot of the co-located pair's sum in tables written before any number of models.
LEGACY_PAIR = "pair"
# How a row of a group layout's models together ends its label.
SUM_SUFFIX = " (sum)"


def _is_sum(slot: str) -> bool:
    return slot == LEGACY_PAIR or SUBSET_SEPARATOR in slot


def _subject(subject: str) -> tuple[str, str, bool]:
    """(layout, slot, whether it is a group's sum) of an INT4 answer's subject:
    "alone_A/A", "colocated/A+B", "colocated" (a group layout's sum), "pair" (legacy)."""
    if subject == LEGACY_PAIR:
        return COLOCATED, LEGACY_PAIR, True
    layout, _, slot = subject.partition("/")
    if not slot:
        return layout, "", is_group_layout(layout)
    return layout, slot, _is_sum(slot)


def _sum_label(layout: str, names: list[str]) -> str:
    """ "A+B co-located (sum)": a group layout's models together."""
    return group_label(layout, names) + SUM_SUFFIX


def _model_rows(precisions: pd.DataFrame, baseline: str) -> list[dict[str, str]]:
    rows = []
    for slot, group in precisions.groupby("slot", sort=True):
        base = group[group.precision == baseline]
        base_linear = base["linear_weight_bytes"].iloc[0] if len(base) else math.nan
        base_total = base["weight_bytes"].iloc[0] if len(base) else math.nan
        for r in group.to_dict("records"):
            int4 = r["precision"] == "int4"
            scheme = (
                f"group {fmt_int(r['group_size'])}, "
                f"{'symmetric' if as_bool(r['symmetric']) else 'asymmetric'}, lm_head "
                f"{'INT4' if as_bool(r['quantize_lm_head']) else '16-bit'}"
                if int4
                else r.get("dtype") or DASH
            )
            rows.append(
                {
                    "model": f"{slot}: {r['model']}",
                    "precision": r["precision"],
                    "scheme": scheme,
                    "weights_mib": fmt_mib(r["weight_bytes"]),
                    "weights_ratio": fmt_change(r["weight_bytes"] / base_total) if int4 else "",
                    "linear_mib": fmt_mib(r["linear_weight_bytes"]),
                    "linear_ratio": (
                        fmt_change(r["linear_weight_bytes"] / base_linear) if int4 else ""
                    ),
                    "top1": fmt_pct(r["top1_agreement"]) if int4 else "",
                    "kl": fmt_fixed(r["mean_kl"], 4) if int4 else "",
                    "max_err": fmt_fixed(r["max_abs_logit_error"], 3) if int4 else "",
                    "kernel": r.get("kernel") or DASH,
                }
            )
    return rows


def _scenario_rows(int4: pd.DataFrame, names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for r in int4.to_dict("records"):
        pair = _is_sum(str(r["slot"]))
        layout = str(r["layout"]) if is_group_layout(str(r["layout"])) else COLOCATED
        rows.append(
            {
                "scenario": r["scenario"],
                "label": _sum_label(layout, names) if pair else run_label(r["layout"], r["slot"]),
                "throughput": (
                    f"{fmt_fixed(r['throughput_tok_s_baseline'])} → "
                    f"{fmt_fixed(r['throughput_tok_s_int4'])}"
                ),
                "throughput_ratio": fmt_change(r["throughput_tok_s_ratio"]),
                "ttft_ratio": DASH if pair else fmt_change(r["ttft_ms_p50_ratio"]),
                "tpot_ratio": DASH if pair else fmt_change(r["tpot_ms_p50_ratio"]),
                "e2e_ratio": DASH if pair else fmt_change(r["e2e_ms_p50_ratio"]),
                "memory": (
                    f"{fmt_mib(r['peak_mem_bytes_baseline'])} → {fmt_mib(r['peak_mem_bytes_int4'])}"
                ),
                "memory_ratio": fmt_change(r["peak_mem_bytes_ratio"]),
                "valid": as_bool(r["valid"]),
            }
        )
    return rows


def _answer_rows(
    int4: pd.DataFrame, est: Estimates, baseline: str, names: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The per-scenario rows from answers.csv's INT4 ratios, and the scenarios with none."""
    subjects = unique_in_order(
        (r["scenario"], r["subject"]) for r in est.rows("int4_") if r["answer"].endswith("_ratio")
    )
    rows, missing = [], []
    for scenario, subject in subjects:
        key = (scenario, "int4")
        n = max(est.n(key, f"int4_{m}_ratio", subject) for m in INT4_RATIOS)
        if n <= 0:
            missing.append(scenario)
            continue
        layout, slot, pair = _subject(subject)
        sel = int4[int4["scenario"] == scenario]
        if pair:
            sums = sel["slot"].astype(str).map(_is_sum)
            here = sel["layout"] == layout
            # A legacy pair row may carry no group layout of its own.
            sel = sel[sums & (here | ~sel["layout"].astype(str).map(is_group_layout))]
        else:
            sel = sel[(sel["slot"] == slot) & (sel["layout"] == layout)]
        # The bytes of one block as int4.csv has them; over several blocks only their ratio.
        one = sel.iloc[0] if len(sel) == 1 else None

        def ratio(metric: str, subject: str = subject, key: tuple = key) -> str:
            name = f"int4_{metric}_ratio"
            if est.n(key, name, subject) == 1:
                return fmt_change(est.interval(key, name, subject)[0])
            return est.figure(key, name, subject, "ratio")

        answer, tput = ("v_total", layout) if pair else ("throughput", subject)
        rows.append(
            {
                "scenario": scenario,
                "label": _sum_label(layout, names) if pair else run_label(layout, slot),
                "blocks": blocks_note(n),
                "throughput": (
                    f"{fmt_fixed(est.interval((scenario, baseline), answer, tput)[0])} → "
                    f"{fmt_fixed(est.interval(key, answer, tput)[0])}"
                ),
                "throughput_ratio": ratio("throughput_tok_s"),
                "ttft_ratio": DASH if pair else ratio("ttft_ms_p50"),
                "tpot_ratio": DASH if pair else ratio("tpot_ms_p50"),
                "e2e_ratio": DASH if pair else ratio("e2e_ms_p50"),
                "memory": (
                    f"{fmt_mib(one['peak_mem_bytes_baseline'])} → "
                    f"{fmt_mib(one['peak_mem_bytes_int4'])}"
                    if one is not None
                    else DASH
                ),
                "memory_ratio": ratio("peak_mem_bytes"),
                "valid": bool(sel["valid"].map(as_bool).all()) if len(sel) else True,
            }
        )
    return rows, unique_in_order(s for s in missing if s not in {r["scenario"] for r in rows})


def _fig_memory(precisions: pd.DataFrame, baseline: str):
    """Checkpoint bytes per model and of all models together, baseline and INT4."""
    # Here, not at the top: importing dualbench.report.figures selects Agg before pyplot loads.
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = precisions[precisions.precision.isin([baseline, "int4"])].copy()
    if data.empty:
        return "No converted checkpoints to compare."
    data["MiB"] = data["weight_bytes"] / 2**20
    models = sorted(str(s) for s in data["slot"].unique())
    if len(models) > 1:
        everything = SUBSET_SEPARATOR.join(models)
        together = data.groupby("precision", as_index=False)["MiB"].sum().assign(slot=everything)
        data = pd.concat([data[["slot", "precision", "MiB"]], together], ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(data=data, x="slot", y="MiB", hue="precision", ax=ax, hue_order=[baseline, "int4"])
    together = f" ({SUBSET_SEPARATOR.join(models)}: all together)" if len(models) > 1 else ""
    ax.set_xlabel(f"model{together}")
    ax.set_ylabel("checkpoint MiB")
    readable(ax)
    return fig


def int4_section(
    precisions: pd.DataFrame | None,
    int4: pd.DataFrame | None,
    est: Estimates,
    names: list[str],
) -> dict[str, Any] | None:
    """The section's context, or None when the runs hold no INT4 against a dense baseline;
    ``names``: the models of the data."""
    if int4 is None or int4.empty or "baseline" not in int4:
        return None
    baseline = str(int4["baseline"].iloc[0])
    precisions = precisions if precisions is not None else pd.DataFrame()
    answered = bool(est.rows("int4_"))
    scenarios, missing = (
        _answer_rows(int4, est, baseline, names) if answered else (_scenario_rows(int4, names), [])
    )
    return {
        "title": f"{baseline.upper()} vs INT4",
        "baseline": baseline,
        "models": _model_rows(precisions, baseline) if not precisions.empty else [],
        "scenarios": scenarios,
        "answered": answered,
        "confidence": est.confidence_text,
        "missing": missing,
        "memory_values": any(r["memory"] != DASH for r in scenarios),
        "figure": embedded_figure(
            "Checkpoint size",
            f"Bytes of each converted checkpoint on disk, {baseline} and INT4, per model and "
            "for all of them together.",
            lambda: _fig_memory(precisions, baseline),
        )
        if not precisions.empty
        else None,
        "synthetic": bool(
            not precisions.empty
            and precisions["model"].astype(str).str.contains("synthetic:").any()
        ),
    }
