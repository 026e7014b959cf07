"""The runner <-> worker protocol, both ends of it, so every message is spelled once.

One JSON object per line. The worker writes ``ready`` (loaded and warmed up), ``progress``
(after every call in the window), ``met`` (its own stop criteria reached), ``done`` or
``error`` on its protocol channel (the process's original stdout; library chatter is
redirected to stderr, the log). It reads ``go`` (the barrier release: the window starts) and
``stop`` (every slot has met its criteria) on stdin.
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

    READY = "ready"
    PROGRESS = "progress"
    MET = "met"
    DONE = "done"
    ERROR = "error"


class Command(StrEnum):
    """Runner to worker: one per line on the worker's stdin."""

    GO = "go"
    STOP = "stop"


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
        self._go = threading.Event()
        threading.Thread(target=self._read_commands, daemon=True).start()

    def _read_commands(self) -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == Command.GO:
                self._go.set()
            elif command == Command.STOP:
                self.stop.set()
        # The runner went away: stop rather than run on unobserved.
        self._go.set()
        self.stop.set()

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


def send_command(stdin: IO[str], command: Command) -> None:
    """The runner's end, writing: one command to a worker; a worker that is gone is not an
    error here (its exit is reported through forward_events)."""
    try:
        stdin.write(command + "\n")
        stdin.flush()
    except (BrokenPipeError, ValueError):
        pass
