"""The pure parts of `logad retrain`: which days count, which train and which is held out,
each model's figures on the held-out day, and the promotion gate.

A day counts only with at least `min_sessions` sessions; the newest day that counts is held
out, and it must hold at least `min_holdout_windows` normal windows. Too little data is a
`Skip`, not an error: nothing is trained.

On the held-out day, *normal* windows are those labelled 0 when the files carry labels,
else those the stream did not alert on. The gate compares the candidate with the current
model on four criteria, every one evaluated (none stops the others):

- `false_alert_rate`: the share of normal windows over the model's own threshold. The
  current model's rate is an estimate from n windows, so the candidate passes when its rate
  is at most the upper bound of a one-sided Wilson score interval for the current one's at
  `confidence` (plus an optional absolute `margin`): a difference within the noise of n
  windows is no evidence that the candidate is worse. Without labels the "normal" windows
  are those the current model did not alert on, so its own rate reads about 0 by
  construction and its false alerts are invisible. An unlabelled candidate over the limit
  therefore still passes when it alerts on no more held-out windows than the current one:
  the windows it newly flags are no more than the stream's alerts it quiets, less those
  operators confirmed anomalous (how many it may quiet is `alerted_kept`'s to bound).
- `alerted_kept`: of the *watched* windows (those the current model alerted on during the
  training days and the held-out day, plus sessions operators confirmed anomalous, less
  those they acknowledged as normal), the share the model scores over its own threshold;
  the candidate passes when it keeps at least `kept_fraction` of the share the current
  model keeps on the same windows.
- `val_loss`: the mean event NLL on the held-out day's normal windows (each event masked
  once, as the scorer computes it); the candidate passes when it is at most the current
  one's times (1 + `loss_tolerance`).
- `f1`, with labels that include an anomalous window: the candidate's F1 is no lower.

A criterion that cannot be compared (no labels, no watched window, both F1 0) has
`passed` None and a note saying why; it neither passes nor fails the candidate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from statistics import NormalDist

from schemas.feedback import Feedback, Verdict

# ---- days


@dataclass(frozen=True)
class DayCount:
    """What one complete day holds, counted before anything is trained."""

    day: date
    path: Path
    sessions: int
    """Distinct session ids."""
    windows: int
    normal_windows: int
    """Labelled 0 when the day carries labels, else not alerted by the stream."""


@dataclass(frozen=True)
class Minimums:
    sessions: int
    """Sessions a day needs to count, for training or as the held-out day."""
    holdout_windows: int
    """Normal windows the held-out day needs."""


@dataclass(frozen=True)
class DayPlan:
    train_days: tuple[date, ...]
    holdout: date
    train_files: tuple[Path, ...]
    holdout_file: Path
    left_out: tuple[date, ...] = ()
    """Days looked at that were too small to count."""


@dataclass(frozen=True)
class Skip:
    """Too little data to train: why, in one line."""

    reason: str


def _too_small(days: Iterable[DayCount]) -> str:
    return ", ".join(f"{d.day.isoformat()} ({d.sessions})" for d in days)


def plan_days(counts: Sequence[DayCount], last_days: int, minimums: Minimums) -> DayPlan | Skip:
    """The newest day that counts is held out; the `last_days` days that count before it
    train. Days with fewer than `minimums.sessions` sessions are left out."""
    days = sorted(counts, key=lambda c: c.day)
    counting = [d for d in days if d.sessions >= minimums.sessions]
    small = [d for d in days if d.sessions < minimums.sessions]
    need = f"a day counts with at least {minimums.sessions} sessions"
    if len(counting) < 2:
        found = f"{len(counting)} complete day(s) count"
        if small:
            found += f"; too small: {_too_small(small)}"
        return Skip(
            f"not enough data: retrain needs two days (training and held out), {need}; {found}"
        )
    holdout = counting[-1]
    if holdout.normal_windows < minimums.holdout_windows:
        return Skip(
            f"not enough data: the held-out day {holdout.day.isoformat()} has "
            f"{holdout.normal_windows} normal windows, fewer than {minimums.holdout_windows}"
        )
    train = counting[-1 - last_days : -1]
    first = train[0].day
    left_out = tuple(d.day for d in small if d.day >= first)
    return DayPlan(
        tuple(d.day for d in train),
        holdout.day,
        tuple(d.path for d in train),
        holdout.path,
        left_out,
    )


# ---- operator feedback


def verdict_of(
    session_id: str, times: Sequence[int | None], items: Sequence[Feedback]
) -> Verdict | None:
    """An operator's verdict on a session: the last one naming it, else the last span
    covering one of its times, else None."""
    named = [fb.verdict for fb in items if fb.session_id == session_id]
    if named:
        return named[-1]
    spans = [
        fb.verdict
        for fb in items
        if fb.session_id is None and any(fb.covers(session_id, t) for t in times)
    ]
    return spans[-1] if spans else None


def is_watched(alerted: bool | None, verdict: Verdict | None) -> bool:
    """Whether a window is one the candidate must still flag: the stream alerted on it or
    an operator confirmed it anomalous, and no operator acknowledged it as normal."""
    if verdict is not None:
        return verdict == "anomalous"
    return alerted is True


# ---- figures


@dataclass(frozen=True)
class Figures:
    """One model's results on the held-out day (and on the watched windows)."""

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
    val_loss: float | None = None
    """Mean event NLL over the normal windows (None: not measured)."""
    watched: int = 0
    """Windows alerted on or confirmed anomalous."""
    kept: int = 0
    """Of the watched windows, those over this model's threshold."""
    quieted: int = 0
    """Held-out windows the stream alerted on that this model does not flag, less those
    an operator confirmed anomalous."""


def figures(
    version: str,
    threshold: float,
    scores: Sequence[float],
    labels: Sequence[int | None],
    alerted: Sequence[bool | None],
    *,
    nll: Sequence[tuple[float, int]] | None = None,
    watched_scores: Sequence[float] = (),
    confirmed: Sequence[bool] = (),
) -> Figures:
    """A model's figures from its window scores (flag when score > threshold); `nll` per
    window: the sum of its events' NLLs and their count. `confirmed` per window (none:
    all False): an operator confirmed it anomalous, so unlabelled it is not normal, and a
    model that quiets it earns no trade (`false_alert_criterion`)."""
    if not len(scores) == len(labels) == len(alerted):
        raise ValueError("scores, labels and alerted differ in length")
    if nll is not None and len(nll) != len(scores):
        raise ValueError("nll and scores differ in length")
    if confirmed and len(confirmed) != len(scores):
        raise ValueError("confirmed and scores differ in length")
    sure = confirmed or [False] * len(scores)
    flagged = [s > threshold for s in scores]
    labelled = any(lb is not None for lb in labels)
    normal = (
        [lb == 0 for lb in labels]
        if labelled
        else [not a and not c for a, c in zip(alerted, sure, strict=True)]
    )
    n_normal = sum(normal)
    fa = sum(f and n for f, n in zip(flagged, normal, strict=True))
    far = fa / n_normal if n_normal else 0.0
    loss = None
    if nll is not None:
        total = sum(s for (s, _), n in zip(nll, normal, strict=True) if n)
        events = sum(c for (_, c), n in zip(nll, normal, strict=True) if n)
        loss = total / events if events else None
    found = Figures(
        version,
        threshold,
        len(scores),
        n_normal,
        fa,
        far,
        labelled,
        val_loss=loss,
        watched=len(watched_scores),
        kept=sum(s > threshold for s in watched_scores),
        quieted=sum(
            a is True and not f and not c for a, f, c in zip(alerted, flagged, sure, strict=True)
        ),
    )
    pos = [lb == 1 for lb in labels]
    n_pos = sum(pos)
    if not n_pos:  # no labels, or no anomaly labelled: an F1 of 0 would say nothing
        return found
    tp = sum(f and p for f, p in zip(flagged, pos, strict=True))
    precision = tp / (tp + fa) if tp + fa else 0.0
    recall = tp / n_pos
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return replace(found, precision=precision, recall=recall, f1=f1)


# ---- the gate


def wilson_upper(k: int, n: int, confidence: float) -> float:
    """The upper bound of the one-sided Wilson score interval for a rate of k in n at
    `confidence` (0.5: the observed rate itself). Never below k / n; 1 when n is 0."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    if n == 0:
        return 1.0
    p = k / n
    z = NormalDist().inv_cdf(confidence)
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, max(p, (centre + half) / (1 + z2 / n)))


@dataclass(frozen=True)
class GateRules:
    confidence: float = 0.95
    margin: float = 0.0
    kept_fraction: float = 0.9
    loss_tolerance: float = 0.05


@dataclass(frozen=True)
class Criterion:
    """One test of the gate: the candidate's value, the current model's, and the limit
    that sets (None where it was not compared, with `note` saying why)."""

    name: str
    value: float | None
    current: float | None
    limit: float | None
    passed: bool | None
    note: str = ""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    criteria: tuple[Criterion, ...] = ()


def false_alert_criterion(candidate: Figures, current: Figures, rules: GateRules) -> Criterion:
    n = current.normal_windows
    upper = wilson_upper(current.false_alerts, n, rules.confidence)
    limit = upper + rules.margin
    c = candidate.false_alert_rate
    margin = f" + margin {rules.margin:g}" if rules.margin else ""
    note = (
        f"{candidate.false_alerts} of {candidate.normal_windows} normal windows vs current "
        f"{current.false_alerts} of {n}; limit: the {rules.confidence:.0%} upper bound of "
        f"current's rate{margin}"
    )
    passed = c <= limit
    if not passed and not candidate.labelled:
        extra = candidate.false_alerts - current.false_alerts
        traded = candidate.quieted - current.quieted
        if extra <= traded:
            passed = True
            note += (
                f"; over it, but it alerts on no more held-out windows: it flags {extra} more "
                f"of them and quiets {traded} more of the stream's alerts"
            )
    return Criterion("false_alert_rate", c, current.false_alert_rate, limit, passed, note)


def alerted_kept_criterion(candidate: Figures, current: Figures, rules: GateRules) -> Criterion:
    if candidate.watched != current.watched:
        raise ValueError("candidate and current were scored on different watched windows")
    n = candidate.watched
    if n == 0:
        why = "not compared: no window alerted on or confirmed anomalous"
        return Criterion("alerted_kept", None, None, None, None, why)
    c, k = candidate.kept / n, current.kept / n
    limit = rules.kept_fraction * k
    note = (
        f"{candidate.kept} of {n} watched windows over its threshold vs current "
        f"{current.kept}; limit: {rules.kept_fraction:g} x current's share"
    )
    return Criterion("alerted_kept", c, k, limit, c >= limit, note)


def val_loss_criterion(candidate: Figures, current: Figures, rules: GateRules) -> Criterion:
    c, k = candidate.val_loss, current.val_loss
    if c is None or k is None:
        return Criterion("val_loss", c, k, None, None, "not compared: no loss measured")
    limit = k * (1 + rules.loss_tolerance)
    note = f"mean event NLL on normal windows; limit: current x (1 + {rules.loss_tolerance:g})"
    return Criterion("val_loss", c, k, limit, c <= limit, note)


def f1_criterion(candidate: Figures, current: Figures) -> Criterion:
    c, k = candidate.f1, current.f1
    if c is None or k is None:
        why = "no labels" if not candidate.labelled else "no anomalous window labelled"
        return Criterion("f1", c, k, None, None, f"not compared: {why}")
    if c == 0 and k == 0:
        return Criterion("f1", c, k, None, None, "not compared: both F1 are 0")
    return Criterion("f1", c, k, k, c >= k, "limit: current's F1")


def criteria(candidate: Figures, current: Figures, rules: GateRules) -> tuple[Criterion, ...]:
    return (
        false_alert_criterion(candidate, current, rules),
        alerted_kept_criterion(candidate, current, rules),
        val_loss_criterion(candidate, current, rules),
        f1_criterion(candidate, current),
    )


_SHOWN = {
    "false_alert_rate": ("false-alert rate", "<=", 6),
    "alerted_kept": ("alerted kept", ">=", 4),
    "val_loss": ("val loss", "<=", 4),
    "f1": ("F1", ">=", 4),
}


def describe(c: Criterion) -> str:
    label, op, digits = _SHOWN[c.name]
    if c.passed is None or c.value is None or c.limit is None:
        return f"{label} {c.note}"
    verdict = "passes" if c.passed else "fails"
    return f"{label} {c.value:.{digits}f} {op} {c.limit:.{digits}f} {verdict} ({c.note})"


def decide(candidate: Figures, current: Figures | None, rules: GateRules) -> Decision:
    """The promotion gate: every criterion is evaluated, and the reason names each; the
    candidate is promoted when none fails."""
    if current is None:
        return Decision(True, "no current model: the first candidate is promoted")
    found = criteria(candidate, current, rules)
    failed = [c for c in found if c.passed is False]
    text = "; ".join(describe(c) for c in found)
    if failed:
        names = " and ".join(_SHOWN[c.name][0] for c in failed)
        return Decision(False, f"rejected ({names} worse): {text}", found)
    return Decision(True, f"promoted: {text}", found)
