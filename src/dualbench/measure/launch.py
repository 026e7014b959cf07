"""How a worker process starts (its spec file, environment, inherited fds, its own process
group), and the runner's handle on each (dualbench.measure.session drives them)."""

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

    def send_trial(self, trial: dict) -> None:
        """The next trial, for a persistent worker (dualbench.measure.session)."""
        self.phase = "arming"
        send_command(self.proc.stdin, Command.TRIAL, trial)

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
