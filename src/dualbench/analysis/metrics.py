"""Per-request and per-slot metrics from raw timestamps (DESIGN §6). Pure functions: a run
record (or one slot's result) in, numbers out. dualbench.analysis.definitions states each
metric exactly as computed here.

A slot's result says how it was driven (``schedule``; records from before it are closed loop).
An open-loop slot (dualbench.measure.open_loop) has its calls' ``submit_ns`` at their arrival,
so its TTFT and E2E include the queueing delay, reported apart as ``queue_ms`` (start minus
arrival); it is running from its release to ``stop_ns``, however long it idled before; and its
validity is about keeping up with its arrivals (the backlog), not about min_requests.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from dualbench.analysis.series import NS_PER_S
from dualbench.config.vocabulary import PRECISION_DTYPES
from dualbench.measure.arrivals import backlog

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


def token_time_sd(gaps_ms) -> float:
    """The standard deviation (ddof 0) of the inter-token times: how evenly a slot's tokens
    came. Over the ITL values as pooled (each gap once per sequence of its call: repeating a
    slot's values batch_size times leaves a ddof-0 sd as it is); NaN under two gaps."""
    gaps = np.asarray(gaps_ms, dtype=float)
    return float(np.std(gaps)) if gaps.size >= 2 else math.nan


def is_open_loop(result: dict) -> bool:
    """Whether a slot's result comes from the open loop (records without ``schedule`` predate
    it and are closed loop)."""
    return result.get("schedule", "closed") == "open"


def call_end_ns(call: dict) -> int | None:
    """When a call stopped occupying its slot: its last token, or, for a call the trial's stop
    cut (dualbench.measure.engine), the cut, which may come before any token. None: neither."""
    ends = [*call["token_ns"][-1:], *([call["cut_ns"]] if "cut_ns" in call else [])]
    return max(ends) if ends else None


def complete_inside(call: dict, start: int, end: int) -> bool:
    """Whether the call's requests were served whole inside [start, end]. A cut call never was:
    its last token came after the stop, or not at all."""
    times = call["token_ns"]
    return "cut_ns" not in call and bool(times) and times[0] >= start and times[-1] <= end


def co_window(slot_results: dict[str, dict]) -> tuple[int, int]:
    """(start_ns, end_ns) of the interval where every slot was running (may be empty): from the
    latest barrier release to the earliest end. Starting at the release rather than at the
    first submit keeps a slot's first request inside the window when the other slot was
    released a few microseconds later. A closed-loop slot ends at its last token, or where its
    last call was cut after the stop, at the cut (call_end_ns: it computed until then); an
    open-loop slot at ``stop_ns``, when it saw the stop: it is offered load until then, and its
    last token may lie long before (it idles between arrivals)."""
    if slot_results and all(r.get("single_thread") for r in slot_results.values()):
        return single_thread_window(slot_results)
    starts, ends = [], []
    for result in slot_results.values():
        starts.append(result["release_ns"])
        if is_open_loop(result):
            ends.append(result["stop_ns"])
            continue
        call_ends = [e for e in map(call_end_ns, result["calls"]) if e is not None]
        if not call_ends:
            return 0, 0
        ends.append(max(call_ends))
    return max(starts), min(ends)


def single_thread_window(slot_results: dict[str, dict]) -> tuple[int, int]:
    """A single-thread run's window: its process's release to the end of its last call. One
    thread serves the slots in whole rounds, one call each (dualbench.measure.single_thread),
    so at no instant do two slots compute, and "every slot running" can only mean the
    process's span; over it every slot has made the same number of calls, which the
    co-located rule (latest first submit to earliest last token) would cut to one round fewer
    at each end."""
    ends = [e for r in slot_results.values() for e in map(call_end_ns, r["calls"]) if e is not None]
    if not ends:
        return 0, 0
    return min(r["release_ns"] for r in slot_results.values()), max(ends)


def rate_text(value: float) -> str:
    """A rate or burstiness for a label: 4 significant digits, always a decimal point
    (1.5, 3.0, 0.3 rather than 0.30000000000000004)."""
    return str(float(f"{value:.4g}"))


def arrival_label(arrival: dict | None) -> str:
    """A slot's arrivals in words: "poisson 1.5 rps", "gamma 1.5 rps b=0.5" (burstiness b);
    empty for a closed-loop slot."""
    if not arrival:
        return ""
    label = f"{arrival['process']} {rate_text(arrival['rate_rps'])} rps"
    if arrival["process"] == "gamma":
        label += f" b={rate_text(arrival.get('burstiness', 1.0))}"
    return label


def arrival_metrics(result: dict, settings: dict, window: tuple[int, int], queue_ms) -> dict:
    """The open-loop figures of a slot over ``window``; ``queue_ms``: the queueing delays of
    its requests inside the window (one per sequence, as its latencies). Closed loop: NaN,
    with an empty label and queue_n 0."""
    start, end = window
    arrival = settings.get("arrival")
    open_loop = bool(arrival) and is_open_loop(result)
    due = result.get("arrivals_ns") or []
    row = {
        "arrival": arrival_label(arrival) if open_loop else "",
        "offered_rps": arrival["rate_rps"] if open_loop else math.nan,
        "arrivals": sum(start <= a <= end for a in due) if open_loop else math.nan,
        # Arrivals due by the window's end and not started by then: load offered inside the
        # window that the slot did not serve.
        "backlog": (
            backlog(due, [c["start_ns"] for c in result["calls"]], end) if open_loop else math.nan
        ),
    }
    for stat, value in summarize(queue_ms).items():
        row[f"queue_ms_{stat}"] = value
    row["queue_n"] = sum(not math.isnan(v) for v in queue_ms)
    return row


def slot_metrics(result: dict, settings: dict, window: tuple[int, int]) -> dict:
    """Throughput, request and latency figures of one slot inside ``window``; with the
    open-loop figures of ``arrival_metrics`` (NaN for a closed-loop slot)."""
    start, end = window
    window_s = max(0, end - start) / NS_PER_S
    batch = settings["batch_size"]
    tokens = requests = prefill_tokens = 0
    lat: dict[str, list[float]] = {m: [] for m in LATENCIES}
    queue_ms: list[float] = []
    for call in result["calls"]:
        times = call["token_ns"]
        tokens += batch * sum(start <= t <= end for t in times)
        if times and start <= times[0] <= end:
            prefill_tokens += batch * settings["prompt_tokens"]
        if complete_inside(call, start, end):
            requests += batch
            one = request_latencies(call["submit_ns"], times)
            # Requests of one call share timestamps: each counts once per sequence.
            for m in ("ttft", "tpot", "e2e"):
                lat[m].extend([one[f"{m}_ms"]] * batch)
            lat["itl"].extend(one["itl_ms"] * batch)
            if "queue_ns" in call:
                queue_ms.extend([call["queue_ns"] / NS_PER_MS] * batch)
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
    row["tpot_ms_sd"] = token_time_sd(lat["itl"])
    row.update(arrival_metrics(result, settings, window, queue_ms))
    return row


def backlog_findings(
    record: dict, window: tuple[int, int], slot_rows: dict[str, dict] | None = None
) -> tuple[list[str], list[str]]:
    """(reasons, warnings) from the open-loop slots' backlogs. A slot that could not keep up
    with its arrivals, more than max(1, max_backlog x its arrivals in the window) of them not
    started by the window's end, measured a queue that only grew: its latencies are those of
    an overload, not of the rate. That invalidates the run, except for a contention sweep's
    neighbour (``spec["sweep"]["neighbour"]``), driven to saturation on purpose: a warning."""
    reasons, warnings = [], []
    neighbour = (record["spec"].get("sweep") or {}).get("neighbour")
    for name, slot in record["slots"].items():
        settings, result = slot["settings"], slot["result"]
        arrival = settings.get("arrival")
        if not arrival or not is_open_loop(result):
            continue
        own = slot_rows[name] if slot_rows is not None else slot_metrics(result, settings, window)
        queued, due = own["backlog"], own["arrivals"]
        max_backlog = arrival.get("max_backlog", 0.1)
        if queued <= max(1, max_backlog * due):
            continue
        share = f"{queued / due:.0%} of {due}" if due else "none of them due inside the window"
        head = f"slot {name}: {queued} arrivals still queued at window end ({share}"
        rate = rate_text(arrival["rate_rps"])
        if name == neighbour:
            warnings.append(
                f"{head}): the sweep's neighbour, driven to saturation at {rate} rps on "
                "purpose; its backlog does not invalidate the run"
            )
        else:
            reasons.append(f"{head}, limit {max_backlog:.0%}): it cannot keep up with {rate} rps")
    return reasons, warnings


def validity_warnings(
    record: dict, window: tuple[int, int], slot_rows: dict[str, dict] | None = None
) -> list[str]:
    """What is flagged but does not invalidate a complete run (``status`` ok): a contention
    sweep neighbour's backlog past its limit (``backlog_findings``)."""
    if record["status"] != "ok":
        return []
    return backlog_findings(record, window, slot_rows)[1]


def validity(
    record: dict, window: tuple[int, int], slot_rows: dict[str, dict] | None = None
) -> list[str]:
    """Reasons the run is invalid (empty list: valid). ``slot_rows``: each slot's
    ``slot_metrics`` over ``window`` where the caller has them already (else computed here).
    An open-loop slot is judged by its backlog (``backlog_findings``) instead of
    min_requests; what is only flagged is ``validity_warnings``."""
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
        # A call cut by the stop is short by design and outside the window (call_end_ns).
        wrong = [
            c
            for c in calls
            if "cut_ns" not in c and (c["delivered"] != expected or len(c["token_ns"]) != expected)
        ]
        if wrong:
            got = sorted({c["delivered"] for c in wrong})
            reasons.append(
                f"slot {name}: {len(wrong)} call(s) delivered {got} tokens instead of {expected}"
            )
        if settings.get("arrival") and is_open_loop(result):
            continue  # judged by its backlog below: its request count is the rate's business
        own = slot_rows[name] if slot_rows is not None else slot_metrics(result, settings, window)
        done = own["requests"]
        if done < settings["min_requests"]:
            reasons.append(
                f"slot {name}: {done} requests finished inside the window, "
                f"min_requests is {settings['min_requests']}"
            )
    return reasons + backlog_findings(record, window, slot_rows)[0]
