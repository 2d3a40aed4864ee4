"""Calibration: the alert threshold, chosen from scores of held-out normal windows.

Quantiles use numpy's "higher" method: each is an actual calibration score (the smallest
one at or above the quantile's position), never an interpolation. Since a window is
anomalous when `score > threshold`, at most a fraction 1 - q of the calibration windows
score above a threshold taken at quantile q; with "linear" that bound would not hold.

With few scores the high quantiles all land on the maximum: whenever (n - 1)(1 - q) < 1,
the q-quantile is the largest calibration score (of 200 scores, p99.9 and p99.99 are both
the max; p99 is the second largest). Such a threshold flags no calibration window at all,
and says only that new windows scoring above everything seen are anomalous; `calibrate`
logs a warning when that happens.

A strategy with known mixes scores a window whose mix training held 0, after the fact. The
threshold is calibrated on every window's score as if its mix were novel
(`calibration_scores`), so the exemption only ever removes alerts. Calibrating on the exempted
scores instead would spend the whole false-alarm budget (1 - q of all windows) on the few
windows with a novel mix: where nearly every normal window holds a known mix (HDFS), the
high quantile would rest on a handful of windows and move with the seed.

A threshold never rests on the score ceiling: a window scores at most the unseen-event NLL,
so a threshold there (the quantile of a calibration slice where some window holds an event
training never had) would let nothing alert. When the quantile lands there, never-seen events
alone spend the budget, and they alert whatever the threshold; the model's threshold is then
chosen the same way from the windows below the ceiling (`fit_threshold` on them), so that
the model still decides the rest (without it, only never-seen events would ever alert). The
calibration's `fallback` says so and how many calibration windows reach the ceiling.

A `ThresholdRule` chooses the threshold from a false-alert budget instead (per 1,000 windows,
or per hour at the traffic's windows per hour): method 'quantile' takes the empirical
quantile that budget implies, 'pot' fits the upper tail (trainer/tail_threshold.py) and
holds where the quantile is only the maximum. Either way a bootstrap interval of the
threshold is recorded, and no label is involved: only normal scores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import structlog

from schemas.bundle import Calibration
from schemas.errors import DataError
from schemas.threshold import AlertBudget, TailModel, ThresholdInterval
from trainer.tail_threshold import (
    BOOTSTRAP,
    CONFIDENCE,
    INIT_QUANTILE,
    BudgetUnit,
    Method,
    TailFit,
    bootstrap_interval,
    rate_per_window,
    threshold_for_budget,
)

if TYPE_CHECKING:
    from trainer.known_mixes import KnownMixes
    from trainer.scoring.score import WindowResult
    from trainer.scoring.strategy import ScoringStrategy

log = structlog.get_logger(__name__)

QUANTILES: dict[str, float] = {
    "p50": 0.5,
    "p90": 0.9,
    "p99": 0.99,
    "p99.9": 0.999,
    "p99.99": 0.9999,
}
METHOD: Final = "higher"


def _checked(scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise DataError("no calibration scores: need at least one held-out normal window")
    if not np.isfinite(s).all():
        raise DataError(f"{int((~np.isfinite(s)).sum())} calibration scores are not finite")
    return s


def calibration_scores(results: Iterable[WindowResult]) -> npt.NDArray[np.float64]:
    """What a threshold is calibrated on: each window's score as if its mix were novel."""
    return np.array([r.score_as_novel for r in results], dtype=np.float64)


def threshold_from_quantile(scores: npt.ArrayLike, q: float) -> float:
    """The q-quantile of the scores ("higher": always one of the scores)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return float(np.quantile(_checked(scores), q, method=METHOD))


def quantiles(scores: npt.ArrayLike) -> dict[str, float]:
    """p50, p90, p99, p99.9 and p99.99 of the scores."""
    s = _checked(scores)
    values = np.quantile(s, list(QUANTILES.values()), method=METHOD)
    return {k: float(v) for k, v in zip(QUANTILES, values, strict=True)}


@dataclass(frozen=True)
class ThresholdRule:
    """How the threshold is chosen from the calibration scores (TrainSettings' knobs)."""

    method: Method = "quantile"
    budget: float | None = None
    """False alerts per `unit`; None: 1 - threshold_quantile per window, no budget recorded."""
    unit: BudgetUnit = "per_1000_windows"
    windows_per_hour: float | None = None
    """The traffic's windows per hour, for a budget per hour."""
    init_quantile: float = INIT_QUANTILE
    bootstrap: int = BOOTSTRAP
    confidence: float = CONFIDENCE
    seed: int = 0

    def alert_budget(self) -> AlertBudget | None:
        if self.budget is None:
            return None
        try:
            q = rate_per_window(self.budget, self.unit, self.windows_per_hour)
        except ValueError as e:
            raise DataError(str(e)) from None
        wph = self.windows_per_hour if self.unit == "per_hour" else None
        return AlertBudget(self.budget, self.unit, q, wph)


def under_ceiling(threshold: float, unk_nll: float) -> float | None:
    """A threshold just below the score ceiling when `threshold` is on it, else None.

    A window's score is its largest event NLL, capped at `unk_nll` (float32, as the scorer
    computes it), and an unseen event scores exactly that. With few or unusual calibration
    windows the quantile can land on the ceiling; since a window alerts on score >
    threshold, nothing could alert then, not even a never-seen event."""
    ceiling = float(np.float32(unk_nll))
    if not math.isclose(threshold, ceiling, rel_tol=1e-6):
        return None
    return float(np.nextafter(ceiling, -math.inf))


def fit_threshold(
    scores: npt.NDArray[np.float64], threshold_quantile: float, rule: ThresholdRule
) -> TailFit:
    """The rule's threshold over `scores`: at `threshold_quantile` without a budget and
    method 'quantile', else from the budget by the rule's method."""
    budget = rule.alert_budget()
    q = budget.per_window if budget is not None else 1.0 - threshold_quantile
    if rule.method == "quantile" and budget is None:
        t = threshold_from_quantile(scores, threshold_quantile)
        return TailFit("quantile", t, q, None, None)
    return threshold_for_budget(scores, q, rule.method, rule.init_quantile)


def _warn_if_max(n: int, q: float, method: str) -> None:
    if (n - 1) * q < 1.0:
        log.warning(
            "calibration_threshold_is_max",
            n_windows=n,
            threshold_quantile=1.0 - q,
            method=method,
            windows_needed=math.ceil(round(1.0 / max(q, 1e-12), 6)) + 1,
        )


def calibrate(
    scores: npt.ArrayLike,
    threshold_quantile: float = 0.999,
    *,
    strategy: ScoringStrategy,
    known: KnownMixes | None = None,
    rule: ThresholdRule | None = None,
) -> Calibration:
    """Quantiles of the normal scores and the threshold: by default at
    `threshold_quantile`, else as `rule` says (a budget, a method). The calibration also
    records `strategy` and `known` (what the training windows held)."""
    s = _checked(scores)
    rule = rule or ThresholdRule()
    budget = rule.alert_budget()
    q = budget.per_window if budget is not None else 1.0 - threshold_quantile
    fit = fit_threshold(s, threshold_quantile, rule)
    lowered = under_ceiling(fit.threshold, strategy.unk_nll)
    fitted_on = s
    if lowered is not None:
        at = int((s > lowered).sum())
        below = s[s <= lowered]
        first = fit
        if below.size:
            fit, fitted_on = fit_threshold(below, threshold_quantile, rule), below
        why = (
            f"the threshold fell on the unseen-event score {first.threshold:.4g}, which no "
            f"window exceeds ({at} of {s.size} calibration windows reach it, and a window "
            "with an unseen event always alerts); "
            + (
                f"it is the same {fit.method} of the {below.size} windows below it instead"
                if below.size
                else "every window is there, so it is set just below"
            )
        )
        log.warning(
            "calibration_threshold_at_ceiling",
            reached=at,
            n_windows=int(s.size),
            threshold=min(fit.threshold, lowered),
        )
        fit = dataclasses.replace(
            fit,
            threshold=min(fit.threshold, lowered),
            fallback=why if fit.fallback is None else f"{fit.fallback}; {why}",
        )
    if fit.method == "quantile":
        _warn_if_max(int(fitted_on.size), q, rule.method)
    if fit.fallback:
        log.warning("calibration_fallback", method=rule.method, reason=fit.fallback)
    threshold, fallback = fit.threshold, fit.fallback
    iv = bootstrap_interval(
        fitted_on,
        q,
        rule.method,
        init_quantile=rule.init_quantile,
        resamples=rule.bootstrap,
        confidence=rule.confidence,
        seed=rule.seed,
    )
    return Calibration(
        quantiles=quantiles(s),
        threshold=threshold,
        threshold_quantile=threshold_quantile if budget is None else 1.0 - q,
        n_windows=int(s.size),
        strategy=strategy.to_dict(),
        known_mixes=tuple(sorted(known.mixes)) if known else (),
        known_pairs=tuple(sorted(known.pairs)) if known else (),
        count_ceilings=known.ceilings if known else None,
        threshold_method=fit.method,
        budget=budget,
        interval=(
            None
            if iv is None
            else ThresholdInterval(iv.lower, iv.upper, iv.confidence, iv.resamples)
        ),
        tail=(
            None
            if fit.gpd is None
            else TailModel(fit.gpd.t, fit.gpd.shape, fit.gpd.scale, int(s.size), fit.peaks)
        ),
        fallback=fallback,
    )
