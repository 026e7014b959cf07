"""How long the processes of a run live: a stop signal ends the run at once, and a worker
never outlives its runner.

- Runner side: ``exit_on_signals`` turns SIGINT (Ctrl-C), SIGTERM and SIGHUP into
  ``Interrupted``, so the run's cleanup kills the workers and no record is written;
  ``forward_interrupts_to_jobs`` lets a SIGINT sent to Snakemake's pid reach its jobs.
- Worker side: ``die_with_parent`` ties a worker's life to its runner's (it holds a device,
  and a benchmark nobody waits for only skews whatever runs next on that device).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

# The signals that abandon a run. Snakemake forwards none of them to a running job: on Ctrl-C
# it waits for its jobs to end. Ctrl-C still reaches us, because a script job runs in
# Snakemake's process group, the terminal's foreground group; the workers have sessions of
# their own and hear of it only from us.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The runner's pid, set by the runner in the worker's environment (see die_with_parent).
PARENT_PID_ENV = "DUALBENCH_PARENT_PID"
# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
# How often the fallback watchdog (no PR_SET_PDEATHSIG off Linux) looks at the parent pid.
PARENT_POLL_S = 0.5
# Exit status of a worker that found its runner gone.
ORPHANED_EXIT = 70


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


def die_with_parent(parent_pid: int | None) -> None:
    """Tie this process's life to the runner's: when the runner dies, by SIGKILL included, the
    worker dies at once, in the middle of a request, instead of computing on for nobody.

    Linux: the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG). It fires when the
    *thread* that forked us exits, which is why the runner spawns workers from the thread that
    waits for them. The setting only covers a death after this call, so the parent pid is
    checked afterwards: a runner that died during our interpreter's start-up left us
    re-parented already. Elsewhere a watchdog thread polls the parent pid instead.
    """
    linux = sys.platform.startswith("linux")
    if linux:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if parent_pid is None:
        return  # started by hand (debugging): no runner to outlive
    exit_if_orphaned(parent_pid)
    if not linux:
        threading.Thread(target=watch_parent, args=(parent_pid,), daemon=True).start()


def exit_if_orphaned(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        # os._exit: no cleanup that could wait on a device or write a result nobody reads.
        os.write(2, f"dualbench worker: runner {parent_pid} is gone, exiting\n".encode())
        os._exit(ORPHANED_EXIT)


def watch_parent(parent_pid: int, interval_s: float = PARENT_POLL_S) -> None:
    """Exit the process once the parent pid changes (the fallback for PR_SET_PDEATHSIG)."""
    while True:
        exit_if_orphaned(parent_pid)
        time.sleep(interval_s)
