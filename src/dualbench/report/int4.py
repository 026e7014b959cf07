"""The report's "16-bit vs INT4" section: memory, speed and fidelity, from precisions.csv and
int4.csv (dualbench.analysis). Like the rest of the report it derives no metric of its own:
ratios and bytes come from the tables, this module only arranges and formats them."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from dualbench.config.vocabulary import SLOT_NAMES
from dualbench.report.figures import embedded_figure
from dualbench.report.format import (
    DASH,
    as_bool,
    fmt_change,
    fmt_fixed,
    fmt_int,
    fmt_mib,
    fmt_pct,
)
from dualbench.report.tables import run_label

# How the section names the pair of models: int4.csv's slot "pair", the figure's "pair" bar.
PAIR = " + ".join(SLOT_NAMES)


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


def _scenario_rows(int4: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for r in int4.to_dict("records"):
        pair = r["slot"] == "pair"
        rows.append(
            {
                "scenario": r["scenario"],
                "label": f"pair ({PAIR})" if pair else run_label(r["layout"], r["slot"]),
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


def _fig_memory(precisions: pd.DataFrame, baseline: str):
    # Here, not at the top: importing dualbench.report.figures selects Agg before pyplot loads.
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = precisions[precisions.precision.isin([baseline, "int4"])].copy()
    if data.empty:
        return "No converted checkpoints to compare."
    data["MiB"] = data["weight_bytes"] / 2**20
    pair = data.groupby("precision", as_index=False)["MiB"].sum().assign(slot="pair")
    data = pd.concat([data[["slot", "precision", "MiB"]], pair], ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.barplot(data=data, x="slot", y="MiB", hue="precision", ax=ax, hue_order=[baseline, "int4"])
    ax.set_xlabel(f"model (pair: {PAIR})")
    ax.set_ylabel("checkpoint MiB")
    return fig


def int4_section(precisions: pd.DataFrame, int4: pd.DataFrame) -> dict[str, Any] | None:
    """The section's context, or None when the runs hold no INT4 against a dense baseline."""
    if int4 is None or int4.empty or "baseline" not in int4:
        return None
    baseline = str(int4["baseline"].iloc[0])
    precisions = precisions if precisions is not None else pd.DataFrame()
    return {
        "title": f"{baseline.upper()} vs INT4",
        "baseline": baseline,
        "models": _model_rows(precisions, baseline) if not precisions.empty else [],
        "scenarios": _scenario_rows(int4),
        "figure": embedded_figure(
            "Checkpoint size",
            f"Bytes of each converted checkpoint on disk, {baseline} and INT4, per model and "
            "for the pair.",
            lambda: _fig_memory(precisions, baseline),
        )
        if not precisions.empty
        else None,
        "synthetic": bool(
            not precisions.empty
            and precisions["model"].astype(str).str.contains("synthetic:").any()
        ),
    }
