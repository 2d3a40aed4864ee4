"""The pure parts of `logad retrain`: which days train and which is held out, each model's
figures on the held-out day, and the promotion gate.

On the held-out day, each model's *calibrated false-alert rate* is the share of normal
windows over that model's own threshold. Normal means labelled 0 when the files carry
labels, else not alerted by the stream. The candidate is promoted when its rate is at most
the current one's plus `margin` and, with labels, its F1 is no lower. The decision lists
every criterion with its value and whether it passed.
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
    if not n_pos:  # labels, but no anomaly: an F1 of 0 would say nothing
        return Figures(version, threshold, len(scores), n_normal, fa, far, True)
    precision = tp / (tp + fa) if tp + fa else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Figures(version, threshold, len(scores), n_normal, fa, far, True, precision, recall, f1)


@dataclass(frozen=True)
class Criterion:
    """One test of the gate: the candidate's value against the limit the current model
    sets (None where it was not compared, with `note` saying why)."""

    name: str
    candidate: float | None
    limit: float | None
    passed: bool | None
    note: str = ""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    criteria: tuple[Criterion, ...] = ()


def _criteria(candidate: Figures, current: Figures, margin: float) -> tuple[Criterion, ...]:
    c, k = candidate.false_alert_rate, current.false_alert_rate
    rate = Criterion(
        "false_alert_rate", c, k + margin, c <= k + margin, f"<= current {k:.6f} + {margin:g}"
    )
    if candidate.f1 is None or current.f1 is None:
        why = "no labels" if not candidate.labelled else "no anomalous window labelled"
        f1 = Criterion("f1", candidate.f1, current.f1, None, f"not compared: {why}")
    else:
        ok = candidate.f1 >= current.f1
        f1 = Criterion("f1", candidate.f1, current.f1, ok, ">= current")
    return rate, f1


_SHOWN = {"false_alert_rate": ("false-alert rate", 6), "f1": ("F1", 4)}


def _describe(c: Criterion) -> str:
    label, digits = _SHOWN[c.name]
    if c.passed is None or c.candidate is None or c.limit is None:
        return f"{label} {c.note}"
    verdict = "passes" if c.passed else "fails"
    return f"{label} {c.candidate:.{digits}f} {c.note} ({c.limit:.{digits}f}) {verdict}"


def decide(candidate: Figures, current: Figures | None, margin: float) -> Decision:
    """The promotion gate: every criterion is evaluated, and the reason names each."""
    if current is None:
        return Decision(True, "no current model: the first candidate is promoted")
    criteria = _criteria(candidate, current, margin)
    failed = [c for c in criteria if c.passed is False]
    text = "; ".join(_describe(c) for c in criteria)
    if failed:
        names = " and ".join(_SHOWN[c.name][0] for c in failed)
        return Decision(False, f"rejected ({names} worse): {text}", criteria)
    return Decision(True, f"promoted: {text}", criteria)
