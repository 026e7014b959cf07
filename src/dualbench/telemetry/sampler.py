"""Device telemetry sampled beside a run, in the parent (the runner), never in the workers.

Each source (dualbench.telemetry.sources) is sampled by its own thread every ``interval_s`` (an
npu-smi call can take longer than a fast counter read, and must not delay the others). A sample
is stamped with ``time.perf_counter_ns()`` at the middle of its read, the clock of the workers'
token timestamps, so it can be placed in the co-located window exactly. Sampling starts
``idle_s`` before the first worker is spawned: those samples are the idle baseline.

Rows go to ``telemetry.csv`` beside run.json: t_ns, slots (the slots whose work the source
sees, "+"-joined), device, metric, value, source. Counters (cpu_time_s, energy_uj, energy_mj)
are written raw; the analysis (dualbench.analysis.series) turns them into window deltas. A
read that fails is a gap, counted and described in the run record, never a crash and never a
made-up value.
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dualbench.telemetry.sources import Source

COLUMNS = ["t_ns", "slots", "device", "metric", "value", "source"]


@dataclass
class Sampler:
    """Threads sampling ``sources`` every ``interval_s`` until ``stop``."""

    sources: list[Source]
    interval_s: float
    rows: list[tuple] = field(default_factory=list)
    gaps: dict[str, dict] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # One per source: its periodic read and a sample_now read never overlap (a source may
    # keep state between reads, e.g. an npu-smi fallback chosen at the first).
    _reading: dict[int, threading.Lock] = field(default_factory=dict)

    def start(self) -> Sampler:
        self._reading = {id(s): threading.Lock() for s in self.sources}
        for source in self.sources:
            thread = threading.Thread(target=self._loop, args=(source,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, source: Source) -> None:
        next_tick = time.perf_counter()
        while not self._stop.is_set():
            self._sample(source, record_gap=True)
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - time.perf_counter()))
        # One more at stop, which comes after the window's end: without it the window's last
        # interval would have no sample after it. A source gone by then (an exited worker's
        # CPU time) is not a gap.
        self._sample(source, record_gap=False)

    def sample_now(self) -> None:
        """One sample of every source now, all at once, back when each has one: a trial of a
        session ends with it, as a run ended with the sample at ``stop``, so that the window's
        last interval has a sample after it (energy and means interpolate across it)."""
        readers = [
            threading.Thread(target=self._sample, args=(s, False), daemon=True)
            for s in self.sources
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(timeout=30)

    def _sample(self, source: Source, record_gap: bool) -> None:
        with self._reading.setdefault(id(source), threading.Lock()):
            before = time.perf_counter_ns()
            try:
                values = source.read()
            except Exception as exc:  # recorded as a gap: telemetry must never end a run
                if record_gap:
                    self._gap(source, exc)
                return
            after = time.perf_counter_ns()
        stamp = (before + after) // 2
        with self._lock:
            for metric, value in values:
                self.rows.append(
                    (stamp, "+".join(source.slots), source.device, metric, value, source.name)
                )

    def _gap(self, source: Source, exc: Exception) -> None:
        key = f"{source.name} {source.device}"
        with self._lock:
            gap = self.gaps.setdefault(key, {"count": 0, "first_error": ""})
            gap["count"] += 1
            gap["first_error"] = gap["first_error"] or f"{type(exc).__name__}: {exc}"[:300]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def write(self, path: Path, extra_rows: list[tuple] = ()) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(sorted([*self.rows, *extra_rows]))


def read_csv(path: Path) -> list[dict]:
    """telemetry.csv rows with t_ns as int and value as float."""
    with open(path, newline="") as f:
        return [
            {**row, "t_ns": int(row["t_ns"]), "value": float(row["value"])}
            for row in csv.DictReader(f)
        ]
