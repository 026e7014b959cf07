"""The schema of every table the analysis stage writes (results/metrics/), in one place.

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

``METRICS_FILES`` names them; the aggregate rule's outputs, the aggregation and the report
all take the names from it.
"""

from __future__ import annotations

from dualbench.analysis.metrics import LATENCIES, STATS

# Table -> file name under results/metrics/.
METRICS_FILES = {
    "runs": "runs.csv",
    "requests": "requests.csv",
    "scaling": "scaling.csv",
    "precisions": "precisions.csv",
    "int4": "int4.csv",
    "energy": "energy.csv",
    "telemetry": "telemetry.csv",
    "environment": "environment.json",
}

IDENTITY = ["run_id", "scenario", "precision", "layout", "slot"]
RUN_COLUMNS = [
    *IDENTITY,
    "model",
    "backend",
    "device",
    "status",
    "error",
    "valid",
    "invalid_reasons",
    "warnings",
    "prompt_tokens",
    "new_tokens",
    "batch_size",
    "window_start_s",
    "window_end_s",
    "window_s",
    "slot_start_s",
    "slot_end_s",
    "span_s",
    "overlap_frac",
    "requests",
    "output_tokens",
    "throughput_tok_s",
    "prefill_tok_s",
    "request_rate_rps",
    *[f"{m}_ms_{s}" for m in LATENCIES for s in STATS],
    "peak_mem_bytes",
    "mem_reserved_peak_bytes",
    "mem_source",
    "fragmentation",
    "allocator",
    "kernel",
    "weight_bytes",
    "linear_weight_bytes",
    "util_pct",
    "util_source",
    "active_pct",
    "energy_j",
    "energy_net_j",
    "power_mean_w",
    "power_idle_w",
    "tokens_per_j",
    "energy_source",
    "energy_note",
    "load_s",
    "warmup_s",
]
TELEMETRY_RUN_COLUMNS = RUN_COLUMNS[RUN_COLUMNS.index("util_pct") : RUN_COLUMNS.index("load_s")]
ENERGY_COLUMNS = [
    "run_id",
    "scenario",
    "precision",
    "layout",
    "devices",
    "window_s",
    "energy_j",
    "energy_net_j",
    "power_mean_w",
    "output_tokens",
    "tokens_per_j",
    "tokens_per_j_net",
    "energy_source",
    "energy_note",
]
TELEMETRY_COLUMNS = ["run_id", "t_s", "slots", "device", "metric", "value", "source"]
REQUEST_COLUMNS = [
    *IDENTITY,
    "call",
    "index",
    "in_window",
    "submit_s",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "itl_ms_mean",
    "new_tokens",
]
FIDELITY = ["top1_agreement", "mean_kl", "max_abs_logit_error"]
PRECISION_COLUMNS = [
    "model",
    "slot",
    "precision",
    "dtype",
    "format",
    "group_size",
    "symmetric",
    "quantize_lm_head",
    "parameters",
    "weight_bytes",
    "linear_weight_bytes",
    *FIDELITY,
    "fidelity_inputs",
    "kernel",
]
# What INT4 changes, as int4 value / baseline value (baseline: see int4_baseline).
INT4_RATIOS = ["throughput_tok_s", "ttft_ms_p50", "tpot_ms_p50", "e2e_ms_p50", "peak_mem_bytes"]
INT4_COLUMNS = [
    "scenario",
    "layout",
    "slot",
    "baseline",
    *[f"{m}_{side}" for m in INT4_RATIOS for side in ("baseline", "int4")],
    *[f"{m}_ratio" for m in INT4_RATIOS],
    "valid",
]
SCALING_COLUMNS = [
    "scenario",
    "precision",
    "v1_A",
    "v1_B",
    "v1",
    "v2",
    "growth",
    "scaling_efficiency",
    "slowdown_A",
    "slowdown_B",
    "valid",
    "note",
]
