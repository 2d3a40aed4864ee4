"""Thresholds from a false-alert budget, by fitting the upper tail of normal scores (pure).

An operator says "at most N false alerts per 1,000 windows" or "per hour". That is a
probability q that a normal window scores above the threshold: N / 1000, or N divided by
the windows scored per hour. A plain quantile at 1 - q cannot deliver it when q is small
next to 1 / n: with 300 calibration windows and q = 0.001 it is the maximum, whose true
exceedance is about 1 / (n + 1), three times the budget, and it moves a lot with the draw.

Peaks over threshold (SPOT, Siffer et al., KDD 2017) extrapolates instead. Above an initial
threshold t (a high empirical quantile) the excesses of any well-behaved distribution
follow a generalised Pareto distribution (Pickands-Balkema-de Haan). Fit it to the N_t
excesses, with shape xi and scale sigma; then P(X > z) = (N_t / n)(1 + xi (z - t) / sigma)^(-1/xi),
so the threshold for q is

    z_q = t + sigma / xi ((q n / N_t)^(-xi) - 1)        (xi != 0)
    z_q = t - sigma ln(q n / N_t)                        (xi -> 0: an exponential tail)

The fit is scipy's maximum likelihood (`scipy.stats.genpareto.fit`, location fixed at 0).
With a few dozen excesses the estimate of xi is biased low, and a negative one (a bounded
tail) puts z_q just above the largest score: no better than the maximum, simulations show.
So a negative xi is kept only when the data show it, by a likelihood-ratio test against the
exponential tail (xi = 0) at 95%; otherwise the exponential tail is used. That errs towards
fewer alerts than the budget, the safe side of "at most N false alerts"; with thousands of
windows a truly bounded tail passes the test and is used.
SPOT takes t at the 98th percentile; with few windows that leaves too few excesses to fit,
so t is lowered until `min_peaks` scores lie above it, but never below the
`1 - MAX_PEAK_FRACTION` quantile (the asymptotics are about the tail, not the body).

Fallbacks, recorded in the fit (`fallback`), never silent:
- the budget is looser than the tail's initial level (q n >= N_t): the empirical quantile at
  1 - q is well inside the data, and is used;
- too few windows, or too few distinct excesses, for a fit: the empirical quantile at 1 - q
  (the maximum when q is below 1 / n), as the quantile method gives;
- the GPD fit fails or returns nonsense: an exponential tail (xi = 0, sigma = mean excess,
  its maximum-likelihood estimate).

The uncertainty is a bootstrap: the whole rule re-run on `bootstrap` resamples of the
scores (with replacement, seeded), and the interval is the central `confidence` share of
the thresholds obtained.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

Method = Literal["quantile", "pot"]
BudgetUnit = Literal["per_1000_windows", "per_hour"]

INIT_QUANTILE: Final = 0.98
"""SPOT's initial threshold level."""
MIN_PEAKS: Final = 20
"""Excesses needed for a GPD fit; t is lowered to get them."""
MAX_PEAK_FRACTION: Final = 0.25
"""The lowest t may go: the 75th percentile (the fit needs a tail, not the body)."""
XI_ZERO: Final = 1e-6
"""|xi| below this is the exponential limit."""
LR_CRITICAL: Final = 3.841
"""The chi-squared (1 df) 95% point: a bounded tail (xi < 0) must beat the exponential by
this much in twice the log-likelihood to be used."""
BOOTSTRAP: Final = 200
CONFIDENCE: Final = 0.9


def rate_per_window(
    alerts: float, unit: BudgetUnit, windows_per_hour: float | None = None
) -> float:
    """The budget as a probability that one normal window alerts."""
    if not alerts > 0:
        raise ValueError(f"the false-alert budget must be > 0, got {alerts}")
    if unit == "per_1000_windows":
        q = alerts / 1000.0
    elif unit == "per_hour":
        if windows_per_hour is None or not windows_per_hour > 0:
            raise ValueError(
                f"a budget per hour needs the windows scored per hour (> 0), got {windows_per_hour}"
            )
        q = alerts / windows_per_hour
    else:
        raise ValueError(f"unknown budget unit {unit!r}")
    if not q < 1:
        raise ValueError(
            f"a budget of {alerts} {unit.replace('_', ' ')} is one alert per window or more"
        )
    return q


def windows_per_hour(n_windows: int, first_ms: int, last_ms: int) -> float:
    """The traffic's rate: windows over the span of their timestamps."""
    if last_ms <= first_ms:
        raise ValueError("the data's timestamps span no time: give windows_per_hour")
    return n_windows / ((last_ms - first_ms) / 3_600_000.0)


@dataclass(frozen=True)
class Gpd:
    """A generalised Pareto fit of the excesses over `t`."""

    t: float
    shape: float
    """xi: > 0 heavy tail, 0 exponential, < 0 bounded (by t + sigma / -xi)."""
    scale: float
    n: float
    """Scores the fit stands for (a count; an online tracker's may be an estimate)."""
    n_peaks: float
    """N_t: of them, above t."""

    def threshold(self, q: float) -> float:
        """z_q: the score a share q of the scores exceeds."""
        r = q * self.n / self.n_peaks
        if abs(self.shape) < XI_ZERO:
            return self.t - self.scale * math.log(r)
        return self.t + self.scale / self.shape * (math.pow(r, -self.shape) - 1.0)

    def exceedance(self, z: float) -> float:
        """P(X > z) the fit gives, for z >= t."""
        if z < self.t:
            raise ValueError(f"the tail model holds above t={self.t}, not at {z}")
        lead = self.n_peaks / self.n
        if abs(self.shape) < XI_ZERO:
            return lead * math.exp(-(z - self.t) / self.scale)
        base = 1.0 + self.shape * (z - self.t) / self.scale
        return 0.0 if base <= 0 else lead * math.pow(base, -1.0 / self.shape)


def fit_gpd(excesses: npt.ArrayLike) -> tuple[float, float, str | None]:
    """(xi, sigma, why it fell back or None) for positive excesses: scipy's maximum
    likelihood, with the exponential tail (xi = 0) kept unless the data show a bounded one
    (see the module doc); an exponential tail as well when the fit fails."""
    y = np.asarray(excesses, dtype=np.float64)
    mean = float(y.mean())
    try:
        from scipy.stats import genpareto  # slow to import; only here

        with warnings.catch_warnings():  # an optimizer's RuntimeWarning is handled below
            warnings.simplefilter("ignore")
            xi, _loc, sigma = genpareto.fit(y, floc=0.0)
            xi, sigma = float(xi), float(sigma)
            gain = (
                float(genpareto.logpdf(y, xi, 0.0, sigma).sum()) - exponential_loglik(y)
                if math.isfinite(xi) and math.isfinite(sigma) and sigma > 0
                else math.nan
            )
    except (ValueError, RuntimeError, FloatingPointError) as e:
        return 0.0, mean, f"GPD fit failed ({e}): exponential tail"
    # xi <= -1 is the degenerate boundary of the likelihood (all mass at the largest excess).
    if not (math.isfinite(gain) and xi > -1.0):
        return 0.0, mean, f"GPD fit unusable (xi={xi:.3g}, sigma={sigma:.3g}): exponential tail"
    if xi < 0 and 2.0 * gain < LR_CRITICAL:
        return 0.0, mean, None
    return xi, sigma, None


def exponential_loglik(y: npt.NDArray[np.float64]) -> float:
    """Log-likelihood of the excesses under their maximum-likelihood exponential."""
    m = float(y.mean())
    return -y.size * (math.log(m) + 1.0)


def initial_threshold(sorted_desc: npt.NDArray[np.float64], init_quantile: float) -> int:
    """How many of the scores (sorted, largest first) lie above t: n (1 - init_quantile),
    at least MIN_PEAKS, at most MAX_PEAK_FRACTION of n."""
    n = sorted_desc.size
    k = max(math.ceil(round(n * (1.0 - init_quantile), 9)), MIN_PEAKS)
    return min(k, math.floor(n * MAX_PEAK_FRACTION))


@dataclass(frozen=True)
class TailFit:
    """A threshold from a budget: the method that gave it, the tail model, the fallback."""

    method: Method
    """'pot' when the GPD tail gave the threshold, 'quantile' when the empirical one did."""
    threshold: float
    q: float
    """The budget as a per-window exceedance probability."""
    gpd: Gpd | None
    fallback: str | None
    """Why POT was asked for and not used (or used with an exponential tail); None if not."""
    peaks: tuple[float, ...] = ()
    """The excesses over gpd.t (for an online tracker to start from)."""


def empirical(scores: npt.NDArray[np.float64], q: float) -> float:
    """The (1 - q)-quantile, "higher": always one of the scores, so at most a share q of
    them exceed it (trainer/calibration.py)."""
    return float(np.quantile(scores, 1.0 - q, method="higher"))


def pot_threshold(scores: npt.ArrayLike, q: float, init_quantile: float = INIT_QUANTILE) -> TailFit:
    """SPOT's threshold for exceedance probability q, with the module doc's fallbacks."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError("POT needs finite scores")
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    desc = np.sort(s)[::-1]
    k = initial_threshold(desc, init_quantile)
    if k < MIN_PEAKS:
        why = f"{s.size} windows give {k} peaks, fewer than {MIN_PEAKS}: empirical quantile"
        return TailFit("quantile", empirical(s, q), q, None, why)
    t = float(desc[k])
    y = desc[:k][desc[:k] > t] - t  # ties at t are not excesses
    if np.unique(y).size < 3:
        why = f"{np.unique(y).size} distinct excesses over t={t:.4g}: empirical quantile"
        return TailFit("quantile", empirical(s, q), q, None, why)
    if q * s.size >= y.size:
        why = "the budget is looser than the tail's initial level: empirical quantile"
        return TailFit("quantile", empirical(s, q), q, None, why)
    xi, sigma, fit_note = fit_gpd(y)
    gpd = Gpd(t, xi, sigma, int(s.size), int(y.size))
    return TailFit("pot", gpd.threshold(q), q, gpd, fit_note, tuple(float(v) for v in y))


def quantile_threshold(scores: npt.ArrayLike, q: float) -> TailFit:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    return TailFit("quantile", empirical(s, q), q, None, None)


def threshold_for_budget(
    scores: npt.ArrayLike, q: float, method: Method, init_quantile: float = INIT_QUANTILE
) -> TailFit:
    if method == "pot":
        return pot_threshold(scores, q, init_quantile)
    return quantile_threshold(scores, q)


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float
    confidence: float
    resamples: int
    """Resamples that gave a threshold (a failed one is left out)."""


def bootstrap_interval(
    scores: npt.ArrayLike,
    q: float,
    method: Method,
    *,
    init_quantile: float = INIT_QUANTILE,
    resamples: int = BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval | None:
    """The central `confidence` interval of the threshold over bootstrap resamples of the
    scores (the same rule, fallbacks included); None with no resamples."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if resamples < 1 or s.size == 0:
        return None
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):  # one resample at a time: memory stays O(n)
        draw = s[rng.integers(0, s.size, size=s.size)]
        values[i] = threshold_for_budget(draw, q, method, init_quantile).threshold
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(lo), float(hi), confidence, int(values.size))
