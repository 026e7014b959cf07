"""Point estimates and confidence intervals over repeated benchmark blocks.

A benchmark is repeated in blocks: block b runs every layout (A alone, B alone, both
co-located) back to back, so machine drift hits a block's runs alike. Each per-scenario
answer is a ratio or a positive value per block; this module turns the n per-block values
into an estimate with an interval. Why this method:

- the spread *between blocks* is what a rerun would show; intervals from within one run
  understate run-to-run spread about 2-3x (guidellm's analysis);
- pairing alone and co-located runs of the same block removes the drift common to a block;
- logs make multiplicative noise additive and make the interval of a ratio symmetric in its
  direction: 1/r has exactly the reciprocal interval, so the estimate is a geometric mean;
- Student-t accounts for having few blocks, where bootstrap percentile intervals under-cover.

Non-finite or non-positive entries are dropped (a paired block when either side is) and
``n`` counts what is used; n == 1 gives the estimate with NaN bounds, n == 0 all NaN.
Leaf module: numpy and scipy only, nothing from dualbench.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

PAIRED = "paired log-ratio t"
UNPAIRED = "unpaired log-ratio Welch t"
VALUE = "log-value t"

METHODS: dict[str, str] = {
    PAIRED: (
        "Per block r = numerator / denominator (same block, run back to back); estimate = "
        "exp(mean log r), the geometric mean; interval = exp(mean log r ± t_{(1+c)/2, n−1} "
        "· sd(log r) / √n), sd with ddof = 1, over the n blocks with both sides finite and "
        "positive."
    ),
    UNPAIRED: (
        "Estimate = exp(mean log numerator − mean log denominator), the ratio of geometric "
        "means; interval = exp(that difference ± t_{(1+c)/2, ν} · √(s₁²/n₁ + s₂²/n₂)) with "
        "s² the ddof = 1 variances of the logs and ν the Welch–Satterthwaite degrees of "
        "freedom; n is the smaller side's count of finite positive values."
    ),
    VALUE: (
        "Estimate = exp(mean log v), the geometric mean; interval = exp(mean log v ± "
        "t_{(1+c)/2, n−1} · sd(log v) / √n), sd with ddof = 1, over the n finite positive "
        "values."
    ),
}

PERCENTILE_MIN_N: dict[str, int] = {"p90": 10, "p99": 100}

_NAN = float("nan")


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval; lo/hi are NaN when n < 2."""

    estimate: float
    lo: float
    hi: float
    n: int
    method: str

    @property
    def has_interval(self) -> bool:
        return self.n >= 2 and math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def width(self) -> float:
        return self.hi - self.lo if self.has_interval else _NAN

    def excludes(self, value: float) -> bool:
        """True when the interval exists and lies entirely above or below ``value``."""
        return self.has_interval and (self.lo > value or self.hi < value)

    def within(self, lo: float, hi: float) -> bool:
        """True when the interval exists and lies entirely inside [lo, hi]."""
        return self.has_interval and lo <= self.lo and self.hi <= hi


@dataclass(frozen=True)
class Verdict:
    """kind: "no data", "one repeat", "equivalent", "effect" or "inconclusive"."""

    kind: str
    text: str


def _positive_logs(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return np.log(x[np.isfinite(x) & (x > 0)])


def _quantile(confidence: float, dof: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.t.ppf((1.0 + confidence) / 2.0, dof))


def _log_t(logs: np.ndarray, method: str, confidence: float) -> Interval:
    """One-sample t-interval on logs, exponentiated."""
    n = int(logs.size)
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, 0, method)
    mean = float(np.mean(logs))
    if n == 1:
        return Interval(math.exp(mean), _NAN, _NAN, 1, method)
    half = _quantile(confidence, n - 1) * float(np.std(logs, ddof=1)) / math.sqrt(n)
    return Interval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, method)


def paired_ratio(
    numerators: Sequence[float], denominators: Sequence[float], confidence: float = 0.95
) -> Interval:
    """Ratio num_b / den_b of the same block b, over blocks (e.g. slowdown, efficiency)."""
    num = np.asarray(numerators, dtype=float).ravel()
    den = np.asarray(denominators, dtype=float).ravel()
    if num.shape != den.shape:
        raise ValueError(f"paired sequences differ in length: {num.size} vs {den.size}")
    keep = np.isfinite(num) & np.isfinite(den) & (num > 0) & (den > 0)
    return _log_t(np.log(num[keep]) - np.log(den[keep]), PAIRED, confidence)


def value_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Geometric mean of a positive per-block value (e.g. V2 in tok/s, tokens per joule)."""
    return _log_t(_positive_logs(values), VALUE, confidence)


def unpaired_ratio(
    numerators: Sequence[float], denominators: Sequence[float], confidence: float = 0.95
) -> Interval:
    """Ratio of geometric means of two independent sets of blocks (e.g. INT4 vs bf16)."""
    a, b = _positive_logs(numerators), _positive_logs(denominators)
    n = min(a.size, b.size)
    if n == 0:
        return Interval(_NAN, _NAN, _NAN, 0, UNPAIRED)
    diff = float(np.mean(a)) - float(np.mean(b))
    if n == 1:
        return Interval(math.exp(diff), _NAN, _NAN, 1, UNPAIRED)
    va, vb = float(np.var(a, ddof=1)) / a.size, float(np.var(b, ddof=1)) / b.size
    se2 = va + vb
    half = 0.0
    if se2 > 0:
        dof = se2**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        half = _quantile(confidence, dof) * math.sqrt(se2)
    return Interval(math.exp(diff), math.exp(diff - half), math.exp(diff + half), n, UNPAIRED)


def _percent(fraction: float) -> str:
    """0.03 -> "3", 0.025 -> "2.5" (no decimals when whole)."""
    return f"{round(fraction * 100, 6):g}"


NO_INTERFERENCE = "no detectable interference"


def verdict(
    interval: Interval,
    margin: float = 0.03,
    reference: float = 1.0,
    confidence: float = 0.95,
    equivalent: str = NO_INTERFERENCE,
) -> Verdict:
    """Words for a ratio where ``reference`` means "no effect"; ``equivalent`` names that
    case (an interference ratio's "no detectable interference", a comparison's own words).

    Equivalence is tested first: an interval inside reference·(1 ± margin) reads as no
    detectable effect even if it also excludes the reference (too small to matter).
    """
    if interval.n == 0:
        return Verdict("no data", "no data")
    if interval.n == 1:
        return Verdict("one repeat", "one round: no interval")
    if interval.within(reference * (1 - margin), reference * (1 + margin)):
        return Verdict("equivalent", f"{equivalent} (±{_percent(margin)}%)")
    if interval.excludes(reference):
        text = (
            f"{interval.estimate:.2f}× ({_percent(confidence)}% CI "
            f"{interval.lo:.2f}–{interval.hi:.2f})"
        )
        return Verdict("effect", text)
    return Verdict("inconclusive", f"inconclusive at n = {interval.n} rounds: run more rounds")


def percentile_label(stat: str, n: int) -> str | None:
    """Label "max, n = 37" when ``stat`` (p90/p99) is over fewer values than it needs.

    numpy's linear interpolation of a p90 over < 10 values (p99 over < 100) is essentially
    the maximum, so the report should call it that. None when enough values, for other
    statistics, and for n == 0 (nothing was computed).
    """
    need = PERCENTILE_MIN_N.get(stat.lower())
    if need is None or n <= 0 or n >= need:
        return None
    return f"max, n = {n}"
