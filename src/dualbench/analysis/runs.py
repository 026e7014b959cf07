"""One run record -> every row it contributes to the per-run tables, in a single pass.

``record_rows`` reduces a record once: its co-located window, each slot's metrics over that
window (dualbench.analysis.metrics), the validity reasons and warnings (from those same
metrics), the time origin of the tables, and its telemetry over the window
(dualbench.analysis.telemetry). From these it builds the record's runs.csv rows (one per
slot), requests.csv rows (one per sequence), its energy.csv row and its telemetry.csv rows.
An open-loop slot's arrival columns come with its metrics (metrics.arrival_metrics); its
settings' label and rate are in its row even when the run failed.

``run_tables`` and ``energy_row`` keep the older, narrower entry points on the same helpers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from dualbench.analysis.bandwidth import add_roofline
from dualbench.analysis.calibration import Peaks
from dualbench.analysis.columns import (
    LOCKSTEP_COLUMNS,
    MACHINE_STATE_COLUMNS,
    TELEMETRY_RUN_COLUMNS,
    run_identity,
)
from dualbench.analysis.intervals import PERCENTILE_MIN_N, percentile_label
from dualbench.analysis.lockstep import turn_stats
from dualbench.analysis.metrics import (
    LATENCIES,
    NS_PER_MS,
    arrival_label,
    call_end_ns,
    co_window,
    complete_inside,
    request_latencies,
    slot_metrics,
    validity,
    validity_warnings,
)
from dualbench.analysis.series import NS_PER_S
from dualbench.analysis.telemetry import reduce_run_telemetry
from dualbench.config.vocabulary import LOCKSTEP, layout_schedule
from dualbench.telemetry.sources import WORKER_CPU_SOURCE

Window = tuple[int, int]


@dataclass(frozen=True)
class RecordRows:
    """Every row one run record contributes to the tables of results/metrics/."""

    runs: list[dict]  # runs.csv: one per slot
    requests: list[dict]  # requests.csv: one per sequence of every call
    energy: dict  # energy.csv: the run as a whole
    telemetry: list[dict]  # telemetry.csv: every sample, time from the first release


@dataclass(frozen=True)
class _Reduced:
    """A record's timestamps, reduced once."""

    complete: bool  # status ok and every slot has a result
    window: Window  # the co-located window; (0, 0) when not complete
    t0: int | None  # the earliest barrier release: the tables' time origin
    slots: dict[str, dict]  # slot -> slot_metrics over the window (complete runs only)
    reasons: list[str]  # why the run is invalid; empty: valid
    warnings: list[str]  # flagged, not invalidating: a sweep neighbour's backlog
    firsts: dict[str, int]  # slot -> its first submit
    lasts: dict[str, int]  # slot -> its last token
    span_s: float  # first submit to last token over all slots
    schedule: str  # free, lockstep or single_thread (vocabulary.layout_schedule)
    turns: dict  # runs.csv's LOCKSTEP_COLUMNS of the run, the same for every slot

    def rel(self, ns: int) -> float:
        """Seconds from the time origin."""
        return (ns - self.t0) / NS_PER_S


def record_rows(
    record: dict,
    model_sources: dict[str, str] | None = None,
    telemetry_rows: list | None = None,
    peaks: dict[tuple[str, str], Peaks] | None = None,
) -> RecordRows:
    """Every row of one run record, each figure computed once. ``model_sources``: the model
    column per slot (default: the record's); ``telemetry_rows``: the run's telemetry.csv rows,
    None when it recorded none (the utilisation and energy columns then say so); ``peaks``:
    the calibrations by (slot, dtype) for the roofline columns (none: MBU and MFU empty)."""
    ident = run_identity(record["spec"])
    reduced = _reduce(record)
    runs, requests = [], []
    for name, slot in record["slots"].items():
        runs.append(_run_row(record, ident, name, slot, reduced, model_sources))
        if reduced.complete:
            requests += _request_rows(ident, name, slot, reduced)
    per_slot, run = _telemetry_columns(
        record, reduced.complete, reduced.window, telemetry_rows, _tokens(runs)
    )
    for row in runs:
        row.update(per_slot[row["slot"]])
    add_roofline(record, runs, peaks or {})
    return RecordRows(
        runs=runs,
        requests=requests,
        energy={**ident, **run},
        telemetry=_timeline_rows(record, ident["run_id"], reduced.t0, telemetry_rows or []),
    )


def run_tables(
    record: dict, model_sources: dict[str, str] | None = None, telemetry_rows: list | None = None
) -> tuple[list[dict], list[dict]]:
    """(run rows, request rows) of one run record; with its telemetry.csv rows, also the
    utilisation and energy columns (dualbench.analysis.telemetry)."""
    rows = record_rows(record, model_sources, telemetry_rows)
    return rows.runs, rows.requests


def energy_row(record: dict, telemetry_rows: list, run_rows: list[dict]) -> dict:
    """The run's energy as a whole (every device it used, the tokens of all its slots from
    ``run_rows``); ``record_rows(...).energy`` gives the same without a second pass."""
    complete, window = _window(record)
    _, run = _telemetry_columns(record, complete, window, telemetry_rows, _tokens(run_rows))
    return {**run_identity(record["spec"]), **run}


# --- the single reduction ---------------------------------------------------------------------


def _window(record: dict) -> tuple[bool, Window]:
    """(complete, co-located window) of a record."""
    results = {n: s["result"] for n, s in record["slots"].items()}
    complete = record["status"] == "ok" and all(r is not None for r in results.values())
    return complete, co_window(results) if complete else (0, 0)


def _reduce(record: dict) -> _Reduced:
    complete, window = _window(record)
    results = {n: s["result"] for n, s in record["slots"].items()}
    schedule = layout_schedule(record["spec"]["layout"])
    slots = {}
    turns = _turn_columns(record, schedule, complete)
    if complete:
        slots = {
            n: slot_metrics(s["result"], s["settings"], window) for n, s in record["slots"].items()
        }
        reasons = validity(record, window, slots)
        warnings = validity_warnings(record, window, slots)
        if turns["turn_overlaps"]:
            # Two slots computing at once: the ring did not hold, so the run did not measure
            # lockstep (its figures would pass free co-location off as lockstep's).
            reasons.append(
                f"{LOCKSTEP}: {turns['turn_overlaps']} pair(s) of turns of different slots "
                "overlapped in the window; the turns were not strict"
            )
    else:
        reasons = [f"status {record['status']}: {record['error']}"]
        warnings = []
    firsts = {n: r["calls"][0]["submit_ns"] for n, r in results.items() if r and r["calls"]}
    lasts = {
        n: max((e for e in map(call_end_ns, r["calls"]) if e is not None), default=0)
        for n, r in results.items()
        if r and r["calls"]
    }
    return _Reduced(
        complete=complete,
        window=window,
        t0=min((r["release_ns"] for r in results.values() if r), default=None),
        slots=slots,
        reasons=reasons,
        warnings=warnings,
        firsts=firsts,
        lasts=lasts,
        span_s=(max(lasts.values()) - min(firsts.values())) / NS_PER_S if firsts else math.nan,
        schedule=schedule,
        turns=turns,
    )


def _turn_columns(record: dict, schedule: str, complete: bool) -> dict:
    """runs.csv's LOCKSTEP_COLUMNS: a complete lockstep run's turn_stats; a run of another
    schedule took no turns (0, 0, no hand-over); an incomplete lockstep run's are unknown."""
    if schedule != LOCKSTEP:
        return {**dict.fromkeys(LOCKSTEP_COLUMNS, math.nan), "turns": 0, "turn_overlaps": 0}
    if not complete:
        return dict.fromkeys(LOCKSTEP_COLUMNS, math.nan)
    stats = turn_stats(record)
    return {
        "turns": stats["turns"],
        "turn_overlaps": stats["overlaps"],
        "handoff_us_p50": stats["handoff_us_p50"],
        "handoff_us_mean": stats["handoff_us_mean"],
    }


def _tokens(run_rows: list[dict]) -> dict[str, int]:
    """Output tokens inside the window per slot (0 where the slot has none)."""
    return {r["slot"]: r.get("output_tokens") or 0 for r in run_rows}


# --- runs.csv and requests.csv ----------------------------------------------------------------


def _run_row(
    record: dict,
    ident: dict,
    name: str,
    slot: dict,
    reduced: _Reduced,
    model_sources: dict[str, str] | None,
) -> dict:
    """A slot's runs.csv row, less the telemetry columns."""
    settings, result = slot["settings"], slot["result"]
    row = {
        **ident,
        "slot": name,
        "model": (model_sources or {}).get(name, slot["model"]),
        "backend": record["backend"].get("kind", ""),
        "device": slot["device"],
        "schedule": reduced.schedule,
        "status": record["status"],
        "error": record["error"],
        "valid": not reduced.reasons,
        "invalid_reasons": "; ".join(reduced.reasons),
        # Allowed but flagged: e.g. a dtype this device only emulates (DESIGN §6), a sweep
        # neighbour's backlog.
        "warnings": "; ".join([*record.get("warnings", []), *reduced.warnings]),
        "prompt_tokens": settings["prompt_tokens"],
        "new_tokens": settings["new_tokens"],
        "batch_size": settings["batch_size"],
        # What the slot was asked to do, whether or not it ran (metrics.arrival_metrics
        # gives the same two for a complete run).
        "arrival": arrival_label(settings.get("arrival")),
        "offered_rps": (settings.get("arrival") or {}).get("rate_rps", math.nan),
        "allocator": record["spec"].get("allocator", ""),
        **{k: (record.get("machine_state") or {}).get(k) for k in MACHINE_STATE_COLUMNS},
        **reduced.turns,
    }
    if result is not None:
        row.update(_result_columns(result))
    if reduced.complete:
        row.update(reduced.slots[name])
        row.update(_window_columns(name, reduced, row["window_s"]))
        row["percentile_note"] = _percentile_note(row)
    return row


def _percentile_note(row: dict) -> str:
    """Which p90/p99 of the slot are over too few values to be more than their maximum."""
    flagged = [
        f"{m} {stat}: {label}"
        for m in LATENCIES
        for stat in PERCENTILE_MIN_N
        if (label := percentile_label(stat, row[f"{m}_n"]))
    ]
    return "; ".join(flagged)


def _result_columns(result: dict) -> dict:
    """What a slot that ran reports whether or not the run completed: weights, memory,
    load and warmup."""
    conversion = result.get("conversion") or {}
    memory = result["memory"]
    return {
        "kernel": (result.get("weights") or {}).get("kernel"),
        "weight_bytes": conversion.get("weight_bytes"),
        "linear_weight_bytes": conversion.get("linear_weight_bytes"),
        "load_s": result["load_s"],
        "warmup_s": result["warmup_s"],
        **{k: memory.get(k) for k in ("peak_mem_bytes", "mem_reserved_peak_bytes", "mem_source")},
        "fragmentation": memory.get("fragmentation"),
    }


def _window_columns(name: str, reduced: _Reduced, window_s: float) -> dict:
    """The window and the slot's span, in seconds from the time origin."""
    return {
        "window_start_s": reduced.rel(reduced.window[0]),
        "window_end_s": reduced.rel(reduced.window[1]),
        # An open-loop slot at a low rate may have had no arrival in the whole run: no span.
        "slot_start_s": reduced.rel(reduced.firsts[name]) if name in reduced.firsts else math.nan,
        "slot_end_s": reduced.rel(reduced.lasts[name]) if name in reduced.lasts else math.nan,
        "span_s": reduced.span_s,
        "overlap_frac": window_s / reduced.span_s if reduced.span_s else math.nan,
    }


def _request_rows(ident: dict, name: str, slot: dict, reduced: _Reduced) -> list[dict]:
    """One row per sequence of each call of a slot (a call carries batch_size sequences)."""
    start, end = reduced.window
    rows = []
    for i, call in enumerate(slot["result"]["calls"]):
        times = call["token_ns"]
        lat = request_latencies(call["submit_ns"], times)
        inside = complete_inside(call, start, end)
        itl = lat["itl_ms"]
        for b in range(slot["settings"]["batch_size"]):
            rows.append(
                {
                    **ident,
                    "slot": name,
                    "call": i,
                    "index": b,
                    "in_window": inside,
                    # The stop cut it: short by design, outside the window, never a request.
                    "cut": "cut_ns" in call,
                    "submit_s": reduced.rel(call["submit_ns"]),
                    # Open loop: submit_s is the arrival, and this the wait until its start.
                    "queue_ms": call["queue_ns"] / NS_PER_MS if "queue_ns" in call else math.nan,
                    "ttft_ms": lat["ttft_ms"],
                    "tpot_ms": lat["tpot_ms"],
                    "e2e_ms": lat["e2e_ms"],
                    "itl_ms_mean": sum(itl) / len(itl) if itl else math.nan,
                    "new_tokens": call["delivered"],
                }
            )
    return rows


# --- telemetry: runs.csv's telemetry columns, energy.csv, telemetry.csv -----------------------


def _telemetry_columns(
    record: dict,
    complete: bool,
    window: Window,
    telemetry_rows: list | None,
    tokens: dict[str, int],
) -> tuple[dict[str, dict], dict]:
    """(per-slot telemetry columns {slot: {...}}, the run's energy columns {...}): the
    reduction of dualbench.analysis.telemetry, or blanks with the reason it has none."""
    if complete and telemetry_rows is not None:
        return reduce_run_telemetry(record, telemetry_rows, window, tokens)
    note = f"status {record['status']}" if not complete else "no telemetry recorded"
    blank = {
        **dict.fromkeys(TELEMETRY_RUN_COLUMNS),
        "util_source": "",
        "energy_source": "",
        "energy_note": note,
    }
    return {name: blank for name in record["slots"]}, {"energy_note": note}


def _timeline_rows(record: dict, run_id: str, t0: int | None, telemetry_rows: list) -> list[dict]:
    """Samples with time in seconds from the run's first barrier release (the runs.csv
    origin), for the report's timelines."""
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
        (
            r
            for r in telemetry_rows
            if r["metric"] == "cpu_time_s" and r["source"] != WORKER_CPU_SOURCE
        ),
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
