"""Open-loop arrivals: when requests arrive, independent of when earlier ones finish (a building
block of the open-loop schedule; the closed loop is dualbench.measure.closed_loop).

Inter-arrival times are drawn from a gamma distribution with shape ``burstiness`` and mean
1 / ``rate_rps`` (vLLM bench's ``--request-rate`` / ``--burstiness``; MLPerf's Server
scenario is the Poisson case): burstiness 1 is a Poisson process (exponential gaps), below 1
the arrivals come in bursts, above 1 they are more regular. The draws depend only on the
seed and the slot, so a schedule is reproducible and two slots get different ones.

The gaps are drawn in chunks of ``CHUNK`` and each chunk is scaled to the exact mean gap
1 / rate_rps. Unscaled, the mean of 1,000 Poisson gaps is off by ±3% (one sd; ±4.5% at
burstiness 0.5), so two runs at the same configured rate would offer different loads; scaled,
every chunk offers exactly the configured rate and keeps the gaps' shape. A prefix of a
schedule is the same whatever the count asked for.

A slot serves its arrivals in order, one call at a time: a request starts at the later of its
arrival and the previous call's end, so its TTFT includes the time it waited (``queue_s``,
reported apart as queue_ms), and arrivals not yet started when the window ends are the
backlog the slot could not keep up with.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

PROCESSES = ("poisson", "gamma")
# Arrivals per scaled chunk (see the module docstring).
CHUNK = 1000


def arrival_offsets(
    process: str, rate_rps: float, count: int, seed: int, slot: str, burstiness: float = 1.0
) -> np.ndarray:
    """The first ``count`` arrival times, in seconds from the window's start (the first
    arrival is one gap in, not at 0)."""
    if process not in PROCESSES:
        raise ValueError(f"arrival process {process!r} is unknown; use one of {PROCESSES}")
    if rate_rps <= 0:
        raise ValueError(f"rate_rps must be above 0, not {rate_rps}")
    shape = 1.0 if process == "poisson" else burstiness
    if shape <= 0:
        raise ValueError(f"burstiness must be above 0, not {burstiness}")
    # crc32 rather than hash(): str hashes are salted per process.
    rng = np.random.default_rng(zlib.crc32(f"arrivals/{seed}/{slot}".encode()))
    chunks = max(1, -(-count // CHUNK))
    gaps = rng.gamma(shape, 1.0, size=(chunks, CHUNK))
    gaps *= 1.0 / (rate_rps * gaps.mean(axis=1, keepdims=True))
    return np.cumsum(gaps.ravel()[:count])


@dataclass(frozen=True)
class Served:
    """How a slot served a schedule: per request, when it started and how long it queued."""

    starts: tuple[float, ...]
    queue_s: tuple[float, ...]


def serve_in_order(arrivals, durations) -> Served:
    """Start times and queueing delays of requests served one at a time in arrival order:
    start_i = max(arrival_i, start_{i-1} + duration_{i-1})."""
    starts, queued = [], []
    free_at = -np.inf
    for arrival, duration in zip(arrivals, durations, strict=True):
        start = max(float(arrival), free_at)
        starts.append(start)
        queued.append(start - float(arrival))
        free_at = start + float(duration)
    return Served(tuple(starts), tuple(queued))


def backlog(arrivals, starts, window_end: float) -> int:
    """Arrivals due by ``window_end`` that had not started by then."""
    started = len([s for s in starts if s <= window_end])
    due = int(np.searchsorted(np.asarray(arrivals), window_end, side="right"))
    return max(0, due - started)
