"""Aggregation: run records -> the tables the report and users read (runs, requests, scaling).

Output schemas (results/metrics/):
- runs.csv: one row per run and slot (``RUN_COLUMNS``);
- requests.csv: one row per request (``REQUEST_COLUMNS``);
- scaling.csv: one row per scenario and precision (``SCALING_COLUMNS``);
- precisions.csv: one row per model and precision: the converted checkpoint's bytes, INT4
  scheme and fidelity (``PRECISION_COLUMNS``);
- int4.csv: INT4 against the dense baseline per scenario, layout and slot, plus the pair
  (``INT4_COLUMNS``);
- energy.csv: one row per run: energy of every device it used, tokens per joule
  (``ENERGY_COLUMNS``);
- telemetry.csv: every sample of every run, time from the run's release (``TELEMETRY_COLUMNS``);
- environment.json: software, host and device of the runs.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pandas as pd

from dualbench.analysis.columns import (
    ENERGY_COLUMNS,
    FIDELITY,
    INT4_COLUMNS,
    INT4_RATIOS,
    PRECISION_COLUMNS,
    REQUEST_COLUMNS,
    RUN_COLUMNS,
    SCALING_COLUMNS,
    TELEMETRY_COLUMNS,
    TELEMETRY_RUN_COLUMNS,
)
from dualbench.analysis.metrics import (
    NS_PER_S,
    co_window,
    request_latencies,
    slot_metrics,
    validity,
)
from dualbench.analysis.telemetry import summarize
from dualbench.telemetry.sampler import read_csv as read_telemetry_csv
from dualbench.telemetry.sources import WORKER_CPU_SOURCE as WORKER_CPU


def run_tables(
    record: dict, model_sources: dict[str, str] | None = None, telemetry_rows: list | None = None
):
    """(run rows, request rows) of one run record; with its telemetry.csv rows, also the
    utilisation and energy columns (dualbench.analysis.telemetry)."""
    spec = record["spec"]
    run_id = f"{spec['scenario']}/{spec['precision']}/{spec['layout']}"
    ident = {
        "run_id": run_id,
        "scenario": spec["scenario"],
        "precision": spec["precision"],
        "layout": spec["layout"],
    }
    results = {n: s["result"] for n, s in record["slots"].items()}
    complete = record["status"] == "ok" and all(r is not None for r in results.values())
    window = co_window(results) if complete else (0, 0)
    reasons = (
        validity(record, window) if complete else [f"status {record['status']}: {record['error']}"]
    )
    t0 = min((r["release_ns"] for r in results.values() if r), default=0)
    firsts = {n: r["calls"][0]["submit_ns"] for n, r in results.items() if r and r["calls"]}
    lasts = {
        n: max((c["token_ns"][-1] for c in r["calls"] if c["token_ns"]), default=0)
        for n, r in results.items()
        if r and r["calls"]
    }
    span_s = (max(lasts.values()) - min(firsts.values())) / NS_PER_S if firsts else math.nan

    def rel(ns):
        return (ns - t0) / NS_PER_S

    run_rows, request_rows = [], []
    for name, slot in record["slots"].items():
        settings, result = slot["settings"], slot["result"]
        row = {
            **ident,
            "slot": name,
            "model": (model_sources or {}).get(name, slot["model"]),
            "backend": record["backend"].get("kind", ""),
            "device": slot["device"],
            "status": record["status"],
            "error": record["error"],
            "valid": not reasons,
            "invalid_reasons": "; ".join(reasons),
            # Allowed but flagged: e.g. a dtype this device only emulates (DESIGN §6).
            "warnings": "; ".join(record.get("warnings", [])),
            "prompt_tokens": settings["prompt_tokens"],
            "new_tokens": settings["new_tokens"],
            "batch_size": settings["batch_size"],
        }
        if result is not None:
            conversion = result.get("conversion") or {}
            row.update(
                {
                    "kernel": (result.get("weights") or {}).get("kernel"),
                    "weight_bytes": conversion.get("weight_bytes"),
                    "linear_weight_bytes": conversion.get("linear_weight_bytes"),
                    "load_s": result["load_s"],
                    "warmup_s": result["warmup_s"],
                    **{
                        k: result["memory"].get(k)
                        for k in ("peak_mem_bytes", "mem_reserved_peak_bytes", "mem_source")
                    },
                }
            )
        row["allocator"] = record["spec"].get("allocator", "")
        if result is not None:
            row["fragmentation"] = result["memory"].get("fragmentation")
        if complete:
            row.update(slot_metrics(result, settings, window))
            window_s = row["window_s"]
            row.update(
                {
                    "window_start_s": rel(window[0]),
                    "window_end_s": rel(window[1]),
                    "slot_start_s": rel(firsts[name]),
                    "slot_end_s": rel(lasts[name]),
                    "span_s": span_s,
                    "overlap_frac": window_s / span_s if span_s else math.nan,
                }
            )
            batch = settings["batch_size"]
            for i, call in enumerate(result["calls"]):
                lat = request_latencies(call["submit_ns"], call["token_ns"])
                inside = (
                    bool(call["token_ns"])
                    and call["token_ns"][0] >= window[0]
                    and call["token_ns"][-1] <= window[1]
                )
                itl = lat["itl_ms"]
                for b in range(batch):
                    request_rows.append(
                        {
                            **ident,
                            "slot": name,
                            "call": i,
                            "index": b,
                            "in_window": inside,
                            "submit_s": rel(call["submit_ns"]),
                            "ttft_ms": lat["ttft_ms"],
                            "tpot_ms": lat["tpot_ms"],
                            "e2e_ms": lat["e2e_ms"],
                            "itl_ms_mean": sum(itl) / len(itl) if itl else math.nan,
                            "new_tokens": call["delivered"],
                        }
                    )
        run_rows.append(row)
    if complete and telemetry_rows is not None:
        tokens = {r["slot"]: r.get("output_tokens") or 0 for r in run_rows}
        per_slot, _ = summarize(record, telemetry_rows, window, tokens)
        for row in run_rows:
            row.update(per_slot[row["slot"]])
    else:
        note = f"status {record['status']}" if not complete else "no telemetry recorded"
        for row in run_rows:
            row.update({k: None for k in TELEMETRY_RUN_COLUMNS})
            row.update({"util_source": "", "energy_source": "", "energy_note": note})
    return run_rows, request_rows


def energy_row(record: dict, telemetry_rows: list, run_rows: list[dict]) -> dict:
    """The run's energy as a whole (every device it used, the pair's tokens)."""
    spec = record["spec"]
    ident = {
        "run_id": f"{spec['scenario']}/{spec['precision']}/{spec['layout']}",
        "scenario": spec["scenario"],
        "precision": spec["precision"],
        "layout": spec["layout"],
    }
    results = {n: s["result"] for n, s in record["slots"].items()}
    if record["status"] != "ok" or not all(results.values()):
        return {**ident, "energy_note": f"status {record['status']}"}
    tokens = {r["slot"]: r.get("output_tokens") or 0 for r in run_rows}
    _, run = summarize(record, telemetry_rows, co_window(results), tokens)
    return {**ident, **run}


def telemetry_table(record: dict, telemetry_rows: list, run_rows: list[dict]) -> list[dict]:
    """Samples with time in seconds from the run's first barrier release (the runs.csv
    origin), for the report's timelines."""
    spec = record["spec"]
    run_id = f"{spec['scenario']}/{spec['precision']}/{spec['layout']}"
    t0 = min((s["result"]["release_ns"] for s in record["slots"].values() if s["result"]),
             default=None)  # fmt: skip
    if t0 is None:
        return []
    out = [
        {
            "run_id": run_id,
            "t_s": (r["t_ns"] - t0) / NS_PER_S,
            **{k: r[k] for k in ("slots", "device", "metric", "value", "source")},
        }
        for r in telemetry_rows
    ]
    # The parent's CPU-time samples as a utilisation trace: increase between two samples /
    # (their interval x the slot's cores).
    cores = {s["device"]: len(s["slot"].get("cores") or ()) for s in record["slots"].values()}
    parent = sorted(
        (r for r in telemetry_rows if r["metric"] == "cpu_time_s" and r["source"] != WORKER_CPU),
        key=lambda r: (r["device"], r["t_ns"]),
    )
    for a, b in itertools.pairwise(parent):
        n = cores.get(a["device"]) or 0
        if a["device"] == b["device"] and n and b["t_ns"] > a["t_ns"]:
            util = 100 * (b["value"] - a["value"]) / ((b["t_ns"] - a["t_ns"]) / NS_PER_S * n)
            out.append(
                {
                    "run_id": run_id,
                    "t_s": ((a["t_ns"] + b["t_ns"]) / 2 - t0) / NS_PER_S,
                    "slots": a["slots"],
                    "device": a["device"],
                    "metric": "cpu_util_pct",
                    "value": util,
                    "source": "process CPU time, between samples",
                }
            )
    return out


def scaling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """V1/V2, growth, efficiency and slowdown per scenario and precision."""
    rows = []
    for (scenario, precision), group in runs.groupby(["scenario", "precision"], sort=False):

        def pick(layout, slot, group=group):
            sel = group[(group.layout == layout) & (group.slot == slot)]
            return sel.iloc[0] if len(sel) else None

        parts = {
            "A": pick("alone_A", "A"),
            "B": pick("alone_B", "B"),
            "cA": pick("colocated", "A"),
            "cB": pick("colocated", "B"),
        }
        missing = [k for k, v in parts.items() if v is None]
        tput = {k: (v["throughput_tok_s"] if v is not None else math.nan) for k, v in parts.items()}
        v1_a, v1_b = tput["A"], tput["B"]
        v1 = (v1_a + v1_b) / 2
        v2 = tput["cA"] + tput["cB"]
        valid = not missing and all(bool(v["valid"]) for v in parts.values())
        notes = []
        if missing:
            layouts = {"A": "alone_A", "B": "alone_B", "cA": "colocated", "cB": "colocated"}
            notes.append("missing runs: " + ", ".join(sorted({layouts[k] for k in missing})))
        if not missing and not valid:
            notes.append("depends on an invalid or failed run")
        rows.append(
            {
                "scenario": scenario,
                "precision": precision,
                "v1_A": v1_a,
                "v1_B": v1_b,
                "v1": v1,
                "v2": v2,
                "growth": (v2 - v1) / v1 if v1 else math.nan,
                "scaling_efficiency": v2 / (v1_a + v1_b) if (v1_a + v1_b) else math.nan,
                "slowdown_A": v1_a / tput["cA"] if tput["cA"] else math.nan,
                "slowdown_B": v1_b / tput["cB"] if tput["cB"] else math.nan,
                "valid": valid,
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def precision_table(records: list[dict], model_sources: dict[str, str]) -> pd.DataFrame:
    """One row per model and precision, from the conversion.json the workers loaded."""
    rows = {}
    for record in records:
        for name, slot in record["slots"].items():
            result = slot["result"] or {}
            conversion = result.get("conversion")
            if not conversion:
                continue
            fidelity = conversion.get("fidelity") or {}
            rows[(name, conversion["precision"])] = {
                "model": model_sources.get(name, conversion.get("source")),
                "slot": name,
                **{k: conversion.get(k) for k in PRECISION_COLUMNS[2:11]},
                **{k: fidelity.get(k) for k in FIDELITY},
                "fidelity_inputs": fidelity.get("inputs"),
                "kernel": (result.get("weights") or {}).get("kernel"),
            }
    return pd.DataFrame([rows[k] for k in sorted(rows)], columns=PRECISION_COLUMNS)


def int4_baseline(precisions) -> str | None:
    """The dense precision INT4 is compared with: fp16 (the origin note's question) when it
    was measured, else bf16, else fp32 (what native16 runs on a CPU without native bf16);
    None without int4 or without a dense precision."""
    present = set(precisions)
    if "int4" not in present:
        return None
    return next((p for p in ("fp16", "bf16", "fp32") if p in present), None)


def int4_table(runs: pd.DataFrame) -> pd.DataFrame:
    """INT4 / baseline per scenario, layout and slot; the colocated pair adds a row with the
    summed throughput and summed peak memory of its two slots."""
    baseline = int4_baseline(runs["precision"].unique()) if len(runs) else None
    if baseline is None:
        return pd.DataFrame(columns=INT4_COLUMNS)
    rows = []
    keyed = runs.set_index(["scenario", "layout", "slot", "precision"])
    for scenario, layout, slot in runs[["scenario", "layout", "slot"]].drop_duplicates().values:
        try:
            base = keyed.loc[(scenario, layout, slot, baseline)]
            int4 = keyed.loc[(scenario, layout, slot, "int4")]
        except KeyError:
            continue
        rows.append(_int4_row(scenario, layout, slot, baseline, base, int4))
    pairs = runs[runs.layout == "colocated"].groupby(["scenario", "precision"])
    summed = pairs[["throughput_tok_s", "peak_mem_bytes"]].sum(min_count=2)
    valid = pairs["valid"].all()
    for scenario in runs.loc[runs.layout == "colocated", "scenario"].unique():
        if (scenario, baseline) in summed.index and (scenario, "int4") in summed.index:
            base = {**summed.loc[(scenario, baseline)], "valid": valid[(scenario, baseline)]}
            int4 = {**summed.loc[(scenario, "int4")], "valid": valid[(scenario, "int4")]}
            rows.append(_int4_row(scenario, "colocated", "pair", baseline, base, int4))
    return pd.DataFrame(rows, columns=INT4_COLUMNS)


def _int4_row(scenario, layout, slot, baseline, base, int4) -> dict:
    row = {"scenario": scenario, "layout": layout, "slot": slot, "baseline": baseline}
    for metric in INT4_RATIOS:
        b, q = _num(base.get(metric)), _num(int4.get(metric))
        row[f"{metric}_baseline"], row[f"{metric}_int4"] = b, q
        row[f"{metric}_ratio"] = q / b if b and not math.isnan(b) else math.nan
    row["valid"] = bool(base.get("valid")) and bool(int4.get("valid"))
    return row


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _device_info(records: list[dict]) -> dict:
    """Device facts as the workers saw them, one entry per slot device."""
    info = {}
    for record in records:
        for slot in record["slots"].values():
            if slot["result"] and slot["result"].get("device_info"):
                info[slot["device"]] = slot["result"]["device_info"]
    return info


def aggregate(run_paths: list[Path], out_dir: Path, model_sources: dict[str, str]) -> None:
    """Read run.json files and write the tables of the module docstring."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rows, request_rows, records, energy_rows, samples = [], [], [], [], []
    for path in run_paths:
        record = json.loads(Path(path).read_text())
        records.append(record)
        tele_path = Path(path).parent / (record.get("telemetry") or {}).get("file", "-")
        tele = read_telemetry_csv(tele_path) if tele_path.is_file() else []
        rows, reqs = run_tables(record, model_sources, tele)
        run_rows += rows
        request_rows += reqs
        energy_rows.append(energy_row(record, tele, rows))
        samples += telemetry_table(record, tele, rows)
    runs = pd.DataFrame(run_rows).reindex(columns=RUN_COLUMNS)
    runs.to_csv(out_dir / "runs.csv", index=False)
    pd.DataFrame(request_rows, columns=REQUEST_COLUMNS).to_csv(
        out_dir / "requests.csv", index=False
    )
    scaling_table(runs).to_csv(out_dir / "scaling.csv", index=False)
    precision_table(records, model_sources).to_csv(out_dir / "precisions.csv", index=False)
    int4_table(runs).to_csv(out_dir / "int4.csv", index=False)
    pd.DataFrame(energy_rows, columns=ENERGY_COLUMNS).to_csv(out_dir / "energy.csv", index=False)
    pd.DataFrame(samples, columns=TELEMETRY_COLUMNS).to_csv(out_dir / "telemetry.csv", index=False)
    environment = {
        **(records[0]["environment"] if records else {}),
        "devices": _device_info(records),
        "models": model_sources,
        "config": {
            f"{r['spec']['scenario']}/{r['spec']['precision']}/{r['spec']['layout']}": r["spec"]
            for r in records
        },
    }
    (out_dir / "environment.json").write_text(json.dumps(environment, indent=2, sort_keys=True))
