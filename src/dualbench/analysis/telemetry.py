"""A run's telemetry reduced to the co-located window: utilisation, power, energy, tokens/J.

Per slot: utilisation (the device's own figure, or CPU time over wall × cores), the seed's
T_active / T_total (share of the window the worker spent inside generate calls), and energy
when the slot has a device of its own. Per run: the energy of every device the run used, gross
and idle-corrected, and tokens per joule of all its slots together. A figure without a source
is missing, with the reason; nothing is estimated.

``reduce_run_telemetry`` is the entry point; dualbench.analysis.runs calls it once per record.
"""

from __future__ import annotations

from collections import defaultdict

from dualbench.analysis.metrics import call_end_ns
from dualbench.analysis.series import NS_PER_S, counter_delta, integrate, net_energy
from dualbench.analysis.series import mean as time_mean
from dualbench.telemetry.sources import WORKER_CPU_SOURCE

# Device utilisation metrics in order of preference, with the label the tables show.
UTIL_METRICS = [
    ("aicore_pct", "npu-smi Aicore Usage Rate"),
    ("npu_util_pct", "torch.npu.utilization"),
    ("gpu_util_pct", "NVML utilization.gpu"),
]
CPU_UTIL_SOURCE = "process CPU time / (wall × slot cores)"
# Energy counters: metric prefix -> joules per unit.
COUNTERS = {"energy_uj": 1e-6, "energy_mj": 1e-3}


def _series(rows: list[dict]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """{(device, metric): sorted series}."""
    out = defaultdict(list)
    for row in rows:
        out[(row["device"], row["metric"])].append((row["t_ns"], row["value"]))
    return {k: sorted(v) for k, v in out.items()}


def _cpu_series(rows: list[dict], device: str, slot: str) -> list[tuple[int, float]]:
    # By slot as well as device: slots that share a core set (more models than cores) share
    # its label, and each worker's CPU clock is a counter of its own.
    by_source = defaultdict(list)
    for row in rows:
        if row["device"] == device and row["slots"] == slot and row["metric"] == "cpu_time_s":
            by_source[row["source"]].append((row["t_ns"], row["value"]))
    best = by_source.get(WORKER_CPU_SOURCE) or next(iter(by_source.values()), [])
    return sorted(best)


def _device_slots(rows: list[dict]) -> dict[str, tuple[str, ...]]:
    return {row["device"]: tuple(row["slots"].split("+")) for row in rows}


def active_fraction(calls: list[dict], start: int, end: int) -> float | None:
    """Share of [start, end] covered by generate calls (submit to last token): T_active /
    T_total of the origin note, from the worker's own timestamps."""
    if end <= start:
        return None
    busy = 0
    for call in calls:
        call_end = call_end_ns(call)
        if call_end is None:
            continue
        lo, hi = max(call["submit_ns"], start), min(call_end, end)
        busy += max(0, hi - lo)
    return min(1.0, busy / (end - start))


def device_energy(series, device: str, wraps: dict, window, idle) -> dict:
    """Gross and net joules, mean and idle power of one device over the window."""
    start, end = window
    window_s = (end - start) / NS_PER_S
    counters = {m: s for (d, m), s in series.items() if d == device and m.split(":")[0] in COUNTERS}
    power = series.get((device, "power_w"))
    # The idle period starts with the first sample (a read takes time, its stamp is its middle).
    firsts = [s[0][0] for s in (*counters.values(), power or []) if s]
    idle = (max(idle[0], max(firsts, default=idle[0])), idle[1])
    idle_s = max(0.0, (idle[1] - idle[0]) / NS_PER_S)
    gross = idle_j = None
    source = ""
    if counters:
        parts, idle_parts = [], []
        for metric, s in counters.items():
            scale = COUNTERS[metric.split(":")[0]]
            wrap = wraps.get(metric)
            parts.append(counter_delta(s, start, end, wrap))
            idle_parts.append(counter_delta(s, *idle, wrap) if idle_s > 0 else None)
            parts[-1] = None if parts[-1] is None else parts[-1] * scale
            idle_parts[-1] = None if idle_parts[-1] is None else idle_parts[-1] * scale
        if all(p is not None for p in parts):
            gross, source = sum(parts), "energy counter delta"
            if all(p is not None for p in idle_parts):
                idle_j = sum(idle_parts)
    if gross is None and power:
        gross = integrate(power, start, end)
        source = "sampled power, trapezoid" if gross is not None else ""
        if idle_s > 0:
            idle_j = integrate(power, *idle)
    idle_w = idle_j / idle_s if idle_j is not None and idle_s > 0 else None
    return {
        "energy_j": gross,
        "energy_net_j": net_energy(gross, idle_w, window_s),
        "power_mean_w": gross / window_s if gross is not None and window_s > 0 else None,
        "power_idle_w": idle_w,
        "energy_source": source,
    }


def process_cores(record: dict, name: str) -> int:
    """The cores slot ``name``'s calls could run on: its own core set, or in a single-thread
    run the union of the process's slots' sets (the one process is pinned to all of them, so
    each slot's calls use every core, and its CPU time over its own cores alone could pass
    100%)."""
    slots = record["slots"]
    own = set((slots[name].get("slot") or {}).get("cores") or ())
    group = ((slots[name].get("result") or {}).get("single_thread") or {}).get("process_slots")
    for other in group or ():
        own |= set((slots.get(other, {}).get("slot") or {}).get("cores") or ())
    return len(own)


def reduce_run_telemetry(
    record: dict, rows: list[dict], window: tuple[int, int], tokens: dict[str, int]
):
    """(per-slot columns {slot: {...}}, run columns {...}) of one run record's telemetry
    ``rows`` over ``window``; ``tokens``: each slot's output tokens inside the window."""
    tele = record.get("telemetry") or {}
    missing = tele.get("missing") or {}
    idle = (tele.get("idle_start_ns", 0), tele.get("idle_end_ns", 0))
    wraps = {}
    for src in tele.get("sources", []):
        wraps.update(src.get("wraps") or {})
    series = _series(rows)
    owners = _device_slots(rows)
    start, end = window
    window_s = (end - start) / NS_PER_S
    devices = {
        d: device_energy(series, d, wraps, window, idle)
        for d in owners
        if any(dev == d and (m == "power_w" or m.split(":")[0] in COUNTERS) for dev, m in series)
    }
    devices = {d: e for d, e in devices.items() if e["energy_j"] is not None}
    no_energy = missing.get("energy") or (
        "" if devices else "no power or energy samples inside the window"
    )

    slots = {}
    for name, slot in record["slots"].items():
        result = slot["result"] or {}
        cols = {"util_pct": None, "util_source": "", "active_pct": None}
        cores = process_cores(record, name)
        # The worker's own CPU clock (read at release and after each call) is exact at the
        # window's end; the parent's samples (10 ms ticks) only where the worker has none.
        cpu = _cpu_series(rows, slot["device"], name)
        if cpu and cores and window_s > 0:
            delta = counter_delta(cpu, start, end)
            if delta is not None:
                cols["util_pct"] = 100 * delta / (window_s * cores)
                cols["util_source"] = CPU_UTIL_SOURCE
        for metric, label in UTIL_METRICS:
            if cols["util_pct"] is not None:
                break
            for (device, m), s in series.items():
                if m == metric and name in owners.get(device, ()):
                    value = time_mean(s, start, end)
                    if value is not None:
                        cols["util_pct"], cols["util_source"] = value, label
                        break
        active = active_fraction(result.get("calls") or [], start, end)
        cols["active_pct"] = None if active is None else 100 * active
        own = [e for d, e in devices.items() if owners[d] == (name,)]
        shared = [d for d in devices if name in owners[d] and owners[d] != (name,)]
        if own:
            e = own[0]
            cols.update(e)
            cols["tokens_per_j"] = tokens.get(name, 0) / e["energy_j"] if e["energy_j"] else None
            cols["energy_note"] = ""
        else:
            cols.update({k: None for k in ("energy_j", "energy_net_j", "power_mean_w",
                                           "power_idle_w", "tokens_per_j")})  # fmt: skip
            cols["energy_source"] = ""
            cols["energy_note"] = (
                f"{', '.join(shared)} is shared by {'+'.join(owners[shared[0]])}: "
                "see the run's energy"
                if shared
                else no_energy
            )
        slots[name] = cols

    total = sum(e["energy_j"] for e in devices.values()) if devices else None
    net = [e["energy_net_j"] for e in devices.values()]
    all_tokens = sum(tokens.values())
    run = {
        "devices": " + ".join(sorted(devices)),
        "window_s": window_s,
        "energy_j": total,
        "energy_net_j": sum(net) if devices and all(n is not None for n in net) else None,
        "power_mean_w": total / window_s if total is not None and window_s > 0 else None,
        "output_tokens": all_tokens,
        "tokens_per_j": all_tokens / total if total else None,
        "energy_source": ", ".join(sorted({e["energy_source"] for e in devices.values()})),
        "energy_note": "" if devices else no_energy,
    }
    run["tokens_per_j_net"] = (
        all_tokens / run["energy_net_j"]
        if run["energy_net_j"] and run["energy_net_j"] > 0
        else None
    )
    return slots, run
