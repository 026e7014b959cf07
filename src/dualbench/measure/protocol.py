"""The runner <-> worker protocol, both ends of it, so every message is spelled once.

One JSON object per line. A worker is persistent: it loads and warms up its model once,
writes ``loaded``, then serves trials until ``quit`` (or its stdin closes). For each trial it
reads ``trial <json>`` (what to run: its slot settings, the window, where to write its result)
and answers ``ready`` (armed for that trial), then reads ``go`` (the barrier release: the
window starts), writes ``progress`` (after every call in the window) and ``met`` (its own stop
criteria reached), may read ``last`` (every other slot of the trial has met its criteria: a
closed-loop worker then starts no call past its own), reads ``stop`` (every slot has met its
criteria: the call in flight is cut at its next forward pass), and writes ``done`` once its
result file is written, or ``error``. Events go to its protocol channel (the process's
original stdout; library chatter is redirected to stderr, the log); commands come on stdin.
Between trials a worker blocks on stdin: an idle worker computes nothing.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from enum import StrEnum
from typing import IO


class Event(StrEnum):
    """Worker to runner: the ``event`` field of each protocol line."""

    LOADED = "loaded"
    READY = "ready"
    PROGRESS = "progress"
    MET = "met"
    DONE = "done"
    ERROR = "error"


class Command(StrEnum):
    """Runner to worker: one per line on the worker's stdin."""

    TRIAL = "trial"
    GO = "go"
    LAST = "last"
    STOP = "stop"
    QUIT = "quit"


# Not a protocol message: the runner's own note that a worker's stdout closed.
WORKER_EXITED = "eof"


class WorkerChannel:
    """The worker's end: events out on the original stdout, commands in from stdin."""

    def __init__(self):
        # Keep the real stdout for the protocol and point fd 1 at stderr, so nothing a library
        # prints can corrupt a protocol line.
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.stop = threading.Event()
        # Set by ``last``: the trial waits on this worker alone.
        self.last = threading.Event()
        self._go = threading.Event()
        self._trials: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read_commands, daemon=True).start()

    def _read_commands(self) -> None:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == Command.TRIAL:
                self._trials.put(json.loads(argument))
            elif command == Command.GO:
                self._go.set()
            elif command == Command.LAST:
                self.last.set()
            elif command == Command.STOP:
                self.stop.set()
            elif command == Command.QUIT:
                break
        # The runner went away (or said quit): stop rather than run on unobserved.
        self._trials.put(None)
        self._go.set()
        self.stop.set()

    def next_trial(self) -> dict | None:
        """Block until the runner sends the next trial; None: no more (quit, or the runner is
        gone). The runner sends a trial only after the previous one's ``done``, and ``go`` only
        after this trial's ``ready``, so clearing the last trial's go, last and stop here
        loses nothing of this one's."""
        trial = self._trials.get()
        if trial is not None:
            self._go.clear()
            self.last.clear()
            self.stop.clear()
        return trial

    def send(self, event: str, **fields) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()

    def wait_go(self) -> None:
        self._go.wait()


def forward_events(stdout: IO[str], slot: str, events: queue.Queue) -> None:
    """The runner's end, reading: each event line of worker ``slot`` put on ``events`` as
    (slot, message), then (slot, WORKER_EXITED) when its stdout closes. Runs in a thread per
    worker, so one queue serves every slot in arrival order."""
    for line in stdout:
        try:
            events.put((slot, json.loads(line)))
        except json.JSONDecodeError:
            continue
    events.put((slot, {"event": WORKER_EXITED}))


def send_command(stdin: IO[str], command: Command, argument: dict | None = None) -> None:
    """The runner's end, writing: one command to a worker (a trial with its JSON argument); a
    worker that is gone is not an error here (its exit is reported through forward_events)."""
    line = command if argument is None else f"{command} {json.dumps(argument)}"
    try:
        stdin.write(line + "\n")
        stdin.flush()
    except (BrokenPipeError, ValueError):
        pass


def tell_last(workers: dict, met: set, spec: dict, told: set) -> None:
    """The runner's end: ``last`` to the worker (of ``workers``: name -> a process with
    ``slots`` and ``send``) whose slot is the only one of a free-running or lockstep trial
    still short of its criteria, once: it then stops at its own criteria, sparing a call that
    would end outside the window. In lockstep its leaving breaks the ring, and the others run
    free from there: past the window, which ends at the earliest end (analysis.metrics.co_window).
    A single-thread trial is left to the stop: one process serves all its slots in rounds."""
    if spec.get("schedule", "free") not in ("free", "lockstep"):
        return
    pending = [n for n, w in workers.items() if any(s not in met for s in w.slots)]
    if len(pending) == 1 and pending[0] not in told:
        told.add(pending[0])
        workers[pending[0]].send(Command.LAST)
