"""`TailTracker`: the POT threshold kept up to date online, DSPOT-style (Siffer et al., KDD
2017, section 4). Pure: no I/O, no clock; one caller at a time.

It starts from the tail a bundle was calibrated with (`TailModel`: the initial threshold t,
the excesses over it, the windows they came from) and the budget's per-window rate q. Each
window's score then either
- exceeds the current threshold z_q: an alert; the tracker learns nothing from it (an
  anomaly must not teach it that anomalies are normal);
- exceeds t: a new peak; every `refit_every` new peaks the GPD is refitted to all the peaks
  kept and z_q recomputed;
- is below t: one more normal window (n grows, so the same peaks mean a rarer tail).

Ignoring alerts has a cost SPOT leaves open: the peaks learnt online are cut off at the
threshold of their time, so a plain fit sees a shorter tail than there is, lowers the
threshold, cuts more off, and drifts into alerting at several times the budget (measured:
2 in 1,000 became 4.4 to 5.9 in 1,000 over 60,000 exponential windows). Each peak therefore records
the cut it was seen under, and the refit maximises the truncated likelihood,
sum log f(y_i) - log F(c_i), with calibration's peaks uncut; the windows the cuts hid are
added back to the counts as estimated (1/F(c_i) per peak). As at calibration, a bounded tail
(xi < 0) must beat the exponential by a likelihood-ratio test at 95%.

Peaks are bounded: past `max_peaks` the oldest is dropped and n scaled by the same factor,
so the share of windows above t is kept while old traffic fades out.

With `depth` > 0 (DSPOT's drift), the tracker judges each score relative to the level of
the traffic: the mean of the last `depth` normal scores, minus that mean when the tracker
filled it first. A slow rise of every score moves the threshold with it; a jump does not
(it alerts, and alerts do not enter the mean).
"""

from __future__ import annotations

import math
import warnings
from collections import deque

import numpy as np
import numpy.typing as npt
import structlog

from schemas.threshold import TailModel
from trainer.tail_threshold import LR_CRITICAL, XI_ZERO, Gpd, fit_gpd

log = structlog.get_logger(__name__)

REFIT_EVERY = 100
MAX_PEAKS = 5_000

Floats = npt.NDArray[np.float64]


def _log_sf(y: Floats, xi: float, sigma: float) -> Floats:
    """log P(Y > y) under GPD(xi, sigma); -inf beyond a bounded tail's end."""
    if abs(xi) < XI_ZERO:
        return -y / sigma
    z = 1.0 + xi * y / sigma
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(z > 0, -np.log(np.where(z > 0, z, 1.0)) / xi, -np.inf)


def truncated_nll(params: Floats, y: Floats, caps: Floats, xi_fixed: float | None = None) -> float:
    """Negative log-likelihood of excesses y, each seen only below its cap (inf: uncut)."""
    xi = float(params[0]) if xi_fixed is None else xi_fixed
    sigma = math.exp(float(params[-1]))
    ls = _log_sf(y, xi, sigma)
    if not np.isfinite(ls).all():
        return math.inf
    # log f = -log sigma + (1 + xi) log S(y) for the GPD (exponential: xi = 0).
    logf = -math.log(sigma) + (1.0 + xi) * ls
    cut = np.isfinite(caps)
    logF = np.zeros_like(y)
    if cut.any():
        s = np.exp(_log_sf(caps[cut], xi, sigma))
        with np.errstate(divide="ignore"):
            logF[cut] = np.log1p(-np.minimum(s, 1.0))
    total = float((logf - logF).sum())
    return -total if math.isfinite(total) else math.inf


def fit_truncated(y: Floats, caps: Floats) -> tuple[float, float, str | None]:
    """(xi, sigma, note) maximising the truncated likelihood (module doc); the plain fit
    when nothing was cut."""
    if not np.isfinite(caps).any():
        return fit_gpd(y)
    from scipy.optimize import minimize, minimize_scalar

    xi0, sigma0, _ = fit_gpd(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = minimize(
            truncated_nll,
            np.array([xi0, math.log(sigma0)]),
            args=(y, caps),
            method="Nelder-Mead",
            options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000},
        )
        e = minimize_scalar(
            lambda ls: truncated_nll(np.array([ls]), y, caps, xi_fixed=0.0),
            bracket=(math.log(sigma0) - 1.0, math.log(sigma0) + 1.0),
        )
    exp_sigma = math.exp(float(e.x))
    if not (g.success and math.isfinite(g.fun)) or g.x[0] <= -1.0:
        return 0.0, exp_sigma, "truncated GPD fit failed: exponential tail"
    xi, sigma = float(g.x[0]), math.exp(float(g.x[1]))
    if xi < 0 and 2.0 * (float(e.fun) - float(g.fun)) < LR_CRITICAL:
        return 0.0, exp_sigma, None
    return xi, sigma, None


def _kept_share(xi: float, sigma: float, caps: Floats) -> Floats:
    """Per peak: the probability an excess falls below its cap, F(c_i) (1 when uncut)."""
    out = np.ones_like(caps)
    cut = np.isfinite(caps)
    if cut.any():
        out[cut] = 1.0 - np.exp(_log_sf(caps[cut], xi, sigma))
    return np.maximum(out, 1e-12)


class TailTracker:
    def __init__(
        self,
        tail: TailModel,
        q: float,
        *,
        refit_every: int = REFIT_EVERY,
        max_peaks: int = MAX_PEAKS,
        depth: int = 0,
    ) -> None:
        if not 0 < q < 1:
            raise ValueError(f"q must be in (0, 1), got {q}")
        if refit_every < 1 or max_peaks < 3 or depth < 0:
            raise ValueError("refit_every >= 1, max_peaks >= 3 and depth >= 0 are required")
        if not tail.peaks:
            raise ValueError("a tail model without peaks cannot be tracked")
        self.q = q
        self.t = tail.t
        self.refit_every = refit_every
        self.max_peaks = max_peaks
        self.depth = depth
        kept = tail.peaks[-max_peaks:]
        self._peaks: deque[tuple[float, float]] = deque((y, math.inf) for y in kept)
        self._n = float(tail.n) * len(kept) / len(tail.peaks)
        self._gpd = Gpd(tail.t, tail.shape, tail.scale, self._n, float(len(kept)))
        self._z = self._gpd.threshold(q)
        self._new_peaks = 0
        self._recent: deque[float] = deque(maxlen=depth or None)
        self._recent_sum = 0.0
        self._base: float | None = None
        self.refits = 0
        self.seen = 0

    @property
    def level(self) -> float:
        """How far the traffic's level moved since the tracker filled its window (0 without
        drift, or until `depth` normal scores were seen)."""
        if not self.depth or self._base is None:
            return 0.0
        return self._recent_sum / len(self._recent) - self._base

    @property
    def threshold(self) -> float:
        """The current threshold on the raw score."""
        return self._z + self.level

    @property
    def n_peaks(self) -> int:
        return len(self._peaks)

    @property
    def gpd(self) -> Gpd:
        """The current fit (its counts estimated where cuts hid windows)."""
        return self._gpd

    def observe(self, score: float) -> bool:
        """Judge one window's score against the current threshold, then learn from it
        unless it alerted. Returns whether it alerted."""
        self.seen += 1
        x = score - self.level
        if x > self._z:
            return True
        if x > self.t:
            self._add_peak(x - self.t)
        else:
            self._n += 1.0
        self._remember(score)
        return False

    def _remember(self, score: float) -> None:
        if not self.depth:
            return
        if len(self._recent) == self.depth:
            self._recent_sum -= self._recent[0]
        self._recent.append(score)
        self._recent_sum += score
        if self._base is None and len(self._recent) == self.depth:
            self._base = self._recent_sum / self.depth

    def _add_peak(self, excess: float) -> None:
        self._n += 1.0
        if len(self._peaks) == self.max_peaks:
            self._peaks.popleft()
            self._n *= (self.max_peaks - 1) / self.max_peaks
        self._peaks.append((excess, self._z - self.t))
        self._new_peaks += 1
        if self._new_peaks >= self.refit_every:
            self.refit()

    def refit(self) -> None:
        """Fit the GPD to the peaks kept and recompute the threshold."""
        arr = np.array(self._peaks, dtype=np.float64)
        y, caps = arr[:, 0], arr[:, 1]
        xi, sigma, why = fit_truncated(y, caps)
        found = float((1.0 / _kept_share(xi, sigma, caps)).sum())  # peaks with those cut off
        self._gpd = Gpd(self.t, xi, sigma, self._n + found - y.size, found)
        self._z = self._gpd.threshold(self.q)
        self._new_peaks = 0
        self.refits += 1
        log.debug(
            "tail_refit",
            peaks=int(y.size),
            peaks_estimated=round(found, 1),
            windows=round(self._gpd.n),
            shape=xi,
            scale=sigma,
            threshold=self.threshold,
            fallback=why,
        )
