"""The report's "Utilisation and energy" section, from runs.csv, energy.csv, telemetry.csv and
answers.csv's tokens per joule over blocks (dualbench.analysis). It arranges and formats;
every number comes from the tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dualbench.config.vocabulary import ALONE_PREFIX
from dualbench.report.estimates import Estimates, blocks_note
from dualbench.report.figures import embedded_figure, readable, slot_colors
from dualbench.report.format import fmt_fixed, fmt_pct, number, text_or
from dualbench.report.layouts import group_label, group_rows, run_label, slot_names
from dualbench.report.tables import unique_in_order

# Utilisation metrics drawn on the timelines, with their legend names.
UTIL_TRACES = {
    "cpu_util_pct": "CPU time",
    "aicore_pct": "AI Core (npu-smi)",
    "npu_util_pct": "torch.npu.utilization",
    "gpu_util_pct": "GPU (NVML)",
}
MAX_TIMELINES = 8


def _slot_rows(runs: pd.DataFrame, notes: list[str]) -> list[dict[str, str]]:
    rows = []
    for r in runs.to_dict("records"):
        note = text_or(r.get("energy_note"), "")
        rows.append(
            {
                "run_id": r["run_id"],
                "label": run_label(r["layout"], r["slot"]),
                "util": fmt_pct(number(r.get("util_pct")) / 100),
                "util_source": text_or(r.get("util_source")),
                "active": fmt_pct(number(r.get("active_pct")) / 100),
                "energy": fmt_fixed(r.get("energy_j")),
                "energy_net": fmt_fixed(r.get("energy_net_j")),
                "power": fmt_fixed(r.get("power_mean_w")),
                "tokens_per_j": fmt_fixed(r.get("tokens_per_j"), 3),
                "note": "see above" if note in notes else note,
            }
        )
    return rows


def _run_rows(energy: pd.DataFrame) -> list[dict[str, str]]:
    return [
        {
            "run_id": r["run_id"],
            "devices": text_or(r.get("devices")),
            "window": fmt_fixed(r.get("window_s"), 2),
            "energy": fmt_fixed(r.get("energy_j")),
            "energy_net": fmt_fixed(r.get("energy_net_j")),
            "power": fmt_fixed(r.get("power_mean_w")),
            "tokens_per_j": fmt_fixed(r.get("tokens_per_j"), 3),
            "tokens_per_j_net": fmt_fixed(r.get("tokens_per_j_net"), 3),
            "source": text_or(r.get("energy_source")),
            "note": text_or(r.get("energy_note"), ""),
        }
        for r in energy.to_dict("records")
    ]


def _layout_label(layout: str, names: list[str]) -> str:
    """ "A alone", "A+B co-located", "A+B+C lockstep"; an unknown layout as it is."""
    if layout.startswith(ALONE_PREFIX):
        return run_label(layout, layout.removeprefix(ALONE_PREFIX))
    return group_label(layout, names)


def _efficiency_rows(est: Estimates, names: list[str]) -> list[dict[str, str]]:
    """Tokens per joule of each layout over the blocks, with its interval."""
    return [
        {
            "key": f"{r['scenario']}/{r['precision']}",
            "layout": _layout_label(r["subject"], names),
            "tokens_per_j": est.figure(
                (r["scenario"], r["precision"]), "tokens_per_j", r["subject"], "tpj"
            ),
            "blocks": blocks_note(int(r["n"])),
        }
        for r in est.rows("tokens_per_j")
    ]


def _fig_timelines(samples: pd.DataFrame, runs: pd.DataFrame, metrics: dict, ylabel: str):
    # Here, not at the top: importing dualbench.report.figures selects Agg before pyplot loads.
    import matplotlib.pyplot as plt

    data = samples[samples["metric"].isin(metrics)]
    co = group_rows(runs)
    colors = slot_colors(slot_names(runs))
    run_ids = [r for r in unique_in_order(co["run_id"]) if r in set(data["run_id"])][:MAX_TIMELINES]
    if not run_ids:
        return "No samples of this kind in the co-located runs."
    fig, axes = plt.subplots(
        len(run_ids), 1, figsize=(10.0, 0.6 + 1.6 * len(run_ids)), squeeze=False
    )
    for ax, run_id in zip(axes[:, 0], run_ids, strict=True):
        sel = data[data["run_id"] == run_id]
        for (slots, device, metric), trace in sel.groupby(["slots", "device", "metric"]):
            trace = trace.sort_values("t_s")
            color = colors.get(str(slots), "#555555")
            ax.plot(trace["t_s"], trace["value"], color=color, lw=1.2,
                    label=f"{slots} · {device} · {metrics[metric]}")  # fmt: skip
        window = co[co["run_id"] == run_id]
        if len(window.dropna(subset=["window_start_s", "window_end_s"])):
            ax.axvspan(window["window_start_s"].max(), window["window_end_s"].min(),
                       color="#4c8c6a", alpha=0.15, lw=0)  # fmt: skip
        ax.set_title(run_id, fontsize=9, loc="left")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="lower right")
        readable(ax)
    axes[-1, 0].set_xlabel("seconds since the barrier release (shaded: co-located window)")
    fig.tight_layout()
    return fig


def telemetry_section(
    runs: pd.DataFrame,
    energy: pd.DataFrame | None,
    samples: pd.DataFrame | None,
    est: Estimates,
) -> dict[str, Any] | None:
    """The section's context, or None for metrics written before telemetry existed."""
    if energy is None or "util_pct" not in runs:
        return None
    samples = samples if samples is not None else pd.DataFrame(columns=["run_id", "metric"])
    notes = sorted({text_or(n, "") for n in energy.get("energy_note", [])} - {""})
    return {
        "slots": _slot_rows(runs, notes),
        "runs": _run_rows(energy),
        "efficiency": _efficiency_rows(est, slot_names(runs)),
        "confidence": est.confidence_text,
        "notes": notes,
        "figures": [
            embedded_figure(
                "Utilisation over time",
                "Per slot, the device's busy share as sampled in the parent (CPU: CPU time "
                "between two samples over the slot's cores).",
                lambda: _fig_timelines(samples, runs, UTIL_TRACES, "%"),
            ),
            embedded_figure(
                "Power over time",
                "Sampled power of each device (npu-smi, NVML).",
                lambda: _fig_timelines(samples, runs, {"power_w": "power"}, "W"),
            ),
        ],
    }
