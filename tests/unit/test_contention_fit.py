"""Contention-curve fits: synthetic curves from known parameters, seeded noise.

The curves are written out here again, independently of the module, so a wrong formula or
parametrisation there shows up as a recovery failure. Grid: 8 rates from 0 to 10, 3 repeats
each (24 points), multiplicative Gaussian noise of 2% unless stated.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from dualbench.analysis.contention_fit import (
    MODELS,
    PARAMS,
    Fit,
    compare,
    distinguishable,
    fit_curve,
    preferred,
)

CEILING = 34.0
TRUTH = {
    "exponential": {"bw_max": 30.0, "k": 0.4},
    "floor": {"bw_max": 30.0, "bw_inf": 17.0, "k": 0.4},
    "fair_share": {"bw_max": 30.0, "beta": 2.5},
}
RATES = np.repeat(np.linspace(0.0, 10.0, 8), 3)
# Largest relative error allowed on any one seed. Over 100 seeds the worst seen were 3.0%
# (exponential bw_max, k), 3.3% / 2.8% / 16% (floor bw_max, bw_inf, k: the rate constant of a
# three-parameter curve is the loosest) and 2.6% / 5.4% (fair_share bw_max, beta).
TOLERANCE = {
    "exponential": {"bw_max": 0.05, "k": 0.05},
    "floor": {"bw_max": 0.05, "bw_inf": 0.05, "k": 0.25},
    "fair_share": {"bw_max": 0.05, "beta": 0.08},
}


def curve(model: str, rates: np.ndarray, bw_max, k=0.0, bw_inf=0.0, beta=0.0) -> np.ndarray:
    if model == "exponential":
        return bw_max * np.exp(-k * rates)
    if model == "floor":
        return bw_inf + (bw_max - bw_inf) * np.exp(-k * rates)
    return bw_max * np.minimum(1.0, CEILING / (bw_max + beta * rates))


def noisy(model: str, seed: int, noise: float = 0.02, rates: np.ndarray = RATES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return curve(model, rates, **TRUTH[model]) * (1.0 + noise * rng.standard_normal(rates.size))


@pytest.mark.parametrize("model", list(MODELS))
def test_exact_curve_is_recovered_exactly(model):
    fit = fit_curve(RATES, curve(model, RATES, **TRUTH[model]), model, CEILING, n_boot=0)
    assert fit.converged, fit.note
    assert set(fit.params) == set(PARAMS[model])
    for name, value in TRUTH[model].items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6)
    assert fit.rss < 1e-12 and fit.n == RATES.size and len(fit.residuals) == RATES.size


@pytest.mark.parametrize("model", list(MODELS))
def test_parameters_recovered_and_intervals_cover_truth(model):
    # Ten seeds, 200 wild-bootstrap refits each. Every estimate within TOLERANCE; each nominal
    # 95% interval must cover the truth in at least 6 of 10. Over 100 seeds the coverage was
    # 77-91% per parameter (the percentile bootstrap undercovers with 24 points, and BW_max
    # rests on the three rate-0 points): 6 of 10 passes for any honest seed set, while an
    # interval a few times too narrow (or centred on a biased estimate) fails.
    covered = dict.fromkeys(TRUTH[model], 0)
    for seed in range(10):
        fit = fit_curve(RATES, noisy(model, seed), model, CEILING, n_boot=200, seed=seed)
        assert fit.converged, fit.note
        for name, value in TRUTH[model].items():
            assert abs(fit.params[name] / value - 1) <= TOLERANCE[model][name], (seed, name, fit)
            lo, hi = fit.intervals[name]
            assert lo <= fit.params[name] <= hi, (seed, name, fit.intervals)
            covered[name] += lo <= value <= hi
    assert min(covered.values()) >= 6, covered


def test_intervals_narrow_with_less_noise_and_follow_the_seed():
    loud = fit_curve(RATES, noisy("floor", 3, noise=0.02), "floor", seed=1)
    quiet = fit_curve(RATES, noisy("floor", 3, noise=0.005), "floor", seed=1)
    for name in PARAMS["floor"]:
        width = np.diff(loud.intervals[name])[0]
        assert 2.0 < width / np.diff(quiet.intervals[name])[0] < 8.0  # ~4x less noise
    again = fit_curve(RATES, noisy("floor", 3, noise=0.02), "floor", seed=1)
    other = fit_curve(RATES, noisy("floor", 3, noise=0.02), "floor", seed=2)
    assert again.intervals == loud.intervals and other.intervals != loud.intervals
    classic = fit_curve(RATES, noisy("floor", 3), "floor", seed=1, bootstrap="residual")
    assert classic.params == loud.params and classic.intervals != loud.intervals


@pytest.mark.parametrize("model", list(MODELS))
def test_preferred_picks_the_generating_model(model):
    # Ten seeds per generating model; the right model must win in at least 8. Not 10 of 10:
    # the exponential is the floor model with BW_inf = 0, so on exponential data the floor's
    # extra parameter buys an RSS drop by chance, and beats the AICc penalty in a few per cent
    # of seeds (3 of 200 seen, at 1% and 2% noise); floor and fair_share data were picked
    # right in 200 of 200. Demanding 10 of 10 would make the test a bet on the seeds.
    right = 0
    for seed in range(100, 110):
        fits = compare(RATES, noisy(model, seed), CEILING, n_boot=0)
        assert len(fits) == 3 and fits[0] is preferred(fits)
        assert [f.aic for f in fits] == sorted(f.aic for f in fits)
        assert fits[0].delta_aic == 0.0
        right += preferred(fits).model == model
    assert right >= 8


def test_aic_is_aicc_with_the_error_variance_counted():
    fit = fit_curve(RATES, noisy("floor", 5), "floor", n_boot=0)
    n, k = RATES.size, len(PARAMS["floor"]) + 1
    expected = n * math.log(fit.rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    assert fit.aic == pytest.approx(expected, rel=1e-12)
    assert fit.rss == pytest.approx(sum(e * e for e in fit.residuals), rel=1e-9)


def test_too_few_points_do_not_converge():
    rates = np.linspace(0.0, 10.0, 8)
    for model, names in PARAMS.items():
        p = len(names)
        enough = fit_curve(
            rates[: p + 1], curve(model, rates[: p + 1], **TRUTH[model]), model, CEILING
        )
        assert enough.converged, enough.note  # p + 1 points are enough to fit
        fit = fit_curve(rates[:p], curve(model, rates[:p], **TRUTH[model]), model, CEILING)
        assert not fit.converged and "too few points" in fit.note
        assert all(math.isnan(v) for v in fit.params.values())
    nothing = fit_curve([0.0, 1.0, 2.0], [math.nan] * 3, "exponential")
    assert not nothing.converged and "dropped 3 non-finite" in nothing.note


def test_flat_curve_gives_no_decay():
    flat = 25.0 * (1.0 + 0.01 * np.random.default_rng(9).standard_normal(RATES.size))
    fit = fit_curve(RATES, flat, "exponential", seed=0)
    assert fit.converged
    assert fit.params["k"] < 2e-3 and fit.params["bw_max"] == pytest.approx(25.0, rel=0.01)
    assert fit.intervals["k"][0] == 0.0  # on the bound: no contention is within the interval
    exact = fit_curve(RATES, np.full(RATES.size, 25.0), "exponential", n_boot=0)
    assert exact.params["k"] == pytest.approx(0.0, abs=1e-9)


def test_fair_share_needs_a_ceiling():
    fits = compare(RATES, noisy("floor", 0), n_boot=0)
    assert {f.model for f in fits} == {"exponential", "floor"}
    alone = fit_curve(RATES, noisy("fair_share", 0), "fair_share")
    assert not alone.converged and "ceiling" in alone.note


def test_models_within_two_are_not_distinguishable():
    # A flat curve and a ceiling far above it: the exponential (k = 0) and fair_share
    # (never reaching the knee) are the same constant with the same number of parameters.
    flat = 25.0 * (1.0 + 0.01 * np.random.default_rng(4).standard_normal(RATES.size))
    fits = compare(RATES, flat, ceiling=1000.0, n_boot=0)
    assert not distinguishable(fits)
    best = preferred(fits)
    assert best.model in {"exponential", "fair_share"} and "not distinguishable" in best.note
    assert distinguishable(compare(RATES, noisy("floor", 0), CEILING, n_boot=0))


def _fit(model: str, aic: float, converged: bool = True) -> Fit:
    return Fit(model, {}, {}, 1.0, aic, 10, (), converged)


def test_preferred_and_distinguishable_on_given_scores():
    assert preferred([]) is None and not distinguishable([])
    assert preferred([_fit("floor", -50.0, converged=False)]) is None
    fits = [_fit("floor", -10.0), _fit("exponential", -12.5), _fit("fair_share", -99.0, False)]
    assert preferred(fits).model == "exponential" and distinguishable(fits)
    assert not distinguishable([_fit("floor", -11.0), _fit("exponential", -12.5)])
    assert preferred([_fit("floor", math.inf), _fit("exponential", 3.0)]).model == "exponential"


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        fit_curve(RATES, noisy("floor", 0), "linear")
    with pytest.raises(ValueError):
        fit_curve(RATES, noisy("floor", 0)[:-1], "floor")
    with pytest.raises(ValueError):
        fit_curve(RATES, noisy("floor", 0), "floor", bootstrap="pairs")


def test_a_fit_with_200_refits_is_fast():
    for model in MODELS:
        y = noisy(model, 11)
        start = time.perf_counter()
        fit = fit_curve(RATES, y, model, CEILING, n_boot=200)
        elapsed = time.perf_counter() - start
        assert fit.converged and elapsed < 0.5, (model, elapsed)


def test_fair_share_with_its_knee_beyond_the_data_bounds_beta_from_above():
    # A flat curve far below the ceiling: every beta up to (C - BW_max) / max rate fits.
    rng = np.random.default_rng(3)
    rates = np.repeat([0.0, 0.2, 0.4, 0.6, 0.8, 1.0], 3)
    bandwidths = 6e9 * (1 + 0.01 * rng.standard_normal(rates.size))
    fit = fit_curve(rates, bandwidths, "fair_share", ceiling=44e9, n_boot=50)
    assert fit.converged and fit.params["beta"] == 0.0
    lo, hi = fit.intervals["beta"]
    assert lo == 0.0 and hi == pytest.approx((44e9 - fit.params["bw_max"]) / 1.0)
    assert "knee beyond the measured rates" in fit.note
    # with the knee inside the data, beta is estimated as before
    steep = 6e9 * np.minimum(1, 8e9 / (6e9 + 4e9 * rates))
    fit = fit_curve(rates, steep, "fair_share", ceiling=8e9, n_boot=0)
    assert fit.params["beta"] == pytest.approx(4e9, rel=1e-6) and "knee" not in fit.note
