"""A Snakemake job's log: what the job's script writes to stderr goes to its terminal, as
before, and also to the rule's declared ``log:`` file, so a finished or failed job leaves a
record of its progress and errors where Snakemake (and a cluster) expects it."""

from __future__ import annotations

import contextlib
import sys
import traceback
from pathlib import Path


class _Tee:
    """A text stream writing to both ``streams``; flushed after every write, so a line is in
    the log as soon as it is on the terminal, even if the job is killed next."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def tee_stderr(log_path: str | Path):
    """Inside: sys.stderr also writes to ``log_path`` (created, truncated). An exception that
    escapes leaves its traceback in the log too, since the interpreter prints it only after
    sys.stderr is restored."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        previous = sys.stderr
        sys.stderr = _Tee(previous, log)
        try:
            yield
        except Exception:
            traceback.print_exc(file=log)
            raise
        finally:
            sys.stderr = previous
