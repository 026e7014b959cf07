"""Per-request and per-run metrics from raw timestamps (DESIGN §6). Pure functions: a run record
in, rows out. ``DEFINITIONS`` states each metric exactly as computed here; the report prints it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dualbench.config.vocabulary import PRECISION_DTYPES
from dualbench.models.fidelity import FIDELITY_SEED, FIDELITY_SEQUENCES, FIDELITY_TOKENS

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")
# A window may fall short of duration_s by the release skew between workers (microseconds);
# anything beyond this fraction means a slot stopped early.
MIN_WINDOW_FRACTION = 0.99
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
        "the run.",
    ),
    (
        "Request",
        "One sequence of a generate() call; a call carries batch_size requests that "
        "share timestamps. Workers run a closed loop: the next call starts when one returns.",
    ),
    (
        "Co-located window",
        "From the latest barrier release to the earliest last token over the slots of a run: "
        "the interval in which every slot was running. Workers keep running until every slot "
        "has been measured for duration_s and min_requests, so each slot's load lasts the "
        "whole window. For a slot alone, the window is its release to its last token.",
    ),
    ("TTFT", "first token time − submit time, per request."),
    ("TPOT", "(last token time − first token time) / (n − 1), n = new tokens of the request."),
    (
        "ITL",
        "every gap between consecutive token times of a request (n − 1 gaps per request); "
        "its statistics pool all gaps of all requests.",
    ),
    ("E2E", "last token time − submit time, per request."),
    (
        "Latency statistics",
        "over the requests whose tokens all lie inside the window (every measured request is "
        "submitted after its slot's barrier release): "
        "mean, p50, p90, p99 (numpy linear interpolation) and max, in ms.",
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
        "V1, V2",
        "V1_A, V1_B: output throughput of slot A, B alone (same slot, same device); "
        "V1 = (V1_A + V1_B) / 2; V2: total output throughput of both co-located.",
    ),
    ("Growth", "(V2 − V1) / V1: what the second model adds to one model's throughput."),
    ("Scaling efficiency", "V2 / (V1_A + V1_B), which is V2 / (2·V1): 100% means no interference."),
    ("Slowdown", "per model, throughput alone / throughput co-located (1.00 = no slowdown)."),
    ("Overlap", "window seconds / span seconds, span = first submit to last token over all slots."),
    (
        "Validity",
        "a run is valid when its status is ok, every worker's weights loaded in the run's "
        "precision, every request delivered new_tokens tokens, the slots overlapped, the "
        f"window lasted at least {MIN_WINDOW_FRACTION:.0%} of duration_s and every slot had "
        "min_requests requests (sequences: batch_size per call) inside it.",
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
        "INT4 value / baseline value for the same scenario, layout and slot; baseline fp16 if "
        "measured, else bf16. The pair sums the co-located slots' throughput and peak memory.",
    ),
]


def request_latencies(submit_ns: int, token_ns: list[int]) -> dict:
    """TTFT, TPOT, E2E (ms) and the ITL gaps (ms) of one request."""
    if not token_ns:
        return {"ttft_ms": math.nan, "tpot_ms": math.nan, "e2e_ms": math.nan, "itl_ms": []}
    n = len(token_ns)
    gaps = [(b - a) / NS_PER_MS for a, b in itertools.pairwise(token_ns)]
    return {
        "ttft_ms": (token_ns[0] - submit_ns) / NS_PER_MS,
        "tpot_ms": (token_ns[-1] - token_ns[0]) / NS_PER_MS / (n - 1) if n > 1 else math.nan,
        "e2e_ms": (token_ns[-1] - submit_ns) / NS_PER_MS,
        "itl_ms": gaps,
    }


def summarize(values) -> dict[str, float]:
    """mean, p50, p90, p99, max of ``values`` (NaNs dropped); all NaN when empty."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return dict.fromkeys(STATS, math.nan)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "mean": float(arr.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(arr.max()),
    }


def co_window(slot_results: dict[str, dict]) -> tuple[int, int]:
    """(start_ns, end_ns) of the interval where every slot was running (may be empty): from the
    latest barrier release to the earliest last token. Starting at the release rather than at
    the first submit keeps a slot's first request inside the window when the other slot was
    released a few microseconds later."""
    starts, ends = [], []
    for result in slot_results.values():
        last_tokens = [c["token_ns"][-1] for c in result["calls"] if c["token_ns"]]
        if not last_tokens:
            return 0, 0
        starts.append(result["release_ns"])
        ends.append(max(last_tokens))
    return max(starts), min(ends)


def slot_metrics(result: dict, settings: dict, window: tuple[int, int]) -> dict:
    """Throughput, request and latency figures of one slot inside ``window``."""
    start, end = window
    window_s = max(0, end - start) / NS_PER_S
    batch = settings["batch_size"]
    tokens = requests = prefill_tokens = 0
    lat: dict[str, list[float]] = {m: [] for m in LATENCIES}
    for call in result["calls"]:
        times = call["token_ns"]
        tokens += batch * sum(start <= t <= end for t in times)
        if times and start <= times[0] <= end:
            prefill_tokens += batch * settings["prompt_tokens"]
        if times and times[0] >= start and times[-1] <= end:
            requests += batch
            one = request_latencies(call["submit_ns"], times)
            # Requests of one call share timestamps: each counts once per sequence.
            for m in ("ttft", "tpot", "e2e"):
                lat[m].extend([one[f"{m}_ms"]] * batch)
            lat["itl"].extend(one["itl_ms"] * batch)
    row = {
        "window_s": window_s,
        "requests": requests,
        "output_tokens": tokens,
        "throughput_tok_s": tokens / window_s if window_s > 0 else math.nan,
        "prefill_tok_s": prefill_tokens / window_s if window_s > 0 else math.nan,
        "request_rate_rps": requests / window_s if window_s > 0 else math.nan,
    }
    for m in LATENCIES:
        for stat, value in summarize(lat[m]).items():
            row[f"{m}_ms_{stat}"] = value
    return row


def validity(record: dict, window: tuple[int, int]) -> list[str]:
    """Reasons the run is invalid (empty list: valid)."""
    spec = record["spec"]
    if record["status"] != "ok":
        return [f"status {record['status']}: {record['error']}"]
    reasons = []
    start, end = window
    if end <= start:
        reasons.append("slots did not overlap")
    window_s = max(0, end - start) / NS_PER_S
    if end > start and window_s < MIN_WINDOW_FRACTION * spec["duration_s"]:
        reasons.append(f"window {window_s:.2f} s is shorter than duration_s {spec['duration_s']} s")
    expected_dtype = PRECISION_DTYPES.get(spec.get("precision"))
    for name, slot in record["slots"].items():
        settings, result = slot["settings"], slot["result"]
        loaded = result.get("dtype")
        if expected_dtype and loaded and loaded != expected_dtype:
            reasons.append(
                f"slot {name}: weights loaded as {loaded}, precision {spec['precision']} "
                f"needs {expected_dtype}"
            )
        expected = settings["new_tokens"]
        calls = result["calls"]
        wrong = [c for c in calls if c["delivered"] != expected or len(c["token_ns"]) != expected]
        if wrong:
            got = sorted({c["delivered"] for c in wrong})
            reasons.append(
                f"slot {name}: {len(wrong)} call(s) delivered {got} tokens instead of {expected}"
            )
        done = slot_metrics(result, settings, window)["requests"]
        if done < settings["min_requests"]:
            reasons.append(
                f"slot {name}: {done} requests finished inside the window, "
                f"min_requests is {settings['min_requests']}"
            )
    return reasons
