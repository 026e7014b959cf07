"""Per-request and per-slot metrics from raw timestamps (DESIGN §6). Pure functions: a run
record (or one slot's result) in, numbers out. dualbench.analysis.definitions states each
metric exactly as computed here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dualbench.analysis.series import NS_PER_S
from dualbench.config.vocabulary import PRECISION_DTYPES

NS_PER_MS = 1_000_000
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99", "max")
# A window may fall short of duration_s by the release skew between workers (microseconds);
# anything beyond this fraction means a slot stopped early.
MIN_WINDOW_FRACTION = 0.99


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
        row[f"{m}_n"] = sum(not math.isnan(v) for v in lat[m])
    return row


def validity(
    record: dict, window: tuple[int, int], slot_rows: dict[str, dict] | None = None
) -> list[str]:
    """Reasons the run is invalid (empty list: valid). ``slot_rows``: each slot's
    ``slot_metrics`` over ``window`` where the caller has them already (else computed here)."""
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
        own = slot_rows[name] if slot_rows is not None else slot_metrics(result, settings, window)
        done = own["requests"]
        if done < settings["min_requests"]:
            reasons.append(
                f"slot {name}: {done} requests finished inside the window, "
                f"min_requests is {settings['min_requests']}"
            )
    return reasons
