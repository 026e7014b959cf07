"""What every metric of the analysis means, stated exactly as computed
(dualbench.analysis.metrics, .telemetry, .scaling, .lockstep, .int4, .answers, .intervals,
.blocks):
``DEFINITIONS`` is a list of (term, definition) pairs; the report prints it as its
definitions section.
"""

from __future__ import annotations

from dualbench.analysis.answers import SAME_AS_FREE
from dualbench.analysis.contention import N_BOOT
from dualbench.analysis.contention_fit import DISTINGUISHABLE, MODELS
from dualbench.analysis.intervals import (
    METHODS,
    NO_INTERFERENCE,
    PAIRED,
    PERCENTILE_MIN_N,
    UNPAIRED,
    VALUE,
)
from dualbench.analysis.metrics import MIN_WINDOW_FRACTION
from dualbench.analysis.roofline import BELOW_ROOFS, BOUND_FRACTION
from dualbench.models.fidelity import FIDELITY_SEED, FIDELITY_SEQUENCES, FIDELITY_TOKENS

DEFINITIONS = [
    (
        "Timer",
        "time.perf_counter_ns() (CLOCK_MONOTONIC, one clock for all workers on a host), "
        "read after synchronising the device, in the generate() streamer.",
    ),
    (
        "Fixed work",
        "Greedy decoding with min_new_tokens = max_new_tokens = new_tokens: EOS never "
        "ends a request. Each request's delivered token count is checked; a mismatch invalidates "
        "the run (a call the stop cut, past the window, is short by design).",
    ),
    (
        "Request",
        "One sequence of a generate() call; a call carries batch_size requests that "
        "share timestamps. A slot runs a closed loop (the next call starts when one returns) "
        "unless it has open-loop arrivals (below).",
    ),
    (
        "Co-located window",
        "From the latest barrier release to the earliest last token over the slots of a run: "
        "the interval in which every slot was running. Workers keep running until every slot "
        "has been measured for duration_s and min_requests, so each slot's load lasts the "
        "whole window. For a slot alone, the window is its release to its last token. The "
        "stop then cuts each call in flight at its next forward pass: a cut call's slot ends "
        "at the cut, and a cut call is never a finished request. An open-loop slot may idle "
        "at the end: its end is when it was told to stop. A single-thread run's window is its "
        "process's span, release to the end of its last call (below).",
    ),
    ("TTFT", "first token time − submit time, per request."),
    ("TPOT", "(last token time − first token time) / (n − 1), n = new tokens of the request."),
    (
        "ITL",
        "every gap between consecutive token times of a request (n − 1 gaps per request); "
        "its statistics pool all gaps of all requests.",
    ),
    (
        "TPOT sd",
        "tpot_ms_sd: the standard deviation (population, ddof = 0) of every inter-token time "
        "(the ITL values) of the slot's requests inside the window, in ms: how evenly its "
        "tokens came, which per-request TPOT averages away. NaN under two gaps.",
    ),
    ("E2E", "last token time − submit time, per request."),
    (
        "Latency statistics",
        "over the requests whose tokens all lie inside the window (every measured request is "
        "submitted after its slot's barrier release): "
        "mean, p50, p90, p99 (numpy linear interpolation) and max, in ms. A p90 over fewer "
        f"than {PERCENTILE_MIN_N['p90']} values and a p99 over fewer than "
        f"{PERCENTILE_MIN_N['p99']} are little more than the maximum: runs.csv counts the "
        "values (ttft_n, tpot_n, itl_n, e2e_n), names such percentiles in percentile_note, "
        'and the report shows them as "max, n = …".',
    ),
    (
        "Output throughput",
        "output tokens whose timestamp lies inside the window / window "
        "seconds, per slot; a run's total is the sum over its slots.",
    ),
    (
        "Prefill throughput",
        "prompt tokens of the requests whose first token lies inside the window / window seconds.",
    ),
    ("Request rate", "requests whose tokens all lie inside the window / window seconds."),
    (
        "Layouts and schedules",
        "the models are the config's (and the data's) model names, each in a slot named after "
        "it. alone_<m>: model m by itself. A group layout runs k ≥ 2 models at once: "
        "colocated (all models) or colocated:<m1>+<m2>… (a subset), each model in its own "
        "worker process, free-running (schedule free); lockstep[:…] (schedule lockstep) and "
        "single_thread_streams[:…] (schedule single_thread), below.",
    ),
    (
        "Lockstep",
        "co-located workers, one process per model, that take their forward passes in strict "
        "turns around a ring: a worker takes the turn, runs one forward pass (a request's "
        "prefill or one decode step), synchronises its device and passes the turn on. turns: "
        "the forward passes inside the window, all slots; turn_overlaps: pairs of turns of "
        "different slots that overlap in time (0 when the ring held; a run with any is "
        "invalid, as it did not run in turns).",
    ),
    (
        "Handoff cost",
        "per lockstep run, for consecutive turns (in time order, inside the window) of "
        "different slots: the next turn's acquisition − the previous turn's release, in µs; "
        "runs.csv holds its p50 and mean (handoff_us_p50, handoff_us_mean), the answer "
        "handoff_us the mean over blocks (values interval).",
    ),
    (
        "Single-thread layout",
        "single_thread_streams[:…]: the origin note's own test code: every model in one "
        "process, their generate calls made one after the other from one thread, each under "
        "its own device stream on NPU/CUDA. The process is pinned to all of its slots' "
        "devices (on CPU: the union of their cores, with that many threads, so each call may "
        "use every core of the group). Each model still has its own row (slot), window "
        "and figures, as when co-located, over the process's span: from its release to the "
        "end of its last call, whole rounds (one call per model each), so every model has "
        "made the same number of calls in it.",
    ),
    (
        "V1, V_total",
        "V1_m: output throughput of model m alone (its slot, its device). V_total of a group "
        "layout of k models: the sum of its models' output throughput in it. The scaling "
        "curve: V_total of each group layout against its k (scaling.csv, one row per block "
        "and group layout); with two models, V_total of colocated is the V2 of the origin "
        "note.",
    ),
    (
        "Growth per added model",
        "(V_total / V1_mean − 1) / (k − 1), V1_mean the mean V1 of the layout's k models in "
        "the same block: what each model beyond the first adds, as a fraction of one model's "
        "throughput (1 = each adds a whole model's worth; for k = 2, (V2 − V1) / V1).",
    ),
    (
        "Scaling efficiency",
        "V_total / (sum of the layout's models' V1) = V_total / (k · V1_mean): 100% means "
        "no interference.",
    ),
    (
        "Slowdown and interference matrix",
        "per group layout and model in it (the victim, beside its neighbours): throughput "
        "alone / throughput in the layout, and in-layout / alone TTFT, TPOT and E2E p50 "
        "(1.00 = no slowdown; above 1: worse beside the neighbours). interference.csv holds "
        "them per block, one row per victim and layout: the matrix of who slows whom down, "
        "in which company.",
    ),
    (
        "Schedule comparison",
        "a lockstep or single-thread layout against the free co-location of the same models "
        "(colocated or colocated:<same models>) in the same blocks, as ratios scheduled / "
        "free, paired over blocks: total throughput (schedule_throughput_ratio), the run's "
        "tokens per joule (schedule_tokens_per_j_ratio), and per model its TPOT p50 and TPOT "
        "sd (schedule_tpot_p50_ratio, schedule_tpot_sd_ratio). Above 1: the schedule has more "
        "of it than free running.",
    ),
    ("Overlap", "window seconds / span seconds, span = first submit to last token over all slots."),
    (
        "Validity",
        "a run is valid when its status is ok, every worker's weights loaded in the run's "
        "precision, every request but a cut one delivered new_tokens tokens, the slots "
        "overlapped, the "
        f"window lasted at least {MIN_WINDOW_FRACTION:.0%} of duration_s and every slot had "
        "min_requests requests (sequences: batch_size per call) inside it; a lockstep run "
        "also needs its turns not to overlap (turn_overlaps = 0).",
    ),
    (
        "Peak memory",
        "NPU/CUDA: max_memory_allocated of the worker's device; CPU: the worker's "
        "peak resident set size (ru_maxrss), weights included.",
    ),
    (
        "Load, warmup",
        "seconds to load the model onto the device (INT4: unpack the artifact and repack it "
        "for the kernel), and to run warmup_requests before the barrier; neither is inside "
        "the window.",
    ),
    (
        "Telemetry",
        "sampled by the runner (the parent, not the workers) every telemetry.interval_s per "
        "source, each sample stamped with perf_counter_ns at the middle of its read; the "
        "telemetry.idle_s seconds before the workers start are the idle baseline. Gauges are "
        "integrated with the trapezoid rule and counters read at the window's edges by "
        "linear interpolation (a counter that goes down has wrapped: its range is added back).",
    ),
    (
        "Utilisation",
        "NPU: mean npu-smi Aicore Usage Rate over the window (torch.npu.utilization from "
        "inside the worker where npu-smi has none); CUDA: mean NVML utilization.gpu; CPU: the "
        "worker's CPU seconds in the window / (window seconds × cores of its slot).",
    ),
    (
        "T_active / T_total",
        "the origin note's utilisation: share of the window the worker spent inside generate "
        "calls (submit to last token), from its own timestamps.",
    ),
    (
        "Energy",
        "joules over the window: an energy counter's delta where the device has one (RAPL "
        "energy_uj on CPU, NVML total energy on CUDA), else the trapezoid of sampled power "
        "(NPU). Net = gross − idle power × window seconds. Per slot only when the slot has a "
        "device of its own; a shared device or CPU package is the run's. Missing, with the "
        "reason, where no source exists.",
    ),
    ("Tokens per joule", "output tokens in the window / energy in the window (gross; net too)."),
    (
        "Fragmentation",
        "NPU/CUDA: 1 − peak allocated / peak reserved by the caching allocator (allocator "
        "settings from the config, recorded per run).",
    ),
    (
        "INT4 weights",
        "weight-only, group-wise round-to-nearest: w = (q − zp) · scale per group of "
        "group_size input columns, q and zp in [−8, 7] (zp = 0 when symmetric), scale and zp "
        "from the group's min and max; activations bf16. Stored as compressed-tensors "
        "pack-quantized; kernel names what multiplied by them.",
    ),
    (
        "Weight bytes",
        "checkpoint: bytes of the converted safetensors files; linear weights: bytes of the "
        "decoder blocks' linear layers as stored (INT4: packed values, scales, zero points).",
    ),
    (
        "INT4 fidelity",
        "the INT4 model against its 16-bit source, both in fp32 on "
        f"{FIDELITY_SEQUENCES} sequences × {FIDELITY_TOKENS} tokens (seed {FIDELITY_SEED}), "
        "over every position: top-1 agreement = share of positions with the same "
        "most likely next token; mean KL = mean of KL(P_16bit ‖ P_int4) in nats; max |logit "
        "error| = largest absolute logit difference.",
    ),
    (
        "INT4 ratios",
        "INT4 value / baseline value for the same scenario, block, layout and slot; baseline "
        "fp16 if measured, else bf16, else fp32. Each group layout's sum (slot A+B…) adds up "
        "its models' throughput and peak memory.",
    ),
    (
        "Repeat block",
        "every layout of a scenario and precision run once, back to back, in an order drawn "
        "from the scenario's seed and the block number (the layouts' permutations in a seeded "
        "shuffle, block r taking the r-th), so drift of the machine hits alone and co-located "
        "runs alike. repeats blocks per scenario and precision.",
    ),
    (
        "Answers and intervals",
        "each answer's per-block figures are pooled over the blocks in which every run it "
        "needs is valid (n). Alone against a group layout of the same block (growth per "
        "added model, scaling efficiency, slowdowns), and a schedule against free "
        "co-location of the same block (schedule comparisons) — paired: "
        + METHODS[PAIRED]
        + " INT4 against its baseline, whose blocks ran at different times — unpaired: "
        + METHODS[UNPAIRED]
        + " A figure of one layout (V1, V_total, tokens per joule, hand-over time, a run's "
        "throughput, latencies and TPOT sd): "
        + METHODS[VALUE]
        + " Why: the spread between blocks is what a rerun shows (a within-run interval "
        "understates it); pairing removes drift common to a block; the log makes a ratio's "
        "interval the reciprocal of its inverse's; Student t is honest with few blocks. With "
        "one block an answer has no interval.",
    ),
    (
        "Verdict",
        "for an interference ratio (efficiency, slowdowns; 1.00 = none): its interval inside "
        f"1 ± analysis.equivalence_margin → {NO_INTERFERENCE}; else excluding 1 → "
        "the effect with its interval; else inconclusive at n blocks. A schedule comparison "
        f"is judged alike, its interval inside 1 ± the margin reading {SAME_AS_FREE}.",
    ),
    (
        "Drift guard",
        "each run records the load average and CPU clock at its start (and the device "
        "temperature's first sample where the telemetry has one); a block whose alone "
        "throughput of a slot differs from the median of the other blocks' by more than "
        "analysis.drift_tolerance is flagged in blocks.csv and the report.",
    ),
    (
        "Open-loop arrivals",
        "a slot with an arrival setting is sent calls at seeded random times, whether or not "
        "it is free: gaps drawn from a gamma distribution of shape burstiness (1: Poisson) "
        "and mean batch_size / rate_rps, scaled per chunk of 1,000 to the exact mean. The "
        "slot serves them one at a time in arrival order; a request's submit time is its "
        "scheduled arrival, so TTFT and E2E include its queueing delay, reported apart as "
        "queue_ms (start − arrival). Its window end is when it was told to stop. Backlog: "
        "arrivals due by the window's end not yet started; above max(1, max_backlog × the "
        "window's arrivals) the run is invalid (except a sweep's neighbour: see below).",
    ),
    (
        "Calibration",
        "per slot and compute dtype, in fresh processes pinned like the workers: copy "
        "bandwidth = 2 × buffer bytes / time of dst.copy_(src) (read + write traffic, the "
        "STREAM convention), the median of calibration.repeats copies of a buffer of at least "
        "4 × the last-level cache (CPU) or 1 GiB (accelerators), alone and while every slot "
        "copies at once (contended; total = the sum over slots); matmul throughput = 2n³ / "
        "time of a square n × n matmul in the dtype, the median of repeats.",
    ),
    (
        "Bytes per decode step",
        "W + B · (T + n/2) · 2·L·G·h·s: W the weights a forward pass reads (the blocks' "
        "linear layers as stored — INT4 packed values, scales, zero points — plus lm_head "
        "V·d and the norms (2L + 1)·d in the 16-bit dtype; with tied embeddings the "
        "embedding table is lm_head, counted once), plus every sequence's KV cache at its "
        "mean length over the decode steps (T prompt + n/2; L layers, G KV heads, h "
        "head_dim, s bytes per value of the compute dtype). Activations are left out.",
    ),
    (
        "Achieved bandwidth and MBU",
        "decode: bytes per decode step / mean TPOT; MBU = that / the slot's calibrated copy "
        "bandwidth alone (also for co-located runs: how far below its own ceiling "
        "co-location pushes a slot). A single-thread run's slot: / the sum of the contended "
        "copy bandwidths of the slots its one process hosts, as that process is pinned to "
        "the union of their cores, which draw on one memory together (with every calibrated "
        "slot in it, the sum is the contended total). runs.csv's peak_bw_bytes_s is the "
        "divisor used. Prefill: (W + B·T·2·L·G·h·s) / (mean TTFT − mean queue_ms).",
    ),
    (
        "FLOPs and MFU",
        "prefill: 2·P·B·T (P the blocks' linear parameters) + 2·V·d·B (lm_head on the last "
        "position) + B·2·L·H·h·T² (causal attention); a decode step: 2·(P + V·d)·B + "
        "B·4·L·H·h·c at context c, averaged over the steps. MFU = achieved FLOP/s / the "
        "slot's calibrated matmul FLOP/s in the compute dtype (a single-thread run's slot: "
        "the sum of its process's slots' matmul FLOP/s; peak_flop_s). Arithmetic intensity = "
        "FLOPs / bytes.",
    ),
    (
        "Regime",
        f"per phase: bandwidth-bound when MBU ≥ {BOUND_FRACTION:g} and MBU ≥ MFU; "
        f"compute-bound when MFU ≥ {BOUND_FRACTION:g} and MFU > MBU; else {BELOW_ROOFS} "
        f"(MBU < {BOUND_FRACTION:g} and MFU < {BOUND_FRACTION:g}), which the report words "
        "as below both roofs with both shares, the nearer roof first, e.g. “below both roofs "
        "(26% of compute, 2.0% of bandwidth)”. Below both roofs says where a run is, not why: "
        "overhead-bound — time outside the device's work (launch, synchronisation, host and "
        "framework time) dominating — would need that time measured per phase, and nothing "
        "records it (utilisation is the whole window's, and a shared device's for every slot "
        "on it; on CPU the host is the device), so no run is labelled overhead-bound. A "
        "slot's regime is that of the phase taking the larger part of a request: prefill "
        "(TTFT) or decode (TPOT × (n − 1)).",
    ),
    (
        "Contention sweep",
        "per block: the victim runs the scenario closed-loop while the neighbour runs it "
        "open-loop at fractions of its solo capacity (its requests/s in its alone run of "
        "the same block), one run per fraction in a seeded order; fraction 0 is the victim "
        "alone. The neighbour is driven to saturation on purpose: its backlog is recorded, "
        "not held against the run. Victim bandwidth: bytes per decode step / its mean TPOT. "
        "A slot's traffic: output tokens/s / batch_size × bytes per decode step; the pair's "
        "is the sum, held against the calibrated contended copy bandwidth of all slots.",
    ),
    (
        "Contention fits",
        "the victim's bandwidth against the neighbour's offered rate, every block's point "
        "a point: " + "; ".join(f"{m}: {f}" for m, f in MODELS.items()) + " (C = the "
        "calibrated contended total). Bounded least squares from many starts; intervals: "
        f"percentile, {N_BOOT} wild-bootstrap refits; models compared by AICc (K = "
        f"parameters + 1); a difference under {DISTINGUISHABLE:g} does not distinguish "
        "them: the lowest then only leads.",
    ),
]
