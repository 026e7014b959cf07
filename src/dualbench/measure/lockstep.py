"""Lockstep: the workers of a run take their forward passes in strict turns, one token passed
round a ring of OS pipes (the origin note's alternating pipeline: worker 0 computes step t,
worker 1 step t+1, worker 0 step t+2...).

The runner makes one pipe per worker (``ring_pipes``): worker i reads its own and writes the
next one's, (i+1) mod N, in slot order, and one byte is already in worker 0's pipe at the
release, so worker 0 holds the first turn. A worker acquires the turn (reads the byte) before
its prefill and before each decode step, and releases it (writes the byte on) once the step's
token exists on its device (dualbench.measure.engine.TimestampStreamer): between a release and
the next acquisition of another worker, no device of the run computes for the benchmark.

The ring lasts as long as every member is in it. A worker that stops (after ``stop``, its
last call done) or dies closes its ends; its neighbours then read end-of-file or fail to write
(the reader is gone), and each that does closes its own ends and runs free from then on, so the
break goes round the ring and no worker waits for a turn that can never come. A run's window
ends at the first stop anyway (dualbench.analysis.lockstep).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

TOKEN = b"\x01"


@dataclass(frozen=True)
class RingEnds:
    """One worker's place in the ring: the fd numbers it inherits and its position."""

    read_fd: int
    write_fd: int
    position: int
    size: int

    def to_dict(self) -> dict:
        return {
            "read_fd": self.read_fd,
            "write_fd": self.write_fd,
            "position": self.position,
            "size": self.size,
        }


def ring_pipes(size: int) -> list[RingEnds]:
    """The ring of ``size`` workers, with the first turn already in worker 0's pipe. The caller
    passes each worker its two fds (Popen pass_fds) and then closes every fd here with
    close_ring: a copy left open in the parent would hide a worker's exit from its
    neighbours (no end-of-file while another writer exists)."""
    pipes = [os.pipe() for _ in range(size)]
    os.write(pipes[0][1], TOKEN)
    return [RingEnds(pipes[i][0], pipes[(i + 1) % size][1], i, size) for i in range(size)]


def close_ring(ends: list[RingEnds]) -> None:
    """Close the parent's copies of every fd of ``ends`` (each at most once)."""
    for fd in {fd for e in ends for fd in (e.read_fd, e.write_fd)}:
        with contextlib.suppress(OSError):
            os.close(fd)


class TokenRing:
    """A worker's end of the ring: ``acquire`` blocks until this worker's turn, ``release``
    passes it on. Once the ring is broken (``ended_ns`` set) both return at once and the worker
    runs free."""

    def __init__(self, ends: RingEnds):
        self.ends = ends
        self.ended_ns: int | None = None
        self.holding = False

    @property
    def active(self) -> bool:
        return self.ended_ns is None

    def acquire(self) -> int | None:
        """Wait for the turn; return when it came (perf_counter_ns), or None if the ring is
        broken (the previous worker has gone: end-of-file)."""
        if not self.active:
            return None
        try:
            got = os.read(self.ends.read_fd, 1)
        except OSError:
            got = b""
        if not got:
            self._break()
            return None
        self.holding = True
        return time.perf_counter_ns()

    def release(self) -> int | None:
        """Pass the turn on; return when (perf_counter_ns, taken before the write), or None
        when this worker did not hold it. A next worker that has gone breaks the ring here:
        the interpreter ignores SIGPIPE, so the write raises BrokenPipeError, never kills."""
        if not self.holding:
            return None
        self.holding = False
        released_ns = time.perf_counter_ns()
        try:
            os.write(self.ends.write_fd, TOKEN)
        except OSError:
            self._break()
        return released_ns

    def close(self) -> None:
        """Leave the ring (this worker stops): the neighbours see it at their next turn."""
        if self.active:
            self._break()

    def _break(self) -> None:
        self.ended_ns = time.perf_counter_ns()
        self.holding = False
        for fd in (self.ends.read_fd, self.ends.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def describe(self) -> dict:
        """The worker result's ``lockstep`` field."""
        return {"position": self.ends.position, "size": self.ends.size, "ended_ns": self.ended_ns}
