"""One scenario run: start one worker per slot, hold them at a barrier, release them together,
stop them together, and write one run record whatever happens.

The runner is the parent: it never measures, it coordinates. Failures (a worker that crashes,
runs out of memory or hangs) end in a record with ``status`` (ok | oom | error | timeout) and
the message; the other worker is stopped; the pipeline goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dualbench import telemetry
from dualbench.backends import resolve
from dualbench.provenance import environment
from dualbench.telemetry_summary import WORKER_CPU_SOURCE

# How long a worker may take to exit after "stop" before it is killed: it finishes the request
# in flight first, so this bounds one request, not the run.
STOP_GRACE_S = 120.0


class _Worker:
    def __init__(self, slot, proc: subprocess.Popen, events: queue.Queue):
        self.slot = slot
        self.proc = proc
        self.phase = "loading"
        threading.Thread(target=self._pump, args=(events,), daemon=True).start()

    def _pump(self, events: queue.Queue) -> None:
        for line in self.proc.stdout:
            try:
                events.put((self.slot.name, json.loads(line)))
            except json.JSONDecodeError:
                continue
        events.put((self.slot.name, {"event": "eof"}))

    def send(self, command: str) -> None:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _exit_reason(proc: subprocess.Popen) -> tuple[str, str]:
    code = proc.wait()
    if code < 0 and -code == signal.SIGKILL:
        return "oom", "worker killed by SIGKILL (usually the kernel's out-of-memory killer)"
    if code < 0:
        return "error", f"worker killed by signal {signal.Signals(-code).name}"
    return "error", f"worker exited with code {code} without a result (see its log)"


def run(
    spec: dict,
    model_dirs: dict[str, str],
    work_dir: Path,
    telemetry_csv: Path | None = None,
    sources: list | None = None,
) -> dict:
    """Run ``spec`` (from config.run_spec) and return the run record.

    ``work_dir`` receives worker specs, results and logs; ``telemetry_csv`` (default
    work_dir/telemetry.csv) the samples of dualbench.telemetry. ``sources`` replaces the
    backend's telemetry sources (tests use it to sample a stand-in npu-smi beside CPU workers).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    slot_devices = {name: s["device"] for name, s in spec["slots"].items()}
    # "auto" for every slot means the backend spreads them; explicit devices are parsed.
    backend, all_slots = resolve(
        spec["device"], "auto" if set(slot_devices.values()) == {"auto"} else slot_devices
    )
    slots = {name: all_slots[name] for name in spec["slots"]}
    record = {
        "spec": spec,
        "status": "ok",
        "error": "",
        # Device facts come from the workers (describe() would create a device context here,
        # in the parent, taking device memory for the whole run).
        "backend": {"kind": backend.kind},
        "environment": environment(),
        "slots": {},
    }
    events: queue.Queue = queue.Queue()
    workers: dict[str, _Worker] = {}
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
        sources, missing = telemetry.sources_for(backend.kind, slots)
    sampler = telemetry.Sampler(sources, settings.get("interval_s", 1.0)).start()
    idle_start_ns = time.perf_counter_ns()
    if sources:
        # The idle baseline: the devices as they are before any worker exists.
        time.sleep(settings["idle_s"])
    idle_end_ns = time.perf_counter_ns()
    try:
        for name, slot in slots.items():
            worker_spec = {
                "backend": backend.kind,
                "slot": slot.to_dict(),
                "settings": spec["slots"][name],
                "model_dir": str(Path(model_dirs[name]).resolve()),
                "seed": spec["seed"],
                "duration_s": spec["duration_s"],
                "result_path": str((work_dir / f"result-{name}.json").resolve()),
                # In-process utilisation (torch.npu.utilization) is sampled by the worker.
                "telemetry_interval_s": settings["interval_s"] if settings["enabled"] else None,
            }
            spec_path = work_dir / f"worker-{name}.json"
            spec_path.write_text(json.dumps(worker_spec, indent=2))
            env = {**os.environ, **backend.worker_env(slot, spec.get("allocator", ""))}
            log = open(work_dir / f"worker-{name}.log", "w")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                [sys.executable, "-m", "dualbench.worker", str(spec_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
                start_new_session=True,  # its own process group, so a kill takes its children too
            )
            log.close()
            workers[name] = _Worker(slot, proc, events)
            for source in sources:
                if isinstance(source, telemetry.ProcessCpuSource) and source.slots == (name,):
                    source.pid = proc.pid
        status, error = _coordinate(workers, events, deadline)
    finally:
        sampler.stop()
        for w in workers.values():
            w.kill()
    record["status"], record["error"] = status, error
    record["elapsed_s"] = round(time.monotonic() - started, 3)
    in_worker_rows = []
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
            "phase": workers[name].phase if name in workers else "not started",
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


def _coordinate(workers: dict[str, _Worker], events: queue.Queue, deadline: float):
    """Drive the barrier protocol; return (status, error)."""
    ready, met, done = set(), set(), set()
    stop_sent_at = None
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
        if kind == "ready":
            ready.add(name)
            worker.phase = "ready"
            if len(ready) == len(workers):
                for w in workers.values():
                    w.phase = "measuring"
                    w.send("go")
        elif kind == "met":
            met.add(name)
            if len(met) == len(workers):
                stop_sent_at = time.monotonic()
                for w in workers.values():
                    w.send("stop")
        elif kind == "done":
            done.add(name)
            worker.phase = "done"
        elif kind == "error":
            return event.get("status", "error"), f"slot {name}: {event.get('message', '')}"
        elif kind == "eof" and name not in done:
            status, message = _exit_reason(worker.proc)
            return status, f"slot {name} ({worker.phase}): {message}"
    return "ok", ""


def run_to_file(spec: dict, model_dirs: dict[str, str], out_path) -> dict:
    """``run`` with worker files beside ``out_path`` and the record written to it."""
    out_path = Path(out_path)
    record = run(spec, model_dirs, out_path.parent / "workers", out_path.parent / "telemetry.csv")
    out_path.write_text(json.dumps(record))
    return record
