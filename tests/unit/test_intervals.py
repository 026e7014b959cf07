"""Intervals over repeated blocks: constructed data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dualbench.analysis.intervals import (
    METHODS,
    PAIRED,
    UNPAIRED,
    VALUE,
    Interval,
    Verdict,
    paired_ratio,
    percentile_label,
    unpaired_ratio,
    value_interval,
    verdict,
)


def _blocks(rng: np.random.Generator, n: int, slowdown: float, drift_sd: float, noise_sd: float):
    """Throughput alone and co-located per block: a common per-block drift factor times
    independent lognormal noise per run; the true alone/co-located ratio is ``slowdown``."""
    drift = rng.lognormal(0.0, drift_sd, n) if drift_sd else np.ones(n)
    alone = 100.0 * drift * rng.lognormal(0.0, noise_sd, n)
    colocated = 100.0 / slowdown * drift * rng.lognormal(0.0, noise_sd, n)
    return alone, colocated


def test_paired_interval_covers_true_slowdown_95_percent():
    # 400 seeded trials of n = 5 blocks: coverage is Binomial(400, 0.95)/400, sd =
    # sqrt(0.95 * 0.05 / 400) ~ 1.1%; 0.92-0.98 is about ±2.75 sd, so a correct t-interval
    # passes for nearly any seed while a z-interval (~88% at 4 dof) or a bootstrap fails.
    rng = np.random.default_rng(20240611)
    trials = 400
    covered = 0
    for _ in range(trials):
        alone, colocated = _blocks(rng, 5, 1.10, drift_sd=0.1, noise_sd=0.05)
        iv = paired_ratio(alone, colocated)
        assert iv.n == 5 and iv.method == PAIRED
        covered += iv.lo <= 1.10 <= iv.hi
    assert 0.92 <= covered / trials <= 0.98


def test_pairing_removes_block_drift():
    # Drift sd 0.15 common to both runs of a block, noise 0.02: the unpaired interval
    # carries the drift, the paired one cancels it.
    rng = np.random.default_rng(7)
    narrower = 0
    for _ in range(50):
        alone, colocated = _blocks(rng, 5, 1.10, drift_sd=0.15, noise_sd=0.02)
        narrower += paired_ratio(alone, colocated).width < unpaired_ratio(alone, colocated).width
    assert narrower >= 45


def test_constant_ratio_gives_zero_width():
    den = np.array([10.0, 20.0, 35.0, 7.0])
    iv = paired_ratio(1.2 * den, den)
    assert iv.estimate == pytest.approx(1.2, rel=1e-12)
    assert iv.has_interval and iv.width == pytest.approx(0.0, abs=1e-12)
    assert iv.lo == pytest.approx(1.2, rel=1e-12) and iv.hi == pytest.approx(1.2, rel=1e-12)


def test_two_blocks_use_t_with_one_dof():
    a, b = math.log(1.05), math.log(1.25)
    iv = paired_ratio([math.exp(a) * 3.0, math.exp(b) * 4.0], [3.0, 4.0])
    t1 = stats.t.ppf(0.975, 1)
    assert t1 == pytest.approx(12.7062, abs=1e-4)  # table value
    mean, sd = (a + b) / 2, abs(a - b) / math.sqrt(2)
    half = t1 * sd / math.sqrt(2)
    assert iv.n == 2
    assert iv.estimate == pytest.approx(math.exp(mean), rel=1e-12)
    assert iv.lo == pytest.approx(math.exp(mean - half), rel=1e-12)
    assert iv.hi == pytest.approx(math.exp(mean + half), rel=1e-12)


def test_one_block_has_no_interval():
    iv = paired_ratio([110.0], [100.0])
    assert iv.n == 1 and iv.estimate == pytest.approx(1.1)
    assert math.isnan(iv.lo) and math.isnan(iv.hi) and math.isnan(iv.width)
    assert not iv.has_interval and not iv.excludes(1.0)
    assert verdict(iv) == Verdict("one repeat", "one round: no interval")


def test_bad_entries_are_dropped_and_counted():
    num = [1.1, float("nan"), 1.2, 0.0, 1.3, 1.4, float("inf")]
    den = [1.0, 1.0, float("nan"), 1.0, -1.0, 1.0, 1.0]
    iv = paired_ratio(num, den)
    assert iv.n == 2
    assert iv.estimate == pytest.approx(math.sqrt(1.1 * 1.4), rel=1e-12)
    assert value_interval([2.0, 0.0, -3.0, float("nan"), 8.0]).n == 2
    nothing = paired_ratio([float("nan")], [1.0])
    assert nothing.n == 0 and all(math.isnan(x) for x in (nothing.estimate, nothing.lo))
    assert verdict(nothing) == Verdict("no data", "no data")
    assert unpaired_ratio([], [1.0, 2.0]).n == 0


def test_paired_length_mismatch_raises():
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


def test_reciprocal_ratio_has_reciprocal_interval():
    rng = np.random.default_rng(3)
    a, b = _blocks(rng, 6, 1.3, drift_sd=0.1, noise_sd=0.1)
    ab, ba = paired_ratio(a, b), paired_ratio(b, a)
    assert ba.estimate == pytest.approx(1 / ab.estimate, rel=1e-12)
    assert ba.lo == pytest.approx(1 / ab.hi, rel=1e-12)
    assert ba.hi == pytest.approx(1 / ab.lo, rel=1e-12)


def test_unpaired_matches_scipy_welch():
    rng = np.random.default_rng(11)
    num = rng.lognormal(math.log(0.8), 0.05, 5)
    den = rng.lognormal(0.0, 0.2, 7)  # unequal sizes and variances: Welch dof matters
    iv = unpaired_ratio(num, den, confidence=0.9)
    res = stats.ttest_ind(np.log(num), np.log(den), equal_var=False)
    ci = res.confidence_interval(confidence_level=0.9)
    assert iv.n == 5 and iv.method == UNPAIRED
    assert iv.estimate == pytest.approx(math.exp(np.log(num).mean() - np.log(den).mean()))
    assert iv.lo == pytest.approx(math.exp(ci.low), rel=0, abs=1e-12)
    assert iv.hi == pytest.approx(math.exp(ci.high), rel=0, abs=1e-12)
    # Welch differs from the pooled interval here.
    pooled = stats.ttest_ind(np.log(num), np.log(den)).confidence_interval(0.9)
    assert abs(math.exp(pooled.low) - iv.lo) > 1e-4


def test_value_interval_hand_checked():
    # logs 0, 1, 2: mean 1, sd 1; t(0.975, 2) = 4.3027 (table); half = 4.3027 / sqrt(3).
    iv = value_interval([1.0, math.e, math.e**2])
    half = 4.302652729911275 / math.sqrt(3)
    assert iv.n == 3 and iv.method == VALUE
    assert iv.estimate == pytest.approx(math.e, rel=1e-12)
    assert iv.lo == pytest.approx(math.exp(1 - half), rel=1e-9)
    assert iv.hi == pytest.approx(math.exp(1 + half), rel=1e-9)


def _iv(est: float, lo: float, hi: float, n: int = 5) -> Interval:
    return Interval(est, lo, hi, n, PAIRED)


def test_verdict_texts():
    assert verdict(_iv(1.0, 0.99, 1.02)) == Verdict(
        "equivalent", "no detectable interference (±3%)"
    )
    assert verdict(_iv(1.0, 0.99, 1.02), margin=0.025).text == (
        "no detectable interference (±2.5%)"
    )
    # Excludes 1 but inside the margin: equivalence wins.
    assert verdict(_iv(1.015, 1.01, 1.02)).kind == "equivalent"
    assert verdict(_iv(1.12, 1.08, 1.16)) == Verdict("effect", "1.12× (95% CI 1.08–1.16)")
    assert verdict(_iv(0.85, 0.8, 0.9)) == Verdict("effect", "0.85× (95% CI 0.80–0.90)")
    assert verdict(_iv(1.12, 1.08, 1.16), confidence=0.9).text == "1.12× (90% CI 1.08–1.16)"
    assert verdict(_iv(1.02, 0.95, 1.1, n=4)) == Verdict(
        "inconclusive", "inconclusive at n = 4 rounds: run more rounds"
    )
    # Reference other than 1: 2.0 ± 3% is [1.94, 2.06].
    assert verdict(_iv(2.0, 1.95, 2.05), reference=2.0).kind == "equivalent"
    assert verdict(_iv(2.0, 1.95, 2.05)).kind == "effect"


def test_verdict_on_computed_intervals():
    assert verdict(paired_ratio([1.2] * 4, [1.0] * 4)).kind == "effect"
    assert verdict(paired_ratio([1.0, 1.001, 0.999], [1.0, 1.0, 1.0])).kind == "equivalent"
    assert verdict(paired_ratio([1.3, 0.8, 1.1, 0.9], [1.0] * 4)).text == (
        "inconclusive at n = 4 rounds: run more rounds"
    )


def test_interval_helpers():
    iv = _iv(1.1, 1.05, 1.15)
    assert iv.width == pytest.approx(0.1)
    assert iv.excludes(1.0) and not iv.excludes(1.1)
    assert iv.within(1.0, 1.2) and not iv.within(1.06, 1.2)


def test_methods_describe_each_key():
    assert set(METHODS) == {PAIRED, UNPAIRED, VALUE}
    assert {paired_ratio([1, 2], [1, 1]).method, unpaired_ratio([1, 2], [1, 2]).method} <= set(
        METHODS
    )
    assert all(text.endswith(".") for text in METHODS.values())


def test_bad_confidence_raises():
    with pytest.raises(ValueError):
        value_interval([1.0, 2.0], confidence=95)


def test_percentile_label():
    assert percentile_label("p90", 9) == "max, n = 9"
    assert percentile_label("p90", 10) is None
    assert percentile_label("p99", 99) == "max, n = 99"
    assert percentile_label("p99", 100) is None
    assert percentile_label("p99", 37) == "max, n = 37"
    assert all(percentile_label("p50", n) is None for n in (1, 2, 5, 1000))
