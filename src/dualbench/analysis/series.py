"""Energy, power and utilisation over a window, from sampled series (DESIGN §5-6). Pure math.

A series is a time-sorted list of (t_ns, value) on the workers' clock (perf_counter_ns).
- A **gauge** (power in W, utilisation in %) is integrated with the trapezoid rule; at the
  window's edges it is interpolated linearly, so a window cut between samples counts exactly
  the part inside it.
- A **counter** (RAPL energy_uj, NVML total energy mJ, CPU seconds) is read at the window's
  edges by linear interpolation between the samples around each edge; a counter that goes
  down has wrapped, and the wrap range (RAPL max_energy_range_uj) is added back.
Nothing is extrapolated: a window not covered by samples on both sides gives None.
"""

from __future__ import annotations

import bisect
import math

Series = list[tuple[int, float]]
NS_PER_S = 1_000_000_000


def unwrap(series: Series, wrap: float | None) -> Series:
    """A counter made monotonic: each decrease is a wrap-around of ``wrap`` units. Without a
    known range a decrease is an error (a reset), not something to guess about."""
    out, offset = [], 0.0
    for i, (t, v) in enumerate(series):
        if i and v < series[i - 1][1]:
            if not wrap:
                raise ValueError(f"counter went down at t={t} with no wrap range known")
            offset += wrap
        out.append((t, v + offset))
    return out


def value_at(series: Series, t: int) -> float | None:
    """Linear interpolation at ``t``; None outside the sampled span."""
    if not series or t < series[0][0] or t > series[-1][0]:
        return None
    times = [s[0] for s in series]
    i = bisect.bisect_left(times, t)
    if times[i] == t:
        return series[i][1]
    (t0, v0), (t1, v1) = series[i - 1], series[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def counter_delta(series: Series, start: int, end: int, wrap: float | None = None) -> float | None:
    """Counter increase between ``start`` and ``end`` (units of the counter)."""
    series = unwrap(series, wrap)
    a, b = value_at(series, start), value_at(series, end)
    return None if a is None or b is None else b - a


def integrate(series: Series, start: int, end: int) -> float | None:
    """∫ value dt over [start, end] in value·seconds (power in W gives joules)."""
    a, b = value_at(series, start), value_at(series, end)
    if a is None or b is None or end <= start:
        return None
    points = [(start, a), *[(t, v) for t, v in series if start < t < end], (end, b)]
    total = 0.0
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        total += (v0 + v1) / 2 * (t1 - t0)
    return total / NS_PER_S


def mean(series: Series, start: int, end: int) -> float | None:
    """Time-weighted mean of a gauge over [start, end]."""
    area = integrate(series, start, end)
    return None if area is None else area / ((end - start) / NS_PER_S)


def net_energy(gross_j: float | None, idle_power_w: float | None, window_s: float):
    """Gross energy minus what the device draws idle over the same time."""
    if gross_j is None or idle_power_w is None or not math.isfinite(idle_power_w):
        return None
    return gross_j - idle_power_w * window_s
