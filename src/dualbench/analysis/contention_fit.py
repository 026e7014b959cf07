"""Contention curves: how a victim model's effective memory bandwidth falls as a neighbour's
request rate rises, fitted by three candidate models and compared by AICc.

The victim runs closed-loop while the neighbour's rate steps up (rate 0 = victim alone); each
block gives one (rate, BW_eff) point, and all points are fitted, repeats included. Models:

- ``exponential`` (the origin note's): decays towards zero as the rate grows;
- ``floor``: decays to a floor BW_inf. Classical memory-interference models saturate rather
  than decay to zero: a victim keeps its share of a contended memory system however busy the
  neighbour gets. The exponential is the floor model with BW_inf = 0, so the data decide;
- ``fair_share``: the victim gets its demand BW_max until the two demands exceed the calibrated
  contended ceiling C, then a proportional share of C; the neighbour's demand grows linearly,
  beta * rate. C is measured, not fitted, so the model has two parameters.

Fits: bounded least squares (scipy ``least_squares``, analytic Jacobians, many starts).
Comparison: AICc, the small-sample AIC, n ln(RSS/n) + 2K + 2K(K+1)/(n-K-1) with K = p + 1
(the p curve parameters and the Gaussian error variance): a sweep gives some 10-30 points for
2-3 parameters, n/K well under 40, where plain AIC over-favours the bigger model; AICc tends
to AIC as n grows. Intervals: a seeded residual bootstrap (wild by default, ``_resample``)
refitted as one vectorised Levenberg-Marquardt batch: a fit with 200 refits takes ~20 ms.
numpy and scipy only; data problems give a Fit with converged False, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

MODELS = {
    "exponential": "BW_eff = BW_max * exp(-k * rate)",
    "floor": "BW_eff = BW_inf + (BW_max - BW_inf) * exp(-k * rate)",
    "fair_share": "BW_eff = BW_max * min(1, C / (BW_max + beta * rate))",
}
# Reported parameters per model (internally ``floor`` fits frac = BW_inf / BW_max in [0, 1]).
PARAMS = {
    "exponential": ("bw_max", "k"),
    "floor": ("bw_max", "bw_inf", "k"),
    "fair_share": ("bw_max", "beta"),
}
CRITERION = "AICc"
BOOTSTRAPS = ("wild", "residual")
# An AICc difference under this is "not distinguishable" (Burnham & Anderson: models within
# 2 of the best have substantial support); the preferred fit then only leads, it does not win.
DISTINGUISHABLE = 2.0


@dataclass(frozen=True)
class Fit:
    """One model fitted to one curve. ``aic`` holds AICc (see the module docstring);
    ``delta_aic`` is its distance from the best converged fit, set by ``compare``."""

    model: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    rss: float
    aic: float
    n: int
    residuals: tuple[float, ...]
    converged: bool
    note: str = ""
    delta_aic: float = math.nan


def _predict(model: str, theta: np.ndarray, r: np.ndarray, ceiling: float) -> np.ndarray:
    """The curve at ``r`` for one theta (p,) -> (n,) or a batch (B, p) -> (B, n)."""
    t = [theta[..., i, None] for i in range(theta.shape[-1])]
    if model == "exponential":
        return t[0] * np.exp(-t[1] * r)
    if model == "floor":
        return t[0] * (t[1] + (1.0 - t[1]) * np.exp(-t[2] * r))
    # A trial point with BW_max near 0 makes C / demand overflow to inf, then min(1, inf) = 1:
    # the right limit, so the overflow is not worth a warning in the aggregate's log.
    with np.errstate(over="ignore"):
        return t[0] * np.minimum(1.0, ceiling / np.maximum(t[0] + t[1] * r, 1e-300))


def curve(model: str, params, rates, ceiling: float = math.nan) -> np.ndarray | None:
    """A fitted model at ``rates`` from its reported parameters (a Fit's ``params`` or a
    contention_fits.csv row): None for an unknown model or a missing parameter, or for
    fair_share without a finite ceiling C."""
    names = PARAMS.get(model)
    if names is None:
        return None
    values = [float(params.get(name, math.nan)) for name in names]
    if not all(math.isfinite(v) for v in values):
        return None
    if model == "fair_share" and not math.isfinite(ceiling):
        return None
    if model == "floor":  # reported bw_inf -> the internal fraction bw_inf / bw_max
        bw_max, bw_inf, k = values
        values = [bw_max, bw_inf / bw_max if bw_max > 0 else 0.0, k]
    return _predict(model, np.array(values), np.asarray(rates, dtype=float), float(ceiling))


def _jacobian(model: str, theta: np.ndarray, r: np.ndarray, ceiling: float) -> np.ndarray:
    """d curve / d theta: (n, p), or (B, n, p) for a batch."""
    t = [theta[..., i, None] for i in range(theta.shape[-1])]
    if model == "exponential":
        e = np.exp(-t[1] * r)
        cols = [e, -t[0] * r * e]
    elif model == "floor":
        e = np.exp(-t[2] * r)
        cols = [t[1] + (1 - t[1]) * e, t[0] * (1 - e), -t[0] * (1 - t[1]) * r * e]
    else:
        s = np.maximum(t[0] + t[1] * r, 1e-300)
        on = s > ceiling  # past the knee: a share of C; before it, the victim's own demand
        q = np.where(on, ceiling * r / np.where(on, s, 1.0) ** 2, 0.0)
        cols = [np.where(on, t[1] * q, 1.0), -t[0] * q]
    return np.stack(np.broadcast_arrays(*cols), axis=-1)


def _bounds(model: str) -> tuple[list[float], list[float]]:
    """All parameters >= 0; floor's frac = BW_inf / BW_max <= 1 (so BW_inf <= BW_max)."""
    p = len(PARAMS[model])
    return [0.0] * p, ([np.inf, 1.0, np.inf] if model == "floor" else [np.inf] * p)


def _starts(model: str, r: np.ndarray, y: np.ndarray, ceiling: float) -> list[np.ndarray]:
    """Starting points from the data (cheap: ``_solve`` runs them as one batch): levels from
    the lowest- and highest-rate points, rate constants spread over the measured range (the
    knee early to late) plus a log-linear one; for fair_share the median beta the points
    below the victim's level imply."""
    lo, hi = r.min(), r.max()
    y0 = max(float(y[r == lo].mean()), 1e-9)
    y1 = max(float(y[r == hi].mean()), 0.0)
    span = max(hi - lo, 1e-9)
    levels = (y0, max(y0, float(y.max())))
    ks = [0.0] + [f / span for f in (0.1, 0.3, 1.0, 3.0, 10.0)]
    if model == "exponential":
        good = y > 0
        if good.sum() >= 2 and np.ptp(r[good]) > 0:
            ks.append(max(0.0, -np.polyfit(r[good], np.log(y[good]), 1)[0]))
        return [np.array([a, k]) for a in levels for k in ks]
    if model == "floor":
        frac = min(max(y1 / y0, 0.0), 1.0)
        return [np.array([a, f, k]) for a in levels for f in (frac, 0.5 * frac) for k in ks]
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = (y0 * ceiling / y - y0) / r
    implied = implied[np.isfinite(implied) & (implied > 0) & (r > 0)]
    betas = [0.0] + [f * y0 / span for f in (0.1, 0.3, 1.0, 3.0, 10.0)]
    betas += [float(np.median(implied))] if implied.size else []
    return [np.array([a, b]) for a in (*levels, ceiling) for b in betas]


def _solve(model, r, y, ceiling, starts) -> tuple[np.ndarray | None, float, str]:
    """The bounded least-squares fit: (theta, rss, note). All ``starts`` run a batched
    ``_batch_lm`` together; scipy ``least_squares`` then polishes from the best of them, and
    from the next best should it fail."""
    lower, upper = _bounds(model)
    starts = np.clip(np.array(starts, dtype=float), lower, upper)
    ys = np.broadcast_to(y, (len(starts), y.size))
    ranked, _, cost = _batch_lm(model, r, ys, ceiling, starts)
    reason = "no start converged"
    for i in np.argsort(np.where(np.isfinite(cost), cost, np.inf)):
        try:
            res = least_squares(
                lambda t: _predict(model, t, r, ceiling) - y, ranked[i], bounds=(lower, upper),
                jac=lambda t: _jacobian(model, t, r, ceiling), x_scale="jac", max_nfev=200,
            )  # fmt: skip
        except ValueError as exc:  # non-finite residuals at the start
            reason = f"least squares failed: {exc}"
            continue
        if res.status > 0 and np.all(np.isfinite(res.x)):
            return res.x, 2.0 * res.cost, ""
        reason = f"least squares did not converge: {res.message}"
    return None, math.nan, reason


def _report(model: str, theta: np.ndarray) -> dict[str, float]:
    """Internal parameters -> the reported ones (floor: frac -> bw_inf = frac * bw_max)."""
    values = [theta[0], theta[0] * theta[1], theta[2]] if model == "floor" else theta
    return {name: float(v) for name, v in zip(PARAMS[model], values, strict=True)}


def _aicc(rss: float, n: int, p: int, scale: float) -> float:
    """AICc with K = p + 1; infinite where n <= K + 1 (undefined). Residuals below a 1e-9
    relative resolution count as zero, so exact fits tie instead of reaching -inf."""
    k = p + 1
    if n - k - 1 <= 0:
        return math.inf
    mse = max(rss / n, (1e-9 * scale) ** 2, np.finfo(float).tiny)
    return n * math.log(mse) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _failed(model: str, n: int, *notes: str) -> Fit:
    nan = math.nan
    names = PARAMS.get(model, ())
    return Fit(
        model, dict.fromkeys(names, nan), dict.fromkeys(names, (nan, nan)), nan, nan, n, (),
        False, "; ".join(notes),
    )  # fmt: skip


def fit_curve(
    rates,
    bandwidths,
    model: str,
    ceiling: float | None = None,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    bootstrap: str = "wild",
) -> Fit:
    """Fit ``model`` (a MODELS key) to (rate, BW_eff) points, repeats included; non-finite
    points are dropped (noted). Intervals: percentile, at ``confidence``, over ``n_boot``
    bootstrap refits (``bootstrap``: see ``_resample``); ``n_boot=0`` leaves them NaN.
    Raises ValueError only for caller errors (unknown model or bootstrap, rates and
    bandwidths of different lengths), never for the data."""
    if model not in MODELS or bootstrap not in BOOTSTRAPS:
        raise ValueError(f"unknown model {model!r} or bootstrap {bootstrap!r}")
    r = np.asarray(rates, dtype=float).ravel()
    y = np.asarray(bandwidths, dtype=float).ravel()
    if r.shape != y.shape:
        raise ValueError(f"{r.size} rates but {y.size} bandwidths")
    keep = np.isfinite(r) & np.isfinite(y)
    r, y = r[keep], y[keep]
    n, p = int(r.size), len(PARAMS[model])
    notes = [f"dropped {int((~keep).sum())} non-finite points"] if (~keep).any() else []
    if model == "fair_share" and (ceiling is None or not math.isfinite(ceiling) or ceiling <= 0):
        return _failed(model, n, *notes, f"fair_share needs a positive ceiling C, got {ceiling!r}")
    c = float(ceiling) if ceiling is not None else math.nan
    if n < p + 1:
        return _failed(model, n, *notes, f"too few points: {n} < {p + 1} (parameters + 1)")
    theta, rss, reason = _solve(model, r, y, c, _starts(model, r, y, c))
    if theta is None:
        return _failed(model, n, *notes, reason)
    fitted = _predict(model, theta, r, c)
    aic = _aicc(rss, n, p, float(np.abs(y).max()))
    if not math.isfinite(aic):
        notes.append(f"{CRITERION} undefined for n = {n} with {p} parameters")
    params = _report(model, theta)
    intervals = dict.fromkeys(params, (math.nan, math.nan))
    if n_boot > 0:
        samples = _resample(model, r, y, fitted, c, theta, n_boot, seed, bootstrap)
        est, ok, _ = _batch_lm(model, r, samples, c, theta)
        for i in np.flatnonzero(~ok):  # the few the batch leaves unconverged
            one, _, _ = _solve(model, r, samples[i], c, [theta])
            if one is not None:
                est[i], ok[i] = one, True
        if ok.sum() < 0.9 * n_boot:
            notes.append(f"bootstrap: {int(ok.sum())} of {n_boot} refits converged")
        if ok.any():
            table = np.array([list(_report(model, t).values()) for t in est[ok]])
            tail = 50 * (1 - confidence)
            lo, hi = np.percentile(table, [tail, 100 - tail], axis=0)
            intervals = {nm: (float(a), float(b)) for nm, a, b in zip(params, lo, hi, strict=True)}
    if model == "fair_share":
        params, intervals = _bound_unseen_knee(params, intervals, r, c, notes)
    return Fit(
        model, params, intervals, float(rss), float(aic), n, tuple(map(float, y - fitted)), True,
        "; ".join(notes),
    )  # fmt: skip


def _bound_unseen_knee(params, intervals, r, ceiling, notes):
    """fair_share's beta when no point lies past the knee (BW_max + beta * rate <= C at every
    measured rate): the curve is flat over the data for every beta up to (C - BW_max) /
    max rate, so the data bound beta from above and say nothing else. Reported as 0 (the
    flat curve) with the interval [0, that bound] and a note, never as the arbitrary point
    where the solver stopped, whose bootstrap interval would have zero width."""
    bw_max, beta = params["bw_max"], params["beta"]
    top = float(r.max()) if r.size else 0.0
    if top <= 0 or bw_max + beta * top > ceiling:
        return params, intervals
    bound = max(0.0, (ceiling - bw_max) / top)
    notes.append(
        f"knee beyond the measured rates: the data bound beta only from above (<= {bound:.4g})"
    )
    return {**params, "beta": 0.0}, {**intervals, "beta": (0.0, bound)}


def _resample(model, r, y, fitted, c, theta, n_boot, seed, scheme) -> np.ndarray:
    """``n_boot`` bootstrap curves (n_boot, n): the fitted curve plus resampled residuals.

    ``residual``: the classical scheme, centred residuals drawn with replacement and scaled
    by sqrt(n / (n - p)); it assumes every point has the same error. ``wild`` (the default):
    each residual stays at its point, scaled by 1 / sqrt(1 - leverage) and flipped in sign at
    random (Rademacher). Bandwidth noise grows with the level, so pooling moves the large
    rate-0 residuals onto the small high-rate values and back, and the BW_max interval comes
    out too narrow (2% multiplicative noise, 8 rates x 3: a nominal 95% interval covered the
    exponential's BW_max in 57 of 100 seeds by residual, 77 by wild). Both undercover at this
    n: a percentile interval is a large-sample one and BW_max rests on the few rate-0 points.
    """
    n, p = r.size, theta.size
    rng = np.random.default_rng(seed)
    resid = y - fitted
    if scheme == "residual":
        centred = (resid - resid.mean()) * math.sqrt(n / (n - p))
        return fitted + centred[rng.integers(0, n, size=(n_boot, n))]
    jac = _jacobian(model, theta, r, c)
    lev = np.einsum("np,pq,nq->n", jac, np.linalg.pinv(jac.T @ jac), jac)
    scaled = resid / np.sqrt(np.clip(1.0 - lev, 1e-3, None))
    return fitted + scaled * rng.choice([-1.0, 1.0], size=(n_boot, n))


def _batch_lm(model, r, ys, c, theta0, iters: int = 100) -> tuple[np.ndarray, ...]:
    """Levenberg-Marquardt on a batch of curves ``ys`` (B, n) at once, bounds by an active
    set (a parameter at a bound whose gradient points out stays there) and projection.
    ``theta0``: one start (p,) or one per curve (B, p). Returns theta (B, p), converged (B,)
    and RSS (B,); a curve has converged when an accepted step lowers its RSS by under 1e-12
    relative, or no step, however damped, lowers it."""
    lower, upper = (np.asarray(b, dtype=float) for b in _bounds(model))
    th = np.broadcast_to(theta0, (len(ys), theta0.shape[-1])).copy()
    res = _predict(model, th, r, c) - ys
    cost = (res**2).sum(-1)
    lam, done, eye = np.full(len(ys), 1e-3), np.zeros(len(ys), dtype=bool), np.eye(th.shape[1])
    for _ in range(iters):
        jac = _jacobian(model, th, r, c)
        grad = np.einsum("bnp,bn->bp", jac, res)
        fixed = ((th <= lower) & (grad > 0)) | ((th >= upper) & (grad < 0))
        jac = np.where(fixed[:, None, :], 0.0, jac)
        grad = np.where(fixed, 0.0, grad)
        jtj = np.einsum("bnp,bnq->bpq", jac, jac)
        diag = np.diagonal(jtj, axis1=1, axis2=2)
        damp = lam[:, None] * (diag + 1e-12 * diag.max(-1, keepdims=True) + 1e-300)
        lhs = jtj + eye * (damp + fixed)[:, :, None]
        step = np.linalg.solve(lhs, -grad[..., None])[..., 0]
        new = np.clip(th + step, lower, upper)
        new_res = _predict(model, new, r, c) - ys
        new_cost = (new_res**2).sum(-1)
        better = (new_cost < cost) & ~done
        done |= (better & (cost - new_cost <= 1e-12 * cost)) | (lam > 1e12)
        th = np.where(better[:, None], new, th)
        res = np.where(better[:, None], new_res, res)
        cost = np.where(better, new_cost, cost)
        lam = np.where(better, lam / 3, lam * 4)
        if done.all():
            break
    return th, done & np.isfinite(th).all(-1) & np.isfinite(cost), cost


def compare(rates, bandwidths, ceiling: float | None = None, **options) -> list[Fit]:
    """Fit every applicable model (fair_share only with a ceiling), sorted by AICc, converged
    first; ``options`` (n_boot, seed, confidence, bootstrap) go to ``fit_curve``. Each fit
    gets ``delta_aic`` from the best, and fits within DISTINGUISHABLE of each other a note
    saying they are not distinguishable (the best's names its rivals)."""
    names = [m for m in MODELS if m != "fair_share" or ceiling is not None]
    fits = [fit_curve(rates, bandwidths, m, ceiling, **options) for m in names]
    fits.sort(key=lambda f: (not f.converged, f.aic if math.isfinite(f.aic) else math.inf))
    best = preferred(fits)
    if best is None:
        return fits
    out = [replace(f, delta_aic=f.aic - best.aic if f.converged else math.nan) for f in fits]
    ties = [f"{f.model} (+{f.delta_aic:.2f})" for f in out[1:] if f.delta_aic < DISTINGUISHABLE]
    for i, f in enumerate(out):
        if (i == 0 and ties) or (i > 0 and f.delta_aic < DISTINGUISHABLE):
            rivals = ", ".join(ties) if i == 0 else best.model
            text = f"not distinguishable from {rivals}: delta {CRITERION} < {DISTINGUISHABLE:g}"
            out[i] = replace(f, note="; ".join(x for x in (f.note, text) if x))
    return out


def preferred(fits: list[Fit]) -> Fit | None:
    """The converged fit with the lowest (finite) AICc, or None. An AICc difference under 2
    (DISTINGUISHABLE) means the data do not distinguish the two models: the preferred one
    leads but does not win; ``distinguishable`` says whether it wins."""
    ok = [f for f in fits if f.converged and math.isfinite(f.aic)]
    return min(ok, key=lambda f: f.aic) if ok else None


def distinguishable(fits: list[Fit]) -> bool:
    """True when the preferred fit beats every other converged fit by at least
    DISTINGUISHABLE in AICc (False when nothing converged)."""
    best = preferred(fits)
    if best is None:
        return False
    others = [f.aic for f in fits if f is not best and f.converged and math.isfinite(f.aic)]
    return all(a - best.aic >= DISTINGUISHABLE for a in others)
