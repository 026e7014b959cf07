"""One scenario run: start one worker per slot, hold them at a barrier, release them together,
stop them together, and write one run record whatever happens.

The runner is the parent: it never measures, it coordinates. Failures (a worker that crashes,
runs out of memory or hangs) end in a record with ``status`` (ok | oom | error | timeout) and
the message; the other worker is stopped; the pipeline goes on.

A stop from outside is different: SIGINT (Ctrl-C), SIGTERM or SIGHUP abandon the run
(exit_on_signals). The workers are killed at once, not after their request in flight, and no
record is written, so that nothing takes the run for finished. A runner killed outright
(SIGKILL) takes its workers with it too: see dualbench.measure.worker.die_with_parent.

Progress goes to stderr, one line per phase change and per finished call of a slot, so that a
long window shows in Snakemake's output as it happens.
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

from dualbench.backends import resolve
from dualbench.hardware import cpu_facts
from dualbench.measure.worker import PARENT_PID_ENV, Command, Event
from dualbench.native_dtypes import emulation_warning
from dualbench.provenance import environment
from dualbench.telemetry.sampler import Sampler
from dualbench.telemetry.sources import WORKER_CPU_SOURCE, ProcessCpuSource, sources_for

# How long a worker may take to exit after "stop" before it is killed: it finishes the request
# in flight first, so this bounds one request, not the run.
STOP_GRACE_S = 120.0
# The signals that abandon a run. Snakemake forwards none of them to a running job: on Ctrl-C
# it waits for its jobs to end. Ctrl-C still reaches us, because a script job runs in
# Snakemake's process group, the terminal's foreground group; the workers have sessions of
# their own and hear of it only from us.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Not a protocol message: the runner's own note that a worker's stdout closed.
WORKER_EXITED = "eof"


class Interrupted(BaseException):
    """A stop signal reached the runner. A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way out can swallow it."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def exit_on_signals():
    """For a process's entry point around ``run_to_file``: a stop signal raises Interrupted in
    the main thread, wherever it is, so run()'s cleanup kills the workers; then the process
    exits with 128 + the signal's number, as a shell reports a death by that signal."""

    def interrupt(signum, frame):
        # A second Ctrl-C must not break off the cleanup that the first one started.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    # A signal ignored by whoever started us (nohup, a background job) stays ignored.
    previous = {
        sig: signal.signal(sig, interrupt)
        for sig in STOP_SIGNALS
        if signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    except Interrupted as stop:
        print(f"dualbench run: {stop}; workers killed, no record written", file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
        events.put((self.slot.name, {"event": WORKER_EXITED}))

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
    Whatever ends the call, no worker outlives it.
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
        sources, missing = sources_for(backend.kind, slots)
    sampler = Sampler(sources, settings.get("interval_s", 1.0))
    try:
        sampler.start()
        idle_start_ns = time.perf_counter_ns()
        if sources:
            # The idle baseline: the devices as they are before any worker exists.
            time.sleep(settings["idle_s"])
        idle_end_ns = time.perf_counter_ns()
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
            env = backend.worker_env(slot, spec.get("allocator", ""))
            workers[name] = _Worker(slot, _start_worker(name, worker_spec, env, work_dir), events)
            for source in sources:
                if isinstance(source, ProcessCpuSource) and source.slots == (name,):
                    source.pid = workers[name].proc.pid
        status, error = _coordinate(workers, events, deadline, RunLog(spec))
    except BaseException:
        # Interrupted, Ctrl-C of an in-process caller, or a bug: the workers go first, before
        # the sampler's last sample.
        _kill_all(workers)
        raise
    finally:
        sampler.stop()
        _kill_all(workers)
    record["status"], record["error"] = status, error
    record["elapsed_s"] = round(time.monotonic() - started, 3)
    record["host_cpu"] = cpu_facts().to_dict()
    record["warnings"] = dtype_warnings(backend.kind, spec["precision"], record["slots"])
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


def forward_interrupts_to_jobs() -> None:
    """For Snakemake's own process: pass a SIGINT on to its job processes, then handle it as
    before (KeyboardInterrupt). Snakemake answers SIGINT by waiting for its running jobs, and
    only a terminal's Ctrl-C reaches them too (the whole foreground group): a SIGINT sent to
    Snakemake's pid alone would let a run measure on to the end of its window. A run job ends
    at once on it (exit_on_signals) and other jobs die of KeyboardInterrupt; Snakemake marks
    their outputs incomplete and reruns them next time."""
    import psutil

    def forward(signum, frame):
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                child.send_signal(signum)
        signal.default_int_handler(signum, frame)

    # Signal handlers can only be set from the main thread (Snakemake's API may run elsewhere).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, forward)


def _start_worker(name: str, worker_spec: dict, env: dict, work_dir: Path) -> subprocess.Popen:
    """Write the worker's spec and start it. Must be called from the thread that waits for the
    worker (run's): PR_SET_PDEATHSIG, the worker's tie to us, fires when the thread that
    forked it exits, not only the process."""
    spec_path = (work_dir / f"worker-{name}.json").resolve()  # absolute: ps shows which run
    spec_path.write_text(json.dumps(worker_spec, indent=2))
    log = open(work_dir / f"worker-{name}.log", "w")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dualbench.measure.worker", str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **env, PARENT_PID_ENV: str(os.getpid())},
            text=True,
            # Its own process group, so that a kill takes its children too; and out of the
            # terminal's, so that a Ctrl-C reaches only us and we decide.
            start_new_session=True,
        )
    finally:
        log.close()


def _kill_all(workers: dict[str, _Worker]) -> None:
    for w in workers.values():
        w.kill()


class RunLog:
    """The run's progress on stderr, one line each, prefixed with the run's name: Snakemake
    shows a script's stderr as it comes."""

    def __init__(self, spec: dict):
        self.prefix = f"dualbench run {spec['scenario']}/{spec['precision']}/{spec['layout']}"
        self.duration_s = spec["duration_s"]
        self.min_requests = {name: s["min_requests"] for name, s in spec["slots"].items()}

    def line(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)

    def ready(self, slot: str, event: dict, waiting_for: list[str]) -> None:
        loaded = (
            f"slot {slot} loaded in {event['load_s']:.1f} s, warmed up in {event['warmup_s']:.1f} s"
        )
        if waiting_for:
            self.line(f"{loaded}; waiting for {_slots(waiting_for)} at the barrier")
        else:
            self.line(
                f"{loaded}; every slot ready, the window starts (at least {self.duration_s} s)"
            )

    def progress(self, slot: str, event: dict, waiting_for: list[str]) -> None:
        self.line(progress_text(slot, event, self.min_requests[slot], waiting_for))

    def stopping(self, window_s: float) -> None:
        self.line(f"every slot met its criteria {window_s:.1f} s into the window; stopping")


def progress_text(slot: str, event: dict, min_requests: int, waiting_for: list[str]) -> str:
    """One slot's progress after a call (a worker's progress event). ``waiting_for``: the
    slots that have not met their criteria yet."""
    done = (
        f"slot {slot} {event['requests']}/{min_requests} requests, "
        f"{event['elapsed_s']:.1f} s into the window"
    )
    if not event["met"]:
        left = event["remaining_s"]
        return f"{done}, {'<1' if left < 1 else f'~{left:.0f}'} s to go"
    others = [name for name in waiting_for if name != slot]
    if others:
        return f"{done}, criteria met, waiting for {_slots(others)}"
    return f"{done}, criteria met"


def _slots(names: list[str]) -> str:
    return ("slot " if len(names) == 1 else "slots ") + ", ".join(names)


def _coordinate(
    workers: dict[str, _Worker], events: queue.Queue, deadline: float, log: RunLog
) -> tuple[str, str]:
    """Drive the barrier protocol; return (status, error)."""
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
            log.ready(name, event, [n for n in workers if n not in ready])
            if len(ready) == len(workers):
                released_at = time.monotonic()
                for w in workers.values():
                    w.phase = "measuring"
                    w.send(Command.GO)
        elif kind == Event.PROGRESS and stop_sent_at is None:
            # After "stop", only calls that were in flight finish: nothing left to report.
            log.progress(name, event, [n for n in workers if n not in met])
        elif kind == Event.MET:
            met.add(name)
            if len(met) == len(workers):
                stop_sent_at = time.monotonic()
                log.stopping(stop_sent_at - released_at)
                for w in workers.values():
                    w.send(Command.STOP)
        elif kind == Event.DONE:
            done.add(name)
            worker.phase = "done"
        elif kind == Event.ERROR:
            return event.get("status", "error"), f"slot {name}: {event.get('message', '')}"
        elif kind == WORKER_EXITED and name not in done:
            status, message = _exit_reason(worker.proc)
            return status, f"slot {name} ({worker.phase}): {message}"
    return "ok", ""


def run_to_file(spec: dict, model_dirs: dict[str, str], out_path) -> dict:
    """``run`` with worker files beside ``out_path`` and the record written to it, whole or
    not at all: an existing run.json means a finished run to Snakemake and to every reader."""
    out_path = Path(out_path)
    record = run(spec, model_dirs, out_path.parent / "workers", out_path.parent / "telemetry.csv")
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
