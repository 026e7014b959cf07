"""The schema of every table the analysis stage writes (results/metrics/), in one place.

- runs.csv: one row per run and slot (``RUN_COLUMNS``);
- requests.csv: one row per sequence of every call, a call the stop cut marked ``cut``
  (``REQUEST_COLUMNS``);
- scaling.csv: one row per block and group layout: the scaling curve (``SCALING_COLUMNS``);
- interference.csv: one row per block, group layout and member: its slowdowns
  (``INTERFERENCE_COLUMNS``);
- precisions.csv: one row per model and precision: the converted checkpoint's bytes, INT4
  scheme and fidelity (``PRECISION_COLUMNS``);
- int4.csv: INT4 against the dense baseline per scenario, layout and slot, plus each group
  layout's sum (``INT4_COLUMNS``);
- energy.csv: one row per run: energy of every device it used, tokens per joule
  (``ENERGY_COLUMNS``);
- telemetry.csv: every sample of every run, time from the run's release (``TELEMETRY_COLUMNS``);
- environment.json: software, host and device of the runs.

``METRICS_FILES`` names them; the aggregate rule's outputs, the aggregation and the report
all take the names from it. Each full column list is built from named groups, so code that
fills or blanks a group (e.g. the telemetry columns of a run row) names the group, never a
slice of positions. ``run_id`` is the one place a run's id is spelled.
"""

from __future__ import annotations

from dualbench.analysis.metrics import LATENCIES, STATS

# sessions.csv: one row per measuring session (dualbench.measure.rounds' session.json): how
# many rounds it ran and why it stopped, its seconds and the share inside trial windows, and
# the verdict-bearing answers' worst half-width at the stop.
SESSION_COLUMNS = [
    "scenario", "precision", "rounds_setting", "rounds", "trials", "stopped",
    "target_half_width", "max_s", "worst_half_width", "worst_answer", "seconds",
    "window_seconds", "inside_share",
]  # fmt: skip

# Table -> file name under results/metrics/.
METRICS_FILES = {
    "runs": "runs.csv",
    "requests": "requests.csv",
    "scaling": "scaling.csv",
    "interference": "interference.csv",
    "precisions": "precisions.csv",
    "int4": "int4.csv",
    "energy": "energy.csv",
    "telemetry": "telemetry.csv",
    "answers": "answers.csv",
    "blocks": "blocks.csv",
    "sessions": "sessions.csv",
    "calibration": "calibration.csv",
    "contention": "contention.csv",
    "contention_curve": "contention_curve.csv",
    "contention_fits": "contention_fits.csv",
    "environment": "environment.json",
}


def run_id(spec: dict) -> str:
    """A run's id in every table and in environment.json: scenario/precision/r<repeat>/layout
    (a run outside a repeat block, e.g. from ``dualbench run``, counts as block 1)."""
    return f"{spec['scenario']}/{spec['precision']}/r{spec.get('repeat', 1)}/{spec['layout']}"


# --- identity ---------------------------------------------------------------------------------

# What names a run (one trial's record), then a slot of it. ``repeat``: its round; ``position``:
# its place in the round's order (dualbench.config.round_order), 1 = first.
RUN_IDENTITY = ["run_id", "scenario", "precision", "repeat", "position", "layout"]
IDENTITY = [*RUN_IDENTITY, "slot"]


def run_identity(spec: dict) -> dict:
    """The ``RUN_IDENTITY`` columns of a run, from its spec."""
    return {
        "run_id": run_id(spec),
        "scenario": spec["scenario"],
        "precision": spec["precision"],
        "repeat": spec.get("repeat", 1),
        "position": spec.get("position"),
        "layout": spec["layout"],
    }


# --- runs.csv, by group -----------------------------------------------------------------------

# What ran where, how it was driven (vocabulary.layout_schedule: free, lockstep,
# single_thread), and how it ended.
SETUP_COLUMNS = ["model", "backend", "device", "schedule", "status", "error"]
VALIDITY_COLUMNS = ["valid", "invalid_reasons", "warnings"]
# The slot's workload settings.
WORKLOAD_COLUMNS = ["prompt_tokens", "new_tokens", "batch_size"]
# The co-located window and the slot's own span, in seconds from the run's first release.
WINDOW_COLUMNS = [
    "window_start_s",
    "window_end_s",
    "window_s",
    "slot_start_s",
    "slot_end_s",
    "span_s",
    "overlap_frac",
]
THROUGHPUT_COLUMNS = [
    "requests",
    "output_tokens",
    "throughput_tok_s",
    "prefill_tok_s",
    "request_rate_rps",
]
LATENCY_COLUMNS = [f"{m}_ms_{s}" for m in LATENCIES for s in STATS]
# How evenly the tokens came: the standard deviation of the inter-token times (metrics.
# slot_metrics), where lockstep's strict turns should show against free co-location.
TPOT_SPREAD_COLUMNS = ["tpot_ms_sd"]
# How many values each latency's statistics are over (ITL: every gap, n - 1 per request), and
# which p90/p99 are over too few values to be more than the maximum.
LATENCY_COUNT_COLUMNS = [*(f"{m}_n" for m in LATENCIES), "percentile_note"]
# An open-loop slot's arrivals (dualbench.measure.open_loop): its process and rate in words,
# the rate it was offered (requests/s), the arrivals due inside the window, those due by its
# end not yet started (the backlog), and how long requests queued before they started (ms;
# over the requests inside the window, as the latencies). Empty, NaN and 0 for a closed loop.
ARRIVAL_COLUMNS = [
    "arrival",
    "offered_rps",
    "arrivals",
    "backlog",
    *(f"queue_ms_{s}" for s in STATS),
    "queue_n",
]
# A lockstep run's turns (dualbench.analysis.lockstep.turn_stats): forward passes in the window,
# pairs of turns of different slots that overlapped (0 when the ring held), and the hand-over
# time between consecutive turns of different slots (µs). Other runs: 0, 0 and NaN.
LOCKSTEP_COLUMNS = ["turns", "turn_overlaps", "handoff_us_p50", "handoff_us_mean"]
MEMORY_COLUMNS = [
    "peak_mem_bytes",
    "mem_reserved_peak_bytes",
    "mem_source",
    "fragmentation",
    "allocator",
]
# The weights the worker loaded: its kernel and the converted checkpoint's bytes.
WEIGHT_COLUMNS = ["kernel", "weight_bytes", "linear_weight_bytes"]
# Utilisation and energy over the window (dualbench.analysis.telemetry).
TELEMETRY_RUN_COLUMNS = [
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
]
STARTUP_COLUMNS = ["load_s", "warmup_s"]
# The roofline of the slot (dualbench.analysis.bandwidth): what a decode step reads and
# computes, what it achieved against the slot's calibrated peaks, and the regime that follows.
# ``mbu`` is the decode phase's, ``mfu`` the prefill's; ``regime`` is that of the phase that
# takes the larger part of a request's time, which ``regime_phase`` names (decode, prefill).
ROOFLINE_COLUMNS = [
    "decode_bytes_per_step",
    "decode_flops_per_step",
    "decode_intensity",
    "decode_bw_bytes_s",
    "decode_flop_s",
    "mbu",
    "decode_mfu",
    "decode_regime",
    "prefill_bytes",
    "prefill_flops",
    "prefill_intensity",
    "prefill_bw_bytes_s",
    "prefill_flop_s",
    "prefill_mbu",
    "mfu",
    "prefill_regime",
    "regime",
    "regime_phase",
    "peak_bw_bytes_s",
    "peak_flop_s",
]
# The machine when the run started (dualbench.hardware.machine_state): the drift guard's input.
MACHINE_STATE_COLUMNS = ["loadavg_1m", "cpu_mhz"]
RUN_COLUMNS = [
    *IDENTITY,
    *SETUP_COLUMNS,
    *VALIDITY_COLUMNS,
    *WORKLOAD_COLUMNS,
    *WINDOW_COLUMNS,
    *THROUGHPUT_COLUMNS,
    *LATENCY_COLUMNS,
    *TPOT_SPREAD_COLUMNS,
    *LATENCY_COUNT_COLUMNS,
    *ARRIVAL_COLUMNS,
    *LOCKSTEP_COLUMNS,
    *MEMORY_COLUMNS,
    *WEIGHT_COLUMNS,
    *ROOFLINE_COLUMNS,
    *TELEMETRY_RUN_COLUMNS,
    *STARTUP_COLUMNS,
    *MACHINE_STATE_COLUMNS,
]

# --- the other tables -------------------------------------------------------------------------

ENERGY_COLUMNS = [
    *RUN_IDENTITY,
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
    "cut",
    "submit_s",
    "queue_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "itl_ms_mean",
    "new_tokens",
]
# Copied as they are from a converted checkpoint's conversion.json.
CONVERSION_COLUMNS = [
    "precision",
    "dtype",
    "format",
    "group_size",
    "symmetric",
    "quantize_lm_head",
    "parameters",
    "weight_bytes",
    "linear_weight_bytes",
]
FIDELITY = ["top1_agreement", "mean_kl", "max_abs_logit_error"]
PRECISION_COLUMNS = [
    "model",
    "slot",
    *CONVERSION_COLUMNS,
    *FIDELITY,
    "fidelity_inputs",
    "kernel",
]
# What INT4 changes, as int4 value / baseline value (int4.int4_baseline); a group layout's
# summed row (slot "A+B": layouts.sum_slot) has the sums' throughput and memory only.
INT4_RATIOS = ["throughput_tok_s", "ttft_ms_p50", "tpot_ms_p50", "e2e_ms_p50", "peak_mem_bytes"]
INT4_COLUMNS = [
    "scenario",
    "repeat",
    "layout",
    "slot",
    "baseline",
    *[f"{m}_{side}" for m in INT4_RATIOS for side in ("baseline", "int4")],
    *[f"{m}_ratio" for m in INT4_RATIOS],
    "valid",
]
# The scaling curve, long (dualbench.analysis.scaling): one row per block (scenario,
# precision, repeat) and group layout (with its schedule); ``models`` its k members joined by
# "+", ``v1_sum`` and ``v1_mean`` their throughput alone in the block, ``v_total`` their summed
# throughput in the layout.
GROUP_KEY = ["scenario", "precision", "repeat", "layout", "schedule"]
SCALING_FIGURES = ["v1_sum", "v1_mean", "v_total", "growth_per_model", "scaling_efficiency"]
SCALING_COLUMNS = [*GROUP_KEY, "models", "k", *SCALING_FIGURES, "valid", "note"]
# The interference matrix, long: each member (victim) of each group layout against itself
# alone in the same block; ``neighbours`` the other members joined by "+".
INTERFERENCE_SLOWDOWNS = [
    f"slowdown_{m}" for m in ("throughput", "ttft_p50", "tpot_p50", "e2e_p50")
]
INTERFERENCE_COLUMNS = [*GROUP_KEY, "victim", "neighbours", *INTERFERENCE_SLOWDOWNS, "valid"]
# One row per answer of a scenario and precision, over its blocks (dualbench.analysis.answers):
# ``subject`` names the model, layout or "<layout>/<slot>" it is about; ``estimate`` with its
# interval ``lo``..``hi`` (empty with one block) over ``n`` blocks, by ``method``
# (dualbench.analysis.intervals.METHODS); ``verdict`` in words for interference answers and
# schedule comparisons.
ANSWER_COLUMNS = [
    "scenario",
    "precision",
    "answer",
    "subject",
    "unit",
    "estimate",
    "lo",
    "hi",
    "n",
    "confidence",
    "method",
    "verdict_kind",
    "verdict",
]
# One row per block: its order, the machine at its first run's start, and the drift guard.
BLOCK_COLUMNS = [
    "scenario",
    "precision",
    "repeat",
    "order",
    "loadavg_1m",
    "cpu_mhz",
    "device_temp_c",
    "drift",
    "drift_note",
]
# One row per slot and compute dtype (dualbench.measure.calibration): the slot's copy bandwidth
# alone and while every slot copies (bytes/s of read + write traffic: a copy of S bytes moves
# 2S), and its square-matmul throughput in the dtype (FLOP/s). ``*_spread``: (p75 - p25) /
# median of the samples.
CALIBRATION_COLUMNS = [
    "slot",
    "device",
    "backend",
    "dtype",
    "copy_bytes",
    "llc_bytes",
    "copy_alone_bytes_s",
    "copy_alone_spread",
    "copy_contended_bytes_s",
    "copy_contended_total_bytes_s",
    "contended_slots",
    "matmul_n",
    "matmul_flop_s",
    "matmul_spread",
    "repeats",
    "note",
]
# One row per point of a contention sweep (dualbench.analysis.contention): the victim runs its
# scenario closed-loop while the neighbour's open-loop rate steps up; ``fraction`` of the
# neighbour's solo capacity ``capacity_rps`` (its latest alone trial of the session) gives the
# offered rate ``offered_rps``; fraction 0 is the victim alone.
CONTENTION_COLUMNS = [
    "scenario",
    "precision",
    "repeat",
    "position",
    "victim",
    "neighbour",
    "fraction",
    "offered_rps",
    "capacity_rps",
    "neighbour_rps",
    "backlog",
    "victim_tpot_ms",
    "victim_throughput_tok_s",
    "victim_bw_bytes_s",
    "neighbour_bw_bytes_s",
    "pair_bw_bytes_s",
    "ceiling_bytes_s",
    "valid",
    "invalid_reasons",
    "note",
]
# The sweep over blocks: one row per point and metric (victim_tpot_ms, victim_bw_bytes_s,
# neighbour_bw_bytes_s, pair_bw_bytes_s, neighbour_rps), with its interval over the blocks.
CONTENTION_CURVE_COLUMNS = [
    "scenario",
    "precision",
    "victim",
    "neighbour",
    "fraction",
    "offered_rps",
    "metric",
    "estimate",
    "lo",
    "hi",
    "n",
    "confidence",
    "method",
]
# Every parameter any contention model has (dualbench.analysis.contention_fit.PARAMS); a
# model leaves the others empty.
FIT_PARAMS = ("bw_max", "k", "bw_inf", "beta")
# One row per sweep and model fitted to victim_bw_bytes_s against offered_rps.
CONTENTION_FIT_COLUMNS = [
    "scenario",
    "precision",
    "victim",
    "neighbour",
    "model",
    "formula",
    *[f"{p}{side}" for p in FIT_PARAMS for side in ("", "_lo", "_hi")],
    "ceiling_bytes_s",
    "aicc",
    "delta_aicc",
    "n",
    "rss",
    "residuals",
    "converged",
    "preferred",
    "distinguishable",
    "confidence",
    "note",
]
