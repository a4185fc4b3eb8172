"""The customer-lifetime-value models, pure arithmetic: BG/NBD for how many
purchases a customer will still make, Gamma-Gamma for what they will be worth.

The only module that imports numpy and scipy (log-gamma, the Gaussian
hypergeometric function, a bounded optimiser); it is imported only when
`loyalty report clv` runs, so no other command pays for them.

Inputs are per customer, in one time unit (the report uses weeks):
- `x`: repeat purchases, i.e. the days with a purchase after the first one
  (purchases on one day are one purchase, as the models assume);
- `t_x`: the time from the first purchase to the last;
- `T`: the time from the first purchase to the end of the observation;
- `m`: the mean value of the repeat purchases (Gamma-Gamma only).

Sources (the formulas are written out in the README):
- BG/NBD: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "Counting your
  customers the easy way: an alternative to the Pareto/NBD model", Marketing
  Science 24(2), 275-284: the log-likelihood (eq. 6) and the conditional
  expectation (eq. 10); P(alive) as in the authors' note "Computing P(alive)
  using the BG/NBD model" (the denominator of eq. 10).
- Gamma-Gamma: P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "RFM and CLV:
  using iso-value curves for customer base analysis", Journal of Marketing
  Research 42(4), 415-430, and B. G. S. Hardie's note "The Gamma-Gamma model of
  monetary value" (2013): the likelihood and the conditional expected value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammaln, hyp2f1

Floats = NDArray[np.float64]
# Per-customer inputs: plain lists from the report, arrays from inside.
Column = Sequence[float] | Floats
WEEKS_PER_YEAR = 365.25 / 7

# The optimiser works on log-parameters, kept inside e^-12 .. e^12: wide
# enough for any shop (the CDNOW fit is 0.24 .. 15), narrow enough that no
# term overflows on the way to the optimum.
_LOG_BOUND = 12.0
_NEAR_ONE = 1e-6


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters: purchase rates are Gamma(r, alpha) across
    customers (alpha in the time unit), the chance of dropping out after a
    purchase is Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    converged: bool
    at_limit: bool = False  # a parameter reached e^12 or e^-12


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters: a customer's purchase values are
    Gamma(p, nu), and nu is Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int
    converged: bool
    at_limit: bool = False  # a parameter reached e^12 or e^-12

    @property
    def mean(self) -> float:
        """The expected value of a purchase of a customer we know nothing about
        (p gamma / (q - 1); infinite mean when q <= 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


def _arrays(*columns: Column) -> list[Floats]:
    return [np.asarray(c, dtype=np.float64) for c in columns]


class _Counts:
    """Repeat purchases as distinct values and where each customer's is among
    them: the log-gamma and digamma terms that depend on x alone are computed
    once per value (a shop has a few dozen), not once per customer."""

    def __init__(self, x: Floats) -> None:
        levels, where = np.unique(x, return_inverse=True)
        self.levels: Floats = levels
        self.where: NDArray[np.intp] = where.reshape(-1)

    def of(self, f: Callable[[Floats], Floats]) -> Floats:
        values: Floats = f(self.levels)[self.where]
        return values


def _bgnbd_ll(
    params: Floats, x: Floats, t_x: Floats, T: Floats, counts: _Counts | None = None
) -> tuple[Floats, Floats]:
    """Each customer's BG/NBD log-likelihood (Fader, Hardie and Lee 2005, eq. 6),
    and its derivatives by r, alpha, a and b (one row each)."""
    r, alpha, a, b = params
    by_x = counts or _Counts(x)
    a1 = by_x.of(lambda k: gammaln(r + k) - gammaln(r)) + r * np.log(alpha)
    a2 = by_x.of(lambda k: gammaln(a + b) + gammaln(b + k) - gammaln(b) - gammaln(a + b + k))
    log_t = np.log(alpha + T)
    log_tx = np.log(alpha + t_x)
    a3 = -(r + x) * log_t
    repeat = x > 0
    # The second term exists only for repeat buyers (delta_{x>0}); elsewhere it is
    # -inf, whose exp is 0. b + x - 1 > 0 whenever x >= 1.
    inverse = np.zeros_like(x)
    inverse[repeat] = 1 / (b + x[repeat] - 1)
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = np.log(a) + np.log(inverse[repeat]) - (r + x[repeat]) * log_tx[repeat]
    both = np.logaddexp(a3, a4)
    # The share of each term in exp(a3) + exp(a4), for the derivatives.
    w3 = np.exp(a3 - both)
    w4 = np.exp(a4 - both)
    common = by_x.of(lambda k: digamma(a + b) - digamma(a + b + k))
    grad = np.stack(
        (
            by_x.of(lambda k: digamma(r + k) - digamma(r))
            + np.log(alpha)
            - w3 * log_t
            - w4 * log_tx,
            r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x)),
            common + w4 / a,
            common + by_x.of(lambda k: digamma(b + k) - digamma(b)) - w4 * inverse,
        )
    )
    return a1 + a2 + both, grad


def _distinct(*columns: Floats) -> tuple[list[Floats], Floats, NDArray[np.intp]]:
    """The distinct rows of the columns, how many times each occurs, and where
    each row is among them: identical customers are computed once."""
    table = np.column_stack(columns)
    rows, inverse, counts = np.unique(table, axis=0, return_inverse=True, return_counts=True)
    columns_out = [rows[:, i] for i in range(rows.shape[1])]
    return columns_out, counts.astype(np.float64), inverse.reshape(-1)


def _unique(*columns: Floats) -> tuple[list[Floats], Floats]:
    distinct, counts, _ = _distinct(*columns)
    return distinct, counts


def _fit(
    likelihood: Callable[[Floats], tuple[Floats, Floats]], weight: Floats, start: Floats
) -> tuple[Floats, float, bool, bool]:
    """Maximise the weighted log-likelihood over log-parameters with L-BFGS-B;
    (parameters, maximum, converged, a parameter at the optimiser's limit).
    `likelihood` gives each customer's log-likelihood and its derivatives by the
    parameters."""
    total = float(weight.sum())

    def objective(log_params: Floats) -> tuple[float, Floats]:
        # Scaled by the number of customers, so the tolerances mean the same
        # thing for 50 customers and for 50,000.
        params = np.exp(log_params)
        ll, grad = likelihood(params)
        # Sums of products, not np.dot: a BLAS call wakes OpenBLAS's threads,
        # which then contend with everything else on a small, busy machine
        # (measured: the fit took ten times as long).
        value = -float((weight * ll).sum()) / total
        slope: Floats = -(grad * weight).sum(axis=1) * params / total  # d/d log p = p d/dp
        return value, slope

    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    result = minimize(
        objective,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 2000},
    )
    # At a bound the line search can end "abnormally" on a flat likelihood:
    # that is an optimum all the same when the gradient only pushes outwards.
    _, slope = objective(result.x)
    upper = result.x >= _LOG_BOUND - 1e-9
    lower = result.x <= -_LOG_BOUND + 1e-9
    inwards = np.where(upper, np.maximum(slope, 0), np.where(lower, np.minimum(slope, 0), slope))
    converged = bool(result.success) or float(np.abs(inwards).max()) < 1e-5
    return np.exp(result.x), -float(result.fun) * total, converged, bool((upper | lower).any())


def fit_bgnbd(x: Column, t_x: Column, T: Column) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for these customers (at least one)."""
    xs, txs, Ts = _arrays(x, t_x, T)
    (ux, utx, uT), weight = _unique(xs, txs, Ts)
    start = np.array([1.0, max(float(Ts.mean()), 1e-3), 1.0, 1.0])
    counts = _Counts(ux)
    params, best, ok, limit = _fit(lambda p: _bgnbd_ll(p, ux, utx, uT, counts), weight, start)
    r, alpha, a, b = (float(v) for v in params)
    return BgNbd(r, alpha, a, b, best, len(xs), ok, limit)


def p_alive(model: BgNbd, x: Column, t_x: Column, T: Column) -> Floats:
    """The probability that each customer has not dropped out by T."""
    xs, txs, Ts = _arrays(x, t_x, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    repeat = xs > 0
    # a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x), in logs (it can be huge)
    log_odds = np.full_like(xs, -np.inf)
    xr = xs[repeat]
    log_odds[repeat] = (
        np.log(a)
        - np.log(b + xr - 1)
        + (r + xr) * (np.log(alpha + Ts[repeat]) - np.log(alpha + txs[repeat]))
    )
    result: Floats = np.exp(-np.logaddexp(0.0, log_odds))  # 1 / (1 + odds)
    return result


def expected_purchases(model: BgNbd, x: Column, t_x: Column, T: Column, t: float) -> Floats:
    """E[Y(t) | x, t_x, T]: each customer's expected purchases in the next `t`
    (Fader, Hardie and Lee 2005, eq. 10)."""
    xs, _, Ts = _arrays(x, t_x, T)
    if t <= 0:
        return np.zeros_like(xs)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if abs(a - 1) < _NEAR_ONE:
        # At a = 1 the formula is 0/0; its limit is within _NEAR_ONE of this.
        a = 1 + _NEAR_ONE
    if abs(a + b - 1) < _NEAR_ONE:
        # At a + b = 1 a customer with no repeat purchase (x = 0) meets 2F1's pole
        # (c = 0) times a zero lead: 0 x inf. The limit is within _NEAR_ONE of this.
        b = 1 - a + _NEAR_ONE
    z = t / (alpha + Ts + t)
    growth = hyp2f1(r + xs, b + xs, a + b + xs - 1, z)
    shrink = np.exp((r + xs) * (np.log(alpha + Ts) - np.log(alpha + Ts + t)))
    lead = (a + b + xs - 1) / (a - 1)
    result: Floats = lead * (1 - shrink * growth) * p_alive(model, x, t_x, T)
    # The terms above cancel to a small difference; never let rounding go below 0.
    return np.maximum(result, 0.0)


def cumulative_expected(
    model: BgNbd, x: Column, t_x: Column, T: Column, ts: Sequence[float]
) -> list[float]:
    """The expected purchases of all these customers together in the next t,
    for each t of `ts`."""
    xs, txs, Ts = _arrays(x, t_x, T)
    (ux, utx, uT), weight = _unique(xs, txs, Ts)
    return [float((weight * expected_purchases(model, ux, utx, uT, t)).sum()) for t in ts]


def horizon_purchases(
    model: BgNbd,
    x: Column,
    t_x: Column,
    T: Column,
    horizon: float,
    annual_rate: float,
    steps: int,
) -> tuple[Floats, Floats]:
    """Each customer's expected purchases in the next `horizon`, as they are
    and discounted: the horizon is cut into `steps` equal parts, and the
    purchases expected in each are worth 1 / (1 + annual_rate)^(years from now
    to the middle of the part). Time in weeks; identical customers are computed
    once."""
    xs, txs, Ts = _arrays(x, t_x, T)
    (ux, utx, uT), _, where = _distinct(xs, txs, Ts)
    total = np.zeros_like(ux)
    before = np.zeros_like(ux)
    for k in range(1, steps + 1):
        upto = expected_purchases(model, ux, utx, uT, horizon * k / steps)
        middle = horizon * (k - 0.5) / steps / WEEKS_PER_YEAR
        total += (upto - before) / (1 + annual_rate) ** middle
        before = upto
    return before[where], total[where]


def _gamma_gamma_ll(params: Floats, x: Floats, m: Floats) -> tuple[Floats, Floats]:
    """Each repeat buyer's Gamma-Gamma log-likelihood of their mean value m over x
    purchases (Fader, Hardie and Lee 2005, "RFM and CLV", and Hardie 2013), and
    its derivatives by p, q and gamma."""
    p, q, gamma = params
    px = p * x
    spread = np.log(gamma + x * m)
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * spread
    )
    both = digamma(px + q)
    grad = np.stack(
        (
            x * (both - digamma(px) + np.log(m) + np.log(x) - spread),
            both - digamma(q) + np.log(gamma) - spread,
            q / gamma - (px + q) / (gamma + x * m),
        )
    )
    return ll, grad


def fit_gamma_gamma(x: Column, m: Column) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from repeat buyers (x >= 1, m > 0)."""
    xs, ms = _arrays(x, m)
    (ux, um), weight = _unique(xs, ms)
    start = np.array([1.0, 1.0, max(float(ms.mean()), 1e-3)])
    params, best, ok, limit = _fit(lambda p: _gamma_gamma_ll(p, ux, um), weight, start)
    p, q, gamma = (float(v) for v in params)
    return GammaGamma(p, q, gamma, best, len(xs), ok, limit)


def expected_value(model: GammaGamma, x: Column, m: Column) -> Floats:
    """E[M | p, q, gamma, m_x, x] = p (gamma + x m_x) / (p x + q - 1): each
    customer's expected purchase value, their own mean weighted against the
    population's (a customer with no repeat purchase gets p gamma / (q - 1))."""
    xs, ms = _arrays(x, m)
    # Refunds can take a customer's mean to 0 or below: count it as 0, so the
    # expectation stays positive (the shop-wide part alone).
    ms = np.where(xs > 0, np.maximum(ms, 0.0), 0.0)
    result: Floats = model.p * (model.gamma + xs * ms) / (model.p * xs + model.q - 1)
    return result
