"""How a run's worker processes start: which processes its schedule needs (one per slot, or
one hosting every slot), each one's spec and environment, the lockstep ring's ends it inherits,
and the runner's handle on each (dualbench.measure.runner drives them)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from dualbench.measure.lifetime import PARENT_PID_ENV
from dualbench.measure.lockstep import close_ring, ring_pipes
from dualbench.measure.protocol import Command, forward_events, send_command


class WorkerProcess:
    """The runner's handle on one worker: its process, its phase, its protocol line.
    ``slots``: the slots it hosts (one, or every slot of a single-thread run), in order."""

    def __init__(self, name: str, slots: list[str], proc: subprocess.Popen, events: queue.Queue):
        self.name = name
        self.slots = slots
        self.proc = proc
        self.phase = "loading"
        threading.Thread(
            target=forward_events, args=(proc.stdout, name, events), daemon=True
        ).start()

    @property
    def label(self) -> str:
        """How messages name it: "slot A", or "slots A, B" for a process hosting both."""
        return ("slot " if len(self.slots) == 1 else "slots ") + ", ".join(self.slots)

    def send(self, command: Command) -> None:
        send_command(self.proc.stdin, command)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def exit_reason(proc: subprocess.Popen) -> tuple[str, str]:
    code = proc.wait()
    if code < 0 and -code == signal.SIGKILL:
        return "oom", "worker killed by SIGKILL (usually the kernel's out-of-memory killer)"
    if code < 0:
        return "error", f"worker killed by signal {signal.Signals(-code).name}"
    return "error", f"worker exited with code {code} without a result (see its log)"


def worker_processes(slot_names: list[str], schedule: str) -> dict[str, list[str]]:
    """{process name: the slots it hosts}: one process per slot, or under the single-thread
    schedule one for them all, named after them ("A+B")."""
    if schedule == "single_thread":
        return {"+".join(slot_names): list(slot_names)}
    return {name: [name] for name in slot_names}


def launch_workers(
    spec: dict,
    backend,
    slots: dict,
    model_dirs: dict,
    work_dir: Path,
    telemetry: dict,
    events: queue.Queue,
    workers: dict,
) -> None:
    """Start the run's worker processes into ``workers`` ({process name: WorkerProcess}, filled
    as they start, so that a failure half-way leaves the caller the ones to kill). Must be
    called from the thread that waits for them (see start_worker)."""
    schedule = spec.get("schedule", "free")
    ring = []
    try:
        # Lockstep: the ring goes round the slots in sorted order.
        ring = ring_pipes(len(slots)) if schedule == "lockstep" else []
        ring_ends = dict(zip(sorted(slots), ring, strict=False))
        for process, names in worker_processes(list(slots), schedule).items():
            launch = worker_launch(
                spec, backend, {n: slots[n] for n in names}, model_dirs, work_dir, telemetry
            )
            if schedule == "lockstep":
                ends = ring_ends[process]
                launch["worker_spec"]["lockstep"] = ends.to_dict()
                launch["pass_fds"] = (ends.read_fd, ends.write_fd)
            proc = start_worker(process, work_dir=work_dir, **launch)
            workers[process] = WorkerProcess(process, names, proc, events)
    finally:
        # The workers hold their ends now; a copy kept here would hide a worker's exit from
        # its neighbours in the ring.
        close_ring(ring)


def worker_launch(
    spec: dict, backend, slots: dict, model_dirs: dict, work_dir: Path, telemetry: dict
) -> dict:
    """The spec and environment of the worker process hosting ``slots`` ({name: Slot}): one
    slot's worker, or the single-thread schedule's process for several (``members``)."""
    interval = telemetry["interval_s"] if telemetry["enabled"] else None
    members = [
        {
            "slot": slot.to_dict(),
            "settings": spec["slots"][name],
            "model_dir": str(Path(model_dirs[name]).resolve()),
            "result_path": str((work_dir / f"result-{name}.json").resolve()),
        }
        for name, slot in slots.items()
    ]
    common = {"seed": spec["seed"], "duration_s": spec["duration_s"]}
    # An int4 run's kernel (int4.kernel): the workers load the artifact with it.
    if "int4_kernel" in spec:
        common["int4_kernel"] = spec["int4_kernel"]
    if spec.get("schedule") == "single_thread":
        worker_spec = {
            "backend": backend.kind,
            "members": members,
            **common,
            "telemetry_interval_s": interval,
        }
        env = backend.group_env(list(slots.values()), spec.get("allocator", ""))
        return {"worker_spec": worker_spec, "env": env}
    (member,) = members
    (slot,) = slots.values()
    worker_spec = {
        "backend": backend.kind,
        "slot": member["slot"],
        "settings": member["settings"],
        "model_dir": member["model_dir"],
        **common,
        "result_path": member["result_path"],
        # In-process utilisation (torch.npu.utilization) is sampled by the worker.
        "telemetry_interval_s": interval,
    }
    return {"worker_spec": worker_spec, "env": backend.worker_env(slot, spec.get("allocator", ""))}


def start_worker(
    name: str, worker_spec: dict, env: dict, work_dir: Path, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen:
    """Write the worker's spec and start it (with ``pass_fds`` open in it: a lockstep ring's
    ends). Must be called from the thread that waits for the worker (run's):
    PR_SET_PDEATHSIG, the worker's tie to us, fires when the thread that forked it exits, not
    only the process."""
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
            pass_fds=pass_fds,
        )
    finally:
        log.close()


def kill_all(workers: dict[str, WorkerProcess]) -> None:
    for w in workers.values():
        w.kill()
