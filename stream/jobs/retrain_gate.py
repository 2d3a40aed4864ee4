"""The pure parts of `logad retrain`: which days train and which is held out, each model's
figures on the held-out day, and the promotion gate.

On the held-out day, each model's *calibrated false-alert rate* is the share of normal
windows over that model's own threshold. Normal means labelled 0 when the files carry
labels, else not alerted by the stream. The candidate is promoted when its rate is at most
the current one's plus `margin` and, with labels, its F1 is no lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from schemas.errors import DataError


@dataclass(frozen=True)
class DayPlan:
    train_days: tuple[date, ...]
    holdout: date


def plan_days(complete: Sequence[date], last_days: int) -> DayPlan:
    """The newest complete day is held out; the `last_days` complete days before it train."""
    days = sorted(set(complete))
    if len(days) < 2:
        raise DataError(
            f"retrain needs at least two complete days (training and held out); found "
            f"{len(days)}: {[d.isoformat() for d in days]}"
        )
    return DayPlan(tuple(days[-1 - last_days : -1]), days[-1])


@dataclass(frozen=True)
class Figures:
    """One model's results on the held-out day."""

    version: str
    threshold: float
    windows: int
    normal_windows: int
    false_alerts: int
    false_alert_rate: float
    labelled: bool
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None


def figures(
    version: str,
    threshold: float,
    scores: Sequence[float],
    labels: Sequence[int | None],
    alerted: Sequence[bool | None],
) -> Figures:
    """A model's figures from its window scores (flag when score > threshold)."""
    if not len(scores) == len(labels) == len(alerted):
        raise ValueError("scores, labels and alerted differ in length")
    flagged = [s > threshold for s in scores]
    labelled = any(lb is not None for lb in labels)
    normal = [lb == 0 for lb in labels] if labelled else [not a for a in alerted]
    n_normal = sum(normal)
    fa = sum(f and n for f, n in zip(flagged, normal, strict=True))
    far = fa / n_normal if n_normal else 0.0
    if not labelled:
        return Figures(version, threshold, len(scores), n_normal, fa, far, False)
    pos = [lb == 1 for lb in labels]
    tp = sum(f and p for f, p in zip(flagged, pos, strict=True))
    n_pos = sum(pos)
    precision = tp / (tp + fa) if tp + fa else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Figures(version, threshold, len(scores), n_normal, fa, far, True, precision, recall, f1)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(candidate: Figures, current: Figures | None, margin: float) -> Decision:
    """The promotion gate."""
    if current is None:
        return Decision(True, "no current model: the first candidate is promoted")
    c, k = candidate.false_alert_rate, current.false_alert_rate
    rates = f"false-alert rate {c:.6f} vs current {k:.6f} + margin {margin:g}"
    if c > k + margin:
        return Decision(False, f"rejected: {rates} is worse")
    if candidate.f1 is not None and current.f1 is not None:
        f1s = f"F1 {candidate.f1:.4f} vs current {current.f1:.4f}"
        if candidate.f1 < current.f1:
            return Decision(False, f"rejected: {f1s} is worse ({rates} passes)")
        return Decision(True, f"promoted: {rates} passes and {f1s} is no worse")
    return Decision(True, f"promoted: {rates} passes (no labels, F1 not compared)")
