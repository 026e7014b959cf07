"""rounds: auto's stopping rule (dualbench.analysis.stopping): its coverage on simulated
sessions with a known slowdown, and its verdict-bearing answers on hand-built runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dualbench.analysis import stopping
from dualbench.analysis.intervals import paired_ratio
from dualbench.config.params import MIN_AUTO_ROUNDS

TRUE_SLOWDOWN = 1.10


def simulated_session(rng, sigma: float, target: float, max_rounds: int = 400):
    """One session under the rule: each round an alone and a co-located throughput with a
    drift common to the round and independent log-normal noise ``sigma`` per trial; stop
    after MIN_AUTO_ROUNDS once the CHECK_LEVEL interval's half-width is within ``target``.
    Returns (the reported 95% interval covers the truth, rounds)."""
    alone, coloc = [], []
    while True:
        drift = rng.normal(0, 0.05)
        alone.append(math.exp(4 + drift + rng.normal(0, sigma)))
        coloc.append(math.exp(4 + drift - math.log(TRUE_SLOWDOWN) + rng.normal(0, sigma)))
        n = len(alone)
        if n < MIN_AUTO_ROUNDS:
            continue
        check = paired_ratio(alone, coloc, stopping.CHECK_LEVEL)
        if stopping.half_width(check.estimate, check.lo, check.hi) <= target or n >= max_rounds:
            shown = paired_ratio(alone, coloc, 0.95)
            return shown.lo <= TRUE_SLOWDOWN <= shown.hi, n


@pytest.mark.parametrize("sigma", [0.02, 0.04])
def test_the_sequential_rule_covers_a_known_slowdown_near_the_nominal_95_percent(sigma):
    """Over 800 seeded sessions the reported 95% intervals cover the true slowdown in 92-97%
    of them (the band stated in dualbench.analysis.stopping; a binomial sd is 0.8 points
    here). Stopping on the 95% interval itself after 3 rounds would fail this: it covers
    about 89% at 4% noise."""
    rng = np.random.default_rng(20261207)
    sessions = [simulated_session(rng, sigma, target=0.03) for _ in range(800)]
    coverage = np.mean([covered for covered, _ in sessions])
    assert 0.92 <= coverage <= 0.97, coverage
    rounds = [n for _, n in sessions]
    assert min(rounds) >= MIN_AUTO_ROUNDS
    # the rule does stop: a tighter interval needs the rounds the noise asks for, not 400
    assert max(rounds) < 400


def test_a_rule_that_checks_the_reported_interval_itself_under_covers():
    """The reason for CHECK_LEVEL: the naive rule (stop once the 95% interval is tight,
    after 3 rounds) stops on lucky rounds and covers clearly less than 95%."""
    rng = np.random.default_rng(7)
    covered = []
    for _ in range(800):
        alone, coloc = [], []
        while True:
            drift = rng.normal(0, 0.05)
            alone.append(math.exp(4 + drift + rng.normal(0, 0.04)))
            coloc.append(math.exp(4 + drift - math.log(TRUE_SLOWDOWN) + rng.normal(0, 0.04)))
            if len(alone) >= 3:
                shown = paired_ratio(alone, coloc, 0.95)
                if stopping.half_width(shown.estimate, shown.lo, shown.hi) <= 0.03:
                    covered.append(shown.lo <= TRUE_SLOWDOWN <= shown.hi)
                    break
    assert np.mean(covered) < 0.92


def test_half_width_is_relative_and_infinite_without_an_interval():
    assert stopping.half_width(1.10, 1.045, 1.155) == pytest.approx(0.05)
    assert stopping.half_width(2.0, float("nan"), float("nan")) == math.inf
    assert stopping.half_width(0.0, 0.0, 0.0) == math.inf


def test_the_verdict_bearing_answers_are_the_verdict_tables():
    answers = pd.DataFrame(
        [
            ("short", "bf16", "slowdown_throughput", "colocated/A", 1.1, 1.0, 1.2),
            ("short", "bf16", "slowdown_tpot_p50", "lockstep/B", 2.0, 1.9, 2.1),
            ("short", "bf16", "scaling_efficiency", "colocated", 0.9, 0.85, 0.95),
            ("short", "bf16", "slowdown_ttft_p50", "colocated/A", 1.0, 0.5, 1.5),
            ("short", "bf16", "v1", "A", 50.0, 10.0, 90.0),
            ("short", "int4", "int4_throughput_tok_s_ratio", "colocated/A+B", 1.4, 1.3, 1.5),
            ("short", "int4", "int4_throughput_tok_s_ratio", "alone_A/A", 1.4, 1.0, 1.8),
        ],
        columns=["scenario", "precision", "answer", "subject", "estimate", "lo", "hi"],
    )
    chosen = stopping.verdict_answers(answers)
    assert list(chosen.subject) == ["colocated/A", "lockstep/B", "colocated", "colocated/A+B"]
    assert chosen.half_width.iloc[0] == pytest.approx(0.1 / 1.1)
    assert list(stopping.verdict_answers(answers, "int4").answer) == ["int4_throughput_tok_s_ratio"]
