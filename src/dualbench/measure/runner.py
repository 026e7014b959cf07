"""One scenario run: start one worker per slot, hold them at a barrier, release them together,
stop them together, and write one run record whatever happens.

The run spec's ``schedule`` says how the slots share the machine: absent (free), each worker
runs its own loop; ``lockstep``, the workers take their forward passes in turns round a ring of
pipes made here (dualbench.measure.lockstep); ``single_thread``, one worker process hosts
every slot and serves them in rounds (dualbench.measure.single_thread). The record has one
result per slot whatever the schedule.

The runner is the parent: it never measures, it coordinates. Failures (a worker that crashes,
runs out of memory or hangs) end in a record with ``status`` (ok | oom | error | timeout) and
the message; the other worker is stopped; the pipeline goes on. Every record carries its job's
exclusivity finding (dualbench.measure.exclusivity: a busy job under ``fail`` never gets here).

A stop from outside is different: SIGINT (Ctrl-C), SIGTERM or SIGHUP abandon the run
(dualbench.measure.lifetime). The workers are killed at once, not after their request in
flight, and no record is written, so that nothing takes the run for finished. A runner killed
outright (SIGKILL) takes its workers with it too.

Progress goes to stderr (dualbench.measure.progress).
"""

from __future__ import annotations

import json
import os
import queue
import time
from pathlib import Path

from dualbench.backends import resolve
from dualbench.config.vocabulary import DEFAULT_MODELS
from dualbench.hardware import cpu_facts, machine_state
from dualbench.measure import exclusivity as excl
from dualbench.measure.launch import WorkerProcess, exit_reason, kill_all, launch_workers
from dualbench.measure.progress import RunLog
from dualbench.measure.protocol import WORKER_EXITED, Command, Event
from dualbench.native_dtypes import emulation_warning
from dualbench.provenance import environment
from dualbench.telemetry.sampler import Sampler
from dualbench.telemetry.sources import WORKER_CPU_SOURCE, ProcessCpuSource, sources_for

# How long a worker may take to exit after "stop" before it is killed: it finishes the request
# in flight first, so this bounds one request, not the run.
STOP_GRACE_S = 120.0


def run(
    spec: dict,
    model_dirs: dict[str, str],
    work_dir: Path,
    telemetry_csv: Path | None = None,
    sources: list | None = None,
    exclusivity: dict | None = None,
) -> dict:
    """Run ``spec`` (from config.run_spec) and return the run record.

    ``work_dir`` receives worker specs, results and logs; ``telemetry_csv`` (default
    work_dir/telemetry.csv) the samples of dualbench.telemetry. ``sources`` replaces the
    backend's telemetry sources (tests use it to sample a stand-in npu-smi beside CPU workers).
    ``exclusivity``: the job's exclusivity finding, kept in the record (None: not checked, as
    policy off).
    Whatever ends the call, no worker outlives it.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    slot_devices = {name: s["device"] for name, s in spec["slots"].items()}
    # "auto" for every slot means the backend spreads every model of the config over what it
    # has (slot_names: all of them, so a model gets the same device alone and co-located);
    # explicit devices are parsed.
    backend, all_slots = resolve(
        spec["device"],
        "auto" if set(slot_devices.values()) == {"auto"} else slot_devices,
        spec.get("slot_names", DEFAULT_MODELS),
        # NPU core partitions (slots.<X>.core_limit): the worker applies them when it pins.
        core_limits={name: s.get("core_limit") for name, s in spec["slots"].items()},
    )
    slots = {name: all_slots[name] for name in spec["slots"]}
    record = {
        "spec": spec,
        "status": "ok",
        "error": "",
        # Before anything of ours starts: what the machine was doing when the run began.
        "machine_state": machine_state(),
        # Device facts come from the workers (describe() would create a device context here,
        # in the parent, taking device memory for the whole run).
        "backend": {"kind": backend.kind},
        "environment": environment(),
        "exclusivity": exclusivity or excl.check("", {}, None),
        "slots": {},
    }
    events: queue.Queue = queue.Queue()
    workers: dict[str, WorkerProcess] = {}
    started = time.monotonic()
    deadline = started + spec["timeout_s"]
    for name in slots:
        # A result left by an earlier run in this directory must never pass for this run's.
        (work_dir / f"result-{name}.json").unlink(missing_ok=True)
    settings = spec.get("telemetry", {"enabled": False})
    missing: dict[str, str] = {}
    if not settings["enabled"]:
        sources, missing = [], {"telemetry": "disabled in the config (telemetry.enabled)"}
    elif sources is None:
        sources, missing = sources_for(backend.kind, slots)
    sampler = Sampler(sources, settings.get("interval_s", 1.0))
    try:
        sampler.start()
        idle_start_ns = time.perf_counter_ns()
        time.sleep(idle_baseline_s(sources, settings))
        idle_end_ns = time.perf_counter_ns()
        launch_workers(spec, backend, slots, model_dirs, work_dir, settings, events, workers)
        attach_cpu_sources(workers, sources)
        status, error = _coordinate(workers, events, deadline, RunLog(spec))
    except BaseException:
        # Interrupted, Ctrl-C of an in-process caller, or a bug: the workers go first, before
        # the sampler's last sample.
        kill_all(workers)
        raise
    finally:
        sampler.stop()
        kill_all(workers)
    record["status"], record["error"] = status, error
    record["elapsed_s"] = round(time.monotonic() - started, 3)
    record["host_cpu"] = cpu_facts().to_dict()
    record["warnings"] = dtype_warnings(backend.kind, spec["precision"], record["slots"])
    in_worker_rows = []
    phases = {n: w.phase for w in workers.values() for n in w.slots}
    for name, slot in slots.items():
        result_path = work_dir / f"result-{name}.json"
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        for t_ns, value in (result or {}).pop("utilization", None) or []:
            in_worker_rows.append(
                (t_ns, name, slot.label, "npu_util_pct", value, "torch.npu.utilization")
            )
        cpu_times = (result or {}).pop("cpu_times", None) or []
        if settings["enabled"] and backend.kind == "cpu":
            in_worker_rows += [
                (t_ns, name, slot.label, "cpu_time_s", value, WORKER_CPU_SOURCE)
                for t_ns, value in cpu_times
            ]
        record["slots"][name] = {
            "slot": slot.to_dict(),
            "device": slot.label,
            "model": spec["slots"][name]["model"],
            "settings": spec["slots"][name],
            "phase": phases.get(name, "not started"),
            "result": result,
        }
    telemetry_csv = Path(telemetry_csv or work_dir / "telemetry.csv")
    sampler.write(telemetry_csv, in_worker_rows)
    record["telemetry"] = {
        **settings,
        "file": telemetry_csv.name,
        "idle_start_ns": idle_start_ns,
        "idle_end_ns": idle_end_ns,
        "sources": [s.describe() for s in sources],
        "missing": missing,
        "gaps": sampler.gaps,
        "samples": len(sampler.rows) + len(in_worker_rows),
    }
    return record


def attach_cpu_sources(workers: dict[str, WorkerProcess], sources: list) -> None:
    """Point each worker's CPU-time source at its process, once the workers exist."""
    for worker in workers.values():
        for source in sources:
            # The parent's CPU clock of a process hosting several slots would count them
            # all for each: there, the worker's own per-slot figures serve.
            if isinstance(source, ProcessCpuSource) and source.slots == tuple(worker.slots):
                source.pid = worker.proc.pid


def idle_baseline_s(sources: list, settings: dict) -> float:
    """Seconds to sample the devices before any worker exists: their idle draw, which the
    net energy subtracts. Without a power or energy source there is nothing to subtract it
    from, and the wait would only lengthen every run (as on a CPU without readable RAPL)."""
    return settings["idle_s"] if any(s.measures_energy for s in sources) else 0.0


def dtype_warnings(kind: str, precision: str, slots: dict) -> list[str]:
    """The run's warning when its precision computes in a dtype the device only emulates
    (dualbench.native_dtypes): the CPU's flags are this host's, a GPU's capability is what its
    worker read."""
    capabilities = [
        tuple(cap)
        for s in slots.values()
        if (cap := ((s["result"] or {}).get("device_info") or {}).get("compute_capability"))
    ]
    warning = emulation_warning(
        kind, precision, cpu=cpu_facts(), capability=min(capabilities, default=None)
    )
    return [warning] if warning else []


def _coordinate(
    workers: dict[str, WorkerProcess], events: queue.Queue, deadline: float, log: RunLog
) -> tuple[str, str]:
    """Drive the barrier protocol; return (status, error). The barrier counts processes (a
    single-thread process is ready for all its slots), the stop counts slots (its MET events
    name the slot; a one-slot worker's do not need to)."""
    all_slots = [n for w in workers.values() for n in w.slots]
    ready, met, done = set(), set(), set()
    released_at = stop_sent_at = None
    while len(done) < len(workers):
        limit = deadline if stop_sent_at is None else min(deadline, stop_sent_at + STOP_GRACE_S)
        remaining = limit - time.monotonic()
        if remaining <= 0:
            where = ", ".join(f"{n}: {w.phase}" for n, w in workers.items() if n not in done)
            return "timeout", f"run exceeded its time limit (still running: {where})"
        try:
            name, event = events.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        kind = event.get("event")
        worker = workers[name]
        if kind == Event.READY:
            ready.add(name)
            worker.phase = "ready"
            waiting = [n for p, w in workers.items() if p not in ready for n in w.slots]
            log.ready(worker.slots, event, waiting)
            if len(ready) == len(workers):
                released_at = time.monotonic()
                for w in workers.values():
                    w.phase = "measuring"
                    w.send(Command.GO)
        elif kind == Event.PROGRESS and stop_sent_at is None:
            # After "stop", only calls that were in flight finish: nothing left to report.
            slot = event.get("slot", name)
            log.progress(slot, event, [n for n in all_slots if n not in met])
        elif kind == Event.MET:
            met.update([event["slot"]] if "slot" in event else worker.slots)
            if len(met) == len(all_slots) and stop_sent_at is None:
                stop_sent_at = time.monotonic()
                log.stopping(stop_sent_at - released_at)
                for w in workers.values():
                    w.send(Command.STOP)
        elif kind == Event.DONE:
            done.add(name)
            worker.phase = "done"
        elif kind == Event.ERROR:
            return event.get("status", "error"), f"{worker.label}: {event.get('message', '')}"
        elif kind == WORKER_EXITED and name not in done:
            status, message = exit_reason(worker.proc)
            return status, f"{worker.label} ({worker.phase}): {message}"
    return "ok", ""


def run_to_file(
    spec: dict, model_dirs: dict[str, str], out_path, work_dir=None, exclusivity=None
) -> dict:
    """``run`` with the record written to ``out_path``, whole or not at all: an existing
    run.json means a finished run to Snakemake and to every reader. The telemetry goes beside
    it; the workers' specs, logs and results to ``work_dir`` (the run rule's declared log
    directory; by default ``workers/`` beside ``out_path``). ``exclusivity``: as in ``run``."""
    out_path = Path(out_path)
    work_dir = Path(work_dir) if work_dir is not None else out_path.parent / "workers"
    record = run(
        spec, model_dirs, work_dir, out_path.parent / "telemetry.csv", exclusivity=exclusivity
    )
    write_atomically(out_path, json.dumps(record))
    return record


def write_atomically(path: Path, text: str) -> None:
    """``path`` holds the old content or all of ``text``, never a part: a temporary file in the
    same directory (a rename is atomic within one file system only), synced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
