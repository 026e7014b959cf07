"""A measuring session: its worker processes started, loaded and warmed up once, then trials
run one after another on the warm processes, each trial a run with its own record.

The processes a session holds (``plan``: dualbench.measure.session_plan): one persistent worker per
slot, which serves every alone, co-located and lockstep trial of that slot, and, where the
session has a single-thread layout, one more process hosting every slot of it. A trial uses
some of them; the others block on their stdin, computing nothing, and the record says how much
CPU time each spent over the trial (``idle_processes``), so that "alone" is shown to be alone.

A lockstep trial gets a fresh ring of pipes: the runner sends each worker its two ends over the
worker's control socket (SCM_RIGHTS) just before the trial, and the trial's stop breaks it as
before (dualbench.measure.lockstep).

Telemetry is sampled for the whole session; a trial's telemetry.csv holds the session's idle
baseline (sampled before any worker existed) and the samples of its own span, each host or
device sample labelled with the trial's slots that it sees, and a worker's CPU clock only for
the processes of the trial. Failures are as in a run: a worker that errs, dies or hangs ends
its trial with a record whose ``status`` says so; a dead or hung process is gone, and every
later trial that needs it is recorded as failed without running. A stop from outside kills
every process at once (dualbench.measure.lifetime), whatever is running.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import time
from pathlib import Path

from dualbench.backends import resolve
from dualbench.hardware import cpu_facts, machine_state
from dualbench.measure import exclusivity as excl
from dualbench.measure.launch import WorkerProcess, exit_reason, kill_all, start_worker
from dualbench.measure.lockstep import close_ring, ring_pipes
from dualbench.measure.progress import RunLog
from dualbench.measure.protocol import WORKER_EXITED, Command, Event, tell_last
from dualbench.measure.session_plan import worker_launch
from dualbench.measure.trial_record import dtype_warnings, idle_baseline_s, slot_entry
from dualbench.measure.trial_telemetry import write_trial_telemetry
from dualbench.provenance import environment
from dualbench.telemetry.sampler import Sampler
from dualbench.telemetry.sources import ProcessCpuSource, sources_for

# How long a worker may take to finish after "stop": it completes the request in flight first,
# so this bounds one request, not the trial.
STOP_GRACE_S = 120.0
# How long quitting workers get to exit on their own before they are killed.
QUIT_GRACE_S = 10.0


class Session:
    """The warm processes of a session. Use as a context manager: leaving it, however,
    quits or kills every process and stops the sampler."""

    def __init__(self, plan: dict, model_dirs: dict[str, str], work_dir, sources=None):
        self.plan = plan
        self.model_dirs = model_dirs
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        devices = {name: s["device"] for name, s in plan["slots"].items()}
        self.backend, all_slots = resolve(
            plan["device"],
            "auto" if set(devices.values()) == {"auto"} else devices,
            plan["slot_names"],
            core_limits={name: s.get("core_limit") for name, s in plan["slots"].items()},
        )
        self.slots = {name: all_slots[name] for name in plan["slots"]}
        self.settings = plan["telemetry"]
        self.missing: dict[str, str] = {}
        if not self.settings["enabled"]:
            sources = []
            self.missing = {"telemetry": "disabled in the config (telemetry.enabled)"}
        elif sources is None:
            sources, self.missing = sources_for(self.backend.kind, self.slots)
        self.sources = sources
        self.sampler = Sampler(sources, self.settings.get("interval_s", 1.0))
        self.events: queue.Queue = queue.Queue()
        self.workers: dict[str, WorkerProcess] = {}
        self.controls: dict[str, socket.socket] = {}
        self.dead: dict[str, tuple[str, str]] = {}  # process name: (status, why it is gone)
        self.load: dict[str, dict] = {}  # process name: its loaded event

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Session:
        try:
            self.sampler.start()
            self.idle_start_ns = time.perf_counter_ns()
            time.sleep(idle_baseline_s(self.sources, self.settings))
            self.idle_end_ns = time.perf_counter_ns()
            self._launch()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self._quit()
        kill_all(self.workers)
        for control in self.controls.values():
            control.close()
        self.sampler.stop()

    def _launch(self) -> None:
        processes = {name: [name] for name in self.plan["solo"]}
        if self.plan["group"]:
            processes["+".join(self.plan["group"])] = list(self.plan["group"])
        interval = self.settings["interval_s"] if self.settings["enabled"] else None
        common = {"backend": self.backend.kind, "seed": self.plan["seed"]}
        if "int4_kernel" in self.plan:
            common["int4_kernel"] = self.plan["int4_kernel"]
        for process, members in processes.items():
            launch = worker_launch(
                self.plan, self.backend, self.slots, members, self.model_dirs, common
            )
            pass_fds: tuple[int, ...] = ()
            if self.plan["lockstep"] and len(members) == 1:
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                self.controls[process] = ours
                launch["worker_spec"]["control_fd"] = theirs.fileno()
                pass_fds = (theirs.fileno(),)
            try:
                proc = start_worker(process, work_dir=self.work_dir, pass_fds=pass_fds, **launch)
            finally:
                if pass_fds:
                    theirs.close()
            self.workers[process] = WorkerProcess(process, members, proc, self.events)
        for source in self.sources:
            if isinstance(source, ProcessCpuSource) and source.slots[0] in self.workers:
                source.pid = self.workers[source.slots[0]].proc.pid
        self._wait_loaded(time.monotonic() + self.plan["timeout_s"], interval)

    def _wait_loaded(self, deadline: float, interval) -> None:
        """Every process loaded and warmed up; one that fails to is dead, with its reason."""
        self.interval = interval
        waiting = set(self.workers)
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = ", ".join(f"{n}: loading" for n in sorted(waiting))
                for name in waiting:
                    self._bury(
                        name, "timeout", f"run exceeded its time limit (still running: {where})"
                    )
                return
            try:
                name, event = self.events.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            worker = self.workers[name]
            kind = event.get("event")
            if kind == Event.LOADED:
                self.load[name] = {k: event[k] for k in ("load_s", "warmup_s")}
                worker.phase = "idle"
                waiting.discard(name)
                print(
                    f"dualbench session {self.plan['label']}: {worker.label} loaded in "
                    f"{event['load_s']:.1f} s, "
                    f"warmed up in {event['warmup_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            elif kind == Event.ERROR:
                self._bury(
                    name,
                    event.get("status", "error"),
                    f"{worker.label}: {event.get('message', '')}",
                )
                waiting.discard(name)
            elif kind == WORKER_EXITED:
                status, message = exit_reason(worker.proc)
                self._bury(name, status, f"{worker.label} ({worker.phase}): {message}")
                waiting.discard(name)

    def _bury(self, name: str, status: str, why: str) -> None:
        """Process ``name`` is gone for the rest of the session: ``status`` and ``why`` are
        what every later trial that needs it records."""
        self.dead.setdefault(name, (status, why))
        self.workers[name].kill()

    def describe(self) -> dict:
        """The session's processes, as a record keeps them: each one's slots and its loading
        and warm-up seconds, and which ones died, with why."""
        return {
            "processes": {
                n: {"slots": w.slots, **self.load.get(n, {})} for n, w in self.workers.items()
            },
            "dead": {n: why for n, (_, why) in self.dead.items()},
        }

    def _quit(self) -> None:
        for name, worker in self.workers.items():
            if name not in self.dead:
                worker.send(Command.QUIT)
        deadline = time.monotonic() + QUIT_GRACE_S
        for worker in self.workers.values():
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                worker.kill()

    # -- trials -----------------------------------------------------------------------------

    def processes_for(self, spec: dict) -> list[str]:
        """The processes a trial of ``spec`` uses."""
        if spec.get("schedule") == "single_thread":
            return ["+".join(sorted(spec["slots"]))]
        return sorted(spec["slots"])

    def trial(self, spec: dict, work_dir, telemetry_csv: Path, exclusivity=None) -> dict:
        """Run the trial ``spec`` (a run spec) on the warm processes; return its record (the
        shape of a run record, dualbench.measure.runner) with the telemetry written to
        ``telemetry_csv``. ``work_dir``: the trial's result files."""
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "spec": spec,
            "status": "ok",
            "error": "",
            "machine_state": machine_state(),
            "backend": {"kind": self.backend.kind},
            "environment": environment(),
            "exclusivity": exclusivity or excl.check("", {}, None),
            "slots": {},
        }
        processes = self.processes_for(spec)
        result_paths = {n: work_dir / f"result-{n}.json" for n in spec["slots"]}
        for path in result_paths.values():
            path.unlink(missing_ok=True)
        started = time.monotonic()
        start_ns = time.perf_counter_ns()
        idle = {n: self._cpu_s(n) for n in self.workers if n not in processes}
        gone = [self.dead[n] for n in processes if n in self.dead]
        if gone:
            status, error = gone[0]
        else:
            self._send_trial(spec, processes, result_paths)
            status, error = self._coordinate(processes, started + spec["timeout_s"], spec)
        self.sampler.sample_now()  # the sample after the window's end
        end_ns = time.perf_counter_ns()
        record["status"], record["error"] = status, error
        record["elapsed_s"] = round(time.monotonic() - started, 3)
        record["idle_processes"] = {
            n: {"slots": self.workers[n].slots, "cpu_s": round(self._cpu_s(n) - before, 4)}
            for n, before in idle.items()
        }
        record["host_cpu"] = cpu_facts().to_dict()
        in_worker_rows = []
        for name in spec["slots"]:
            path = result_paths[name]
            result = json.loads(path.read_text()) if status == "ok" and path.exists() else None
            entry, rows = slot_entry(
                name, self.slots[name], spec, result, self.backend.kind, self.settings
            )
            phase = "done" if result else self.workers[processes[0]].phase
            record["slots"][name] = {**entry, "phase": phase}
            in_worker_rows += rows
        record["warnings"] = dtype_warnings(self.backend.kind, spec["precision"], record["slots"])
        record["telemetry"] = {
            **self.settings,
            **write_trial_telemetry(
                telemetry_csv,
                self.sources,
                self.sampler,
                spec,
                processes,
                [(start_ns, end_ns), (self.idle_start_ns, self.idle_end_ns)],
                in_worker_rows,
            ),
            "idle_start_ns": self.idle_start_ns,
            "idle_end_ns": self.idle_end_ns,
            "missing": self.missing,
            "gaps": self.sampler.gaps,
        }
        return record

    def _cpu_s(self, name: str) -> float:
        import psutil

        try:
            t = psutil.Process(self.workers[name].proc.pid).cpu_times()
        except psutil.Error:
            return float("nan")
        return t.user + t.system + t.children_user + t.children_system

    def _send_trial(self, spec: dict, processes: list[str], result_paths: dict) -> None:
        interval = getattr(self, "interval", None)
        base = {"duration_s": spec["duration_s"], "seed": spec["seed"]}
        base["telemetry_interval_s"] = interval
        if spec.get("schedule") == "single_thread":
            (process,) = processes
            trial = {
                **base,
                "settings": spec["slots"],
                "result_paths": {n: str(p.resolve()) for n, p in result_paths.items()},
            }
            self.workers[process].send_trial(trial)
            return
        ring = ring_pipes(len(processes)) if spec.get("schedule") == "lockstep" else []
        try:
            for position, process in enumerate(processes):
                trial = {
                    **base,
                    "settings": spec["slots"][process],
                    "result_path": str(result_paths[process].resolve()),
                }
                if ring:
                    ends = ring[position]
                    socket.send_fds(self.controls[process], [b"r"], [ends.read_fd, ends.write_fd])
                    trial["lockstep"] = {"position": ends.position, "size": ends.size}
                self.workers[process].send_trial(trial)
        finally:
            # The workers hold their ends now; a copy kept here would hide a worker's exit
            # from its neighbours in the ring.
            close_ring(ring)

    def _coordinate(self, processes: list[str], deadline: float, spec: dict) -> tuple[str, str]:
        """Drive one trial's barrier protocol; return (status, error). A process that fails
        is dead from here on (its trial's neighbours are killed too only where they hang)."""
        log = RunLog(spec)
        workers = {n: self.workers[n] for n in processes}
        all_slots = [s for w in workers.values() for s in w.slots]
        ready, met, done, told_last = set(), set(), set(), set()
        released_at = stop_sent_at = None
        for w in workers.values():
            w.phase = "arming"
        while len(done) < len(workers):
            limit = deadline if stop_sent_at is None else min(deadline, stop_sent_at + STOP_GRACE_S)
            remaining = limit - time.monotonic()
            if remaining <= 0:
                where = ", ".join(f"{n}: {w.phase}" for n, w in workers.items() if n not in done)
                error = f"run exceeded its time limit (still running: {where})"
                for n in workers:
                    if n not in done:
                        self._bury(n, "timeout", error)
                return "timeout", error
            try:
                name, event = self.events.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            kind = event.get("event")
            if name not in workers:
                if kind == WORKER_EXITED and name not in self.dead:
                    status, message = exit_reason(self.workers[name].proc)
                    self._bury(name, status, f"{self.workers[name].label} (idle): {message}")
                continue
            worker = workers[name]
            if kind == Event.READY:
                ready.add(name)
                worker.phase = "ready"
                if len(ready) == len(workers):
                    log.line(f"every slot ready, the window starts (at least {log.duration_s} s)")
                    released_at = time.monotonic()
                    for w in workers.values():
                        w.phase = "measuring"
                        w.send(Command.GO)
                    tell_last(workers, met, spec, told_last)
            elif kind == Event.PROGRESS and stop_sent_at is None:
                slot = event.get("slot", name)
                log.progress(slot, event, [n for n in all_slots if n not in met])
            elif kind == Event.MET:
                met.update([event["slot"]] if "slot" in event else worker.slots)
                if len(met) == len(all_slots) and stop_sent_at is None:
                    stop_sent_at = time.monotonic()
                    log.stopping(stop_sent_at - released_at)
                    for w in workers.values():
                        w.send(Command.STOP)
                else:
                    tell_last(workers, met, spec, told_last)
            elif kind == Event.DONE:
                done.add(name)
                worker.phase = "idle"
            elif kind == Event.ERROR:
                status = event.get("status", "error")
                error = f"{worker.label}: {event.get('message', '')}"
                self._bury(name, status, error)
                self._fail_trial(workers, done, name)
                return status, error
            elif kind == WORKER_EXITED:
                status, message = exit_reason(worker.proc)
                error = f"{worker.label} ({worker.phase}): {message}"
                self._bury(name, status, error)
                self._fail_trial(workers, done, name)
                return status, error
        return "ok", ""

    def _fail_trial(self, workers: dict, done: set, failed: str) -> None:
        """One process of a trial failed: its neighbours may be mid-window or waiting for a
        turn or a barrier that cannot come, and a half-finished trial cannot be resumed, so
        they are killed too and count as dead."""
        for name in workers:
            if name != failed and name not in done:
                self._bury(name, "error", f"stopped: {workers[failed].label} failed in a trial")
