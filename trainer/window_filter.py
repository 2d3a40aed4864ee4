"""Which archived windows a model may train on, without labels (pure).

`logad serve --archive-dir` archives every scored window with its score and whether it
alerted; nobody labels it. Trained on whole, a candidate learns the incidents it saw as
normal. `filter_windows` drops the windows that are likely anomalous, each under the first
of these reasons that applies (the order of `REASONS`):

1. `feedback_anomalous`: an operator marked its session, or a time span it overlaps,
   anomalous (schemas/feedback.py);
2. `alerted`: the stream alerted on it;
3. `alert_dense`: it overlaps an alert-dense period: a time bucket whose share of alerted
   windows is at least `dense_factor` times its UTC day's, with at least `dense_min_alerts`
   alerts, widened by `dense_guard_minutes` either side (an incident also bends the windows
   around the ones that alerted);
4. `near_miss`: it did not alert, but its archived score is at least `exclude_near_miss`
   times the threshold it was judged at (the archive's `threshold`): an anomaly the stream
   only just missed, the likeliest to leak. Validation windows go too: one leaked anomaly
   in a small validation slice becomes the candidate's threshold;
5. `score_quantile`: its archived score is above the `exclude_score_quantile` quantile of
   every archived score in the selection. Those scores are the serving model's (whichever
   was current when the window was scored), not the model being trained.

An operator's `normal` verdict on a session (or on a span without a service) keeps its
windows whatever the rules say: an acknowledged false alarm is what the model should learn
as normal. Those windows are counted in `kept_by_feedback`.

A release that changes the event mix makes the serving model alert on normal traffic, and
rules 2-4 would keep that traffic out of training for good. So an alerted window whose alert
pattern (the archive's `pattern`: its surprising events over the threshold) holds only
*recurring* events counts as not alerted (`recurring_events`): each such event is in the
patterns of at least `adopt_min_share` of a day's windows, spread over at least
`adopt_min_hours` distinct hours of it, on at least `adopt_min_days` days. A steady new
normal looks like that; an incident (a burst) or a rare fault does not. An event in the
pattern of a window an operator marked anomalous is never adopted. Such windows are counted
in `kept_as_recurring`.

A window that trains is not necessarily one the bundle records as *known* (its event mix
and pairs, which the scoring strategy exempts: trainer/known_mixes.py): with
`known_max_score_ratio`, one whose archived score is that close to its threshold trains but
vouches for nothing (`FilterResult.vouched`). One leaked anomaly made of known steps would
otherwise exempt every later one like it for good.

A rule uses only what the records hold: a window without a score, a time or an `alerted`
field is never dropped by the rule that needs it, so session files that are not an archive
train as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from schemas.feedback import Feedback
from trainer.end_marker import END_EVENT

DAY_MS = 86_400_000
MINUTE_MS = 60_000


@dataclass(frozen=True)
class WindowFilterSettings:
    """Training-window filter

    Which windows of an archive (daily files written by `logad serve --archive-dir`) are
    left out of training, without labels; each rule uses only the fields the files carry,
    so session files without scores or alerts train whole (trainer/window_filter.py)."""

    exclude_alerted: bool = True
    """Leave out windows the stream alerted on (archive lines with "alerted": true)."""
    exclude_score_quantile: float = 0.0
    """Leave out training windows whose archived score (the serving model's, when it
    scored them) is above this quantile of the selected days' archived scores, e.g. 0.99;
    validation windows stay, so the threshold still sees the top of the normal scores
    (0: off)."""
    score_quantile_validation: bool = False
    """Apply exclude_score_quantile to the validation windows too. The threshold is then
    drawn from scores with their top cut off, so it comes out lower: more recall when
    anomalies nobody flagged would otherwise set it, more false alerts when they would not."""
    exclude_near_miss: float = 0.9
    """Leave out windows that did not alert but whose archived score is at least this
    fraction of the threshold they were judged at (archive lines with "threshold"), from
    both slices: anomalies the stream only just missed (0: off)."""
    near_miss_max_share: float = 0.01
    """At most this share of the scored windows goes as near misses, the closest to their
    threshold first: under a poor serving model most windows score near it."""
    exclude_alert_dense: bool = True
    """Leave out windows that overlap an alert-dense period: a time bucket whose share of
    alerted windows is dense_factor times its day's, with dense_min_alerts alerts or more,
    widened by dense_guard_minutes either side."""
    dense_bucket_minutes: float = 5.0
    """Length of the time buckets of exclude_alert_dense (by each window's last event)."""
    dense_factor: float = 5.0
    """A bucket is dense when its alert share is at least this times its UTC day's."""
    dense_min_alerts: int = 3
    """A bucket needs at least this many alerted windows to be dense."""
    dense_guard_minutes: float = 5.0
    """Windows this close to a dense bucket (before or after) are left out too."""
    feedback: Path | None = None
    """A feedback file (schemas/feedback.py: one JSON verdict per line): windows of
    sessions or time spans marked anomalous are left out; sessions acknowledged normal are
    kept whatever the other rules say."""
    known_max_score_ratio: float = 0.5
    """A training window whose archived score is at least this fraction of the threshold
    it was judged at still trains, but its event mix and pairs are not recorded as known
    (the exemption of the scoring strategy): an anomaly that leaked into training
    would otherwise exempt every later one like it (0: every training window is recorded)."""
    unvouched_max_share: float = 0.05
    """At most this share of the scored windows is kept from vouching under
    known_max_score_ratio, the closest to their threshold first."""
    adopt_recurring: bool = True
    """Treat an alerted window as not alerted when every event of its alert pattern
    recurs steadily (adopt_min_share, adopt_min_hours, adopt_min_days): the new normal of
    a release, which the serving model alerts on until a candidate learns it."""
    adopt_min_share: float = 0.02
    """A recurring event is in the alert patterns of at least this share of a day's
    windows..."""
    adopt_min_hours: int = 12
    """...spread over at least this many distinct UTC hours of that day..."""
    adopt_min_days: int = 2
    """...on at least this many days of the selection."""
    adopt_along_share: float = 0.9
    """An event that alerts beside recurring events at least this share of the time (in a
    day's adopt_min_share of windows or more) is adopted with them: a release's changed
    step that is surprising only next to its new events."""
    adopt_events: tuple[str, ...] = ()
    """Events to treat as recurring, decided by the caller (`logad retrain` decides over
    the training days and the held-out day); empty: decided from the selected files."""

    def __post_init__(self) -> None:
        if not 0 <= self.exclude_score_quantile < 1:
            raise ValueError(
                f"exclude_score_quantile must be in [0, 1), got {self.exclude_score_quantile}"
            )
        if not 0 <= self.exclude_near_miss <= 1:
            raise ValueError(f"exclude_near_miss must be in [0, 1], got {self.exclude_near_miss}")
        for name in ("near_miss_max_share", "unvouched_max_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.known_max_score_ratio <= 1:
            raise ValueError(
                f"known_max_score_ratio must be in [0, 1], got {self.known_max_score_ratio}"
            )
        if not self.dense_bucket_minutes > 0:
            raise ValueError(f"dense_bucket_minutes must be > 0, got {self.dense_bucket_minutes}")
        if self.dense_guard_minutes < 0:
            raise ValueError(f"dense_guard_minutes must be >= 0, got {self.dense_guard_minutes}")
        if not self.dense_factor >= 1:
            raise ValueError(f"dense_factor must be >= 1, got {self.dense_factor}")
        if self.dense_min_alerts < 1:
            raise ValueError(f"dense_min_alerts must be >= 1, got {self.dense_min_alerts}")
        if not 0 < self.adopt_min_share <= 1:
            raise ValueError(f"adopt_min_share must be in (0, 1], got {self.adopt_min_share}")
        if not 1 <= self.adopt_min_hours <= 24:
            raise ValueError(f"adopt_min_hours must be in 1..24, got {self.adopt_min_hours}")
        if not 0 < self.adopt_along_share <= 1:
            raise ValueError(f"adopt_along_share must be in (0, 1], got {self.adopt_along_share}")
        if self.adopt_min_days < 1:
            raise ValueError(f"adopt_min_days must be >= 1, got {self.adopt_min_days}")


NO_FILTER = WindowFilterSettings(
    exclude_alerted=False,
    exclude_score_quantile=0.0,
    exclude_alert_dense=False,
    exclude_near_miss=0.0,
    known_max_score_ratio=0.0,
    adopt_recurring=False,
)
"""Every window trains."""


class Reason(IntEnum):
    """Why a window is left out; the lowest applicable value wins."""

    KEPT = 0
    FEEDBACK_ANOMALOUS = 1
    ALERTED = 2
    ALERT_DENSE = 3
    NEAR_MISS = 4
    SCORE_QUANTILE = 5


REASONS: tuple[str, ...] = (
    "feedback_anomalous",
    "alerted",
    "alert_dense",
    "near_miss",
    "score_quantile",
)
"""The reasons in the order they are tried (Reason 1, 2, ...), as the counts name them."""


@dataclass(frozen=True)
class WindowRecord:
    """What the filter reads of one window (one archive line, or one piece of a line the
    trainer cut)."""

    session_id: str
    start_ts: int | None = None
    end_ts: int | None = None
    score: float | None = None
    alerted: bool | None = None
    pattern: tuple[str, ...] | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class WindowColumns:
    """The records as columns: NaN for a missing score, -1 for a missing time or alert."""

    session_ids: tuple[str, ...]
    start_ts: npt.NDArray[np.int64]
    end_ts: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]
    alerted: npt.NDArray[np.int8]
    threshold: npt.NDArray[np.float64]
    patterns: tuple[tuple[str, ...] | None, ...] = ()
    """Per window its alert pattern, or None; empty when no record has one."""

    def __len__(self) -> int:
        return len(self.session_ids)

    @classmethod
    def of(cls, records: Iterable[WindowRecord]) -> WindowColumns:
        rs = list(records)
        return cls(
            session_ids=tuple(r.session_id for r in rs),
            start_ts=np.array([_ts(r.start_ts) for r in rs], dtype=np.int64),
            end_ts=np.array([_ts(r.end_ts) for r in rs], dtype=np.int64),
            score=np.array([np.nan if r.score is None else r.score for r in rs], np.float64),
            alerted=np.array([-1 if r.alerted is None else int(r.alerted) for r in rs], np.int8),
            threshold=np.array(
                [np.nan if r.threshold is None else r.threshold for r in rs], np.float64
            ),
            patterns=tuple(r.pattern for r in rs) if any(r.pattern is not None for r in rs) else (),
        )

    def pattern(self, i: int) -> tuple[str, ...] | None:
        return self.patterns[i] if self.patterns else None

    def repeat(self, times: npt.NDArray[np.int64]) -> WindowColumns:
        """Each record `times[i]` times over (a line the trainer cuts into windows)."""
        ids = tuple(
            sid for sid, k in zip(self.session_ids, times.tolist(), strict=True) for _ in range(k)
        )
        return WindowColumns(
            ids,
            np.repeat(self.start_ts, times),
            np.repeat(self.end_ts, times),
            np.repeat(self.score, times),
            np.repeat(self.alerted, times),
            np.repeat(self.threshold, times),
            tuple(p for p, k in zip(self.patterns, times.tolist(), strict=True) for _ in range(k))
            if self.patterns
            else (),
        )

    @classmethod
    def concat(cls, parts: Sequence[WindowColumns]) -> WindowColumns:
        if not parts:
            return cls.of([])
        return cls(
            tuple(sid for p in parts for sid in p.session_ids),
            np.concatenate([p.start_ts for p in parts]),
            np.concatenate([p.end_ts for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.alerted for p in parts]),
            np.concatenate([p.threshold for p in parts]),
            tuple(p.pattern(i) for p in parts for i in range(len(p)))
            if any(p.patterns for p in parts)
            else (),
        )


def _ts(ts: int | None) -> int:
    return -1 if ts is None else ts


@dataclass(frozen=True)
class FilterResult:
    reasons: npt.NDArray[np.int8]
    """Per window, its `Reason` (0: kept)."""
    kept_by_feedback: int
    """Windows an operator acknowledged normal that a rule would have left out."""
    score_cut: float | None = None
    """The score above which windows were left out (None: the rule was off or had no
    scores)."""
    dense_spans: tuple[tuple[int, int], ...] = ()
    """The alert-dense periods, guard included: [start ms, end ms), merged."""
    kept_as_recurring: int = 0
    """Alerted windows kept because their patterns hold only recurring events."""
    recurring: tuple[str, ...] = ()
    """The events treated as recurring, sorted."""
    vouched: npt.NDArray[np.bool_] | None = None
    """Per window, whether it may be recorded as known (None: every one)."""

    @property
    def keep(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.reasons == Reason.KEPT, dtype=np.bool_)

    def counts(self) -> dict[str, int]:
        """Windows left out per reason, `kept_by_feedback`, and `windows` (all of them):
        the reasons' counts sum to `windows` minus the windows kept."""
        n = np.bincount(self.reasons, minlength=len(Reason))
        out = {name: int(n[i + 1]) for i, name in enumerate(REASONS)}
        out["kept_by_feedback"] = self.kept_by_feedback
        out["kept_as_recurring"] = self.kept_as_recurring
        out["not_vouched"] = 0 if self.vouched is None else int((self.keep & ~self.vouched).sum())
        out["windows"] = len(self.reasons)
        return out


def filter_windows(
    w: WindowColumns,
    s: WindowFilterSettings,
    feedback: Sequence[Feedback] = (),
    held_out: npt.NDArray[np.bool_] | None = None,
) -> FilterResult:
    """Each window's reason to be left out of training (see the module doc). `held_out`
    marks the validation windows the threshold is calibrated on: the score quantile leaves
    them in (unless `score_quantile_validation`), since cutting the top of the scores there
    lowers the threshold."""
    n = len(w)
    reasons = np.zeros(n, dtype=np.int8)
    verdict = _feedback_verdicts(w, feedback)
    recurring: frozenset[str] = frozenset()
    if s.adopt_recurring:
        recurring = frozenset(s.adopt_events) or recurring_events(w, s, verdict == _ANOMALOUS)
    adopted = _adopted(w, recurring)
    if adopted.any():  # they count as not alerted, for the dense periods too
        w = replace(w, alerted=np.where(adopted, np.int8(0), w.alerted))
    dense_spans: tuple[tuple[int, int], ...] = ()
    score_cut: float | None = None
    rules: list[tuple[Reason, npt.NDArray[np.bool_]]] = [
        (Reason.FEEDBACK_ANOMALOUS, verdict == _ANOMALOUS)
    ]
    if s.exclude_alerted:
        rules.append((Reason.ALERTED, w.alerted == 1))
    if s.exclude_alert_dense:
        dense_spans = alert_dense_spans(w, s)
        rules.append((Reason.ALERT_DENSE, _overlaps(w, dense_spans)))
    if s.exclude_near_miss > 0:
        # Adopted windows count as not alerted here, but they scored over the threshold.
        near = _closest(w, s.exclude_near_miss, s.near_miss_max_share, (w.alerted != 1) & ~adopted)
        rules.append((Reason.NEAR_MISS, near))
    if s.exclude_score_quantile > 0:
        scored = ~np.isnan(w.score)
        if scored.any():
            score_cut = float(np.quantile(w.score[scored], s.exclude_score_quantile))
            high = scored & (np.nan_to_num(w.score, nan=-np.inf) > score_cut) & ~adopted
            if held_out is not None and not s.score_quantile_validation:
                high &= ~held_out
            rules.append((Reason.SCORE_QUANTILE, high))
    would_drop = np.zeros(n, dtype=np.bool_)
    for reason, hit in reversed(rules):  # the first rule in order is written last, and wins
        reasons[hit] = reason
        would_drop |= hit
    normal = verdict == _NORMAL
    reasons[normal] = Reason.KEPT
    return FilterResult(
        reasons,
        int((normal & would_drop).sum()),
        score_cut,
        dense_spans,
        int((adopted & (reasons == Reason.KEPT)).sum()),
        tuple(sorted(recurring)),
        None
        if s.known_max_score_ratio <= 0
        else ~_closest(
            w, s.known_max_score_ratio, s.unvouched_max_share, (reasons == Reason.KEPT) & ~adopted
        ),
    )


def _closest(
    w: WindowColumns, ratio: float, max_share: float, among: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """The windows of `among` whose archived score is at least `ratio` times their
    threshold; at most `max_share` of the scored windows, the highest score/threshold first
    (ties broken by position)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w.threshold > 0, w.score / w.threshold, np.nan)
    r = np.nan_to_num(r, nan=-np.inf)
    hit = among & (r >= ratio)
    cap = int(max_share * int(np.isfinite(r).sum()))
    if int(hit.sum()) > cap:
        order = np.flatnonzero(hit)[np.argsort(-r[hit], kind="stable")]
        hit = np.zeros_like(hit)
        hit[order[:cap]] = True
    return hit


def recurs(pattern: tuple[str, ...] | None, recurring: frozenset[str]) -> bool:
    """Whether an alert pattern holds recurring events only, and at least one besides the
    session-end marker: a session that alerts on its end alone stopped where none stops (a
    truncated request), whatever else a release changed."""
    events = pattern or ()
    return any(e != END_EVENT for e in events) and recurring.issuperset(events)


def _adopted(w: WindowColumns, recurring: frozenset[str]) -> npt.NDArray[np.bool_]:
    """Alerted windows whose alert pattern `recurs`."""
    out = np.zeros(len(w), dtype=np.bool_)
    if not recurring or not w.patterns:
        return out
    for i in np.flatnonzero(w.alerted == 1).tolist():
        out[i] = recurs(w.patterns[i], recurring)
    return out


@dataclass(frozen=True)
class AlertedWindow:
    """What `recurring_from` reads of one alerted window."""

    end_ts: int
    pattern: tuple[str, ...]
    blocked: bool = False
    """An operator marked it anomalous: no event of its pattern recurs."""


def recurring_events(
    w: WindowColumns, s: WindowFilterSettings, blocked: npt.NDArray[np.bool_] | None = None
) -> frozenset[str]:
    """`recurring_from` over the columns' alerted windows with a pattern and a time;
    `blocked` marks the windows an operator called anomalous."""
    if not w.patterns:
        return frozenset()
    _, t = _times(w)
    days, per_day = np.unique(t[t >= 0] // DAY_MS, return_counts=True)
    alerted = [
        AlertedWindow(int(t[i]), p, bool(blocked is not None and blocked[i]))
        for i in np.flatnonzero((w.alerted == 1) & (t >= 0)).tolist()
        if (p := w.patterns[i])
    ]
    return recurring_from(alerted, dict(zip(days.tolist(), per_day.tolist(), strict=True)), s)


def recurring_from(
    alerted: Iterable[AlertedWindow], windows_per_day: dict[int, int], s: WindowFilterSettings
) -> frozenset[str]:
    """The events of alert patterns that recur steadily: on at least `adopt_min_days` days,
    each in the patterns of at least `adopt_min_share` of that day's windows
    (`windows_per_day`, by days since the epoch, UTC) and over at least `adopt_min_hours`
    distinct hours of it. No event of a blocked window's pattern qualifies."""
    hours: dict[tuple[str, int], list[int]] = {}
    never: set[str] = set()
    patterns: list[tuple[str, ...]] = []
    for a in alerted:
        if a.blocked:
            never.update(a.pattern)
            continue
        patterns.append(a.pattern)
        day, hour = divmod(a.end_ts // 3_600_000, 24)
        for e in a.pattern:
            hours.setdefault((e, day), []).append(hour)
    good_days: dict[str, int] = {}
    for (e, day), hs in hours.items():
        share = len(hs) / max(1, windows_per_day.get(day, 0))
        if share >= s.adopt_min_share and len(set(hs)) >= s.adopt_min_hours:
            good_days[e] = good_days.get(e, 0) + 1
    # The end marker recurs in every incident of cut-short sessions: it is adopted only
    # beside a release's own events (`_alongside`), never on its own.
    core = {
        e
        for e, k in good_days.items()
        if k >= s.adopt_min_days and e not in never and e != END_EVENT
    }
    return frozenset(core | _alongside(core, patterns, windows_per_day, s) - never)


def _alongside(
    core: set[str],
    patterns: Sequence[tuple[str, ...]],
    windows_per_day: dict[int, int],
    s: WindowFilterSettings,
) -> set[str]:
    """Events that alert beside `core` events at least `adopt_along_share` of the time, in
    a day's share of windows or more: a release's changed step, surprising only next to its
    new events, belongs to the release."""
    if not core or not windows_per_day:
        return set()
    alone: dict[str, int] = {}
    beside: dict[str, int] = {}
    for p in patterns:
        with_core = not core.isdisjoint(p)
        for e in p:
            if e not in core:
                alone[e] = alone.get(e, 0) + (not with_core)
                beside[e] = beside.get(e, 0) + with_core
    enough = s.adopt_min_share * sum(windows_per_day.values()) / len(windows_per_day)
    return {
        e for e, b in beside.items() if b >= enough and b >= s.adopt_along_share * (b + alone[e])
    }


_NONE, _ANOMALOUS, _NORMAL = 0, 1, 2


def _feedback_verdicts(w: WindowColumns, feedback: Sequence[Feedback]) -> npt.NDArray[np.int8]:
    """Per window, the operator's verdict: its session's last one, else the last span that
    overlaps it. A span narrowed to a service marks windows anomalous whatever their
    services (the archive does not record them), but keeps none as normal."""
    out = np.zeros(len(w), dtype=np.int8)
    code = {"anomalous": _ANOMALOUS, "normal": _NORMAL}
    for fb in feedback:
        if fb.session_id is not None or fb.start_ms is None or fb.end_ms is None:
            continue
        if fb.verdict == "normal" and fb.service is not None:
            continue
        out[_overlaps(w, ((fb.start_ms, fb.end_ms),))] = code[fb.verdict]
    by_session = {fb.session_id: fb.verdict for fb in feedback if fb.session_id is not None}
    if by_session:
        for i, sid in enumerate(w.session_ids):
            v = by_session.get(sid)
            if v is not None:
                out[i] = code[v]
    return out


def _times(w: WindowColumns) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each window's [first, last] event time, one standing in for the other when missing
    (-1 where both are)."""
    first = np.where(w.start_ts >= 0, w.start_ts, w.end_ts)
    last = np.where(w.end_ts >= 0, w.end_ts, w.start_ts)
    return first, last


def _overlaps(w: WindowColumns, spans: Sequence[tuple[int, int]]) -> npt.NDArray[np.bool_]:
    """Windows whose [first, last] event time meets one of the disjoint, sorted spans
    [start, end); a window without times meets none."""
    first, last = _times(w)
    if not spans:
        return np.zeros(len(w), dtype=np.bool_)
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    # The first span ending after the window's first event, if it starts by its last.
    i = np.searchsorted(ends, first, side="right")
    inside = i < len(spans)
    j = np.minimum(i, len(spans) - 1)
    return (first >= 0) & inside & (starts[j] <= last)


def alert_dense_spans(w: WindowColumns, s: WindowFilterSettings) -> tuple[tuple[int, int], ...]:
    """The alert-dense buckets (by each window's last event time), each widened by the
    guard, merged into disjoint sorted spans."""
    _, t = _times(w)
    known = (t >= 0) & (w.alerted >= 0)
    if not known.any():
        return ()
    t, alerted = t[known], w.alerted[known].astype(np.int64)
    bucket_ms = max(1, round(s.dense_bucket_minutes * MINUTE_MS))
    _, day_of = np.unique(t // DAY_MS, return_inverse=True)
    day_share = np.bincount(day_of, weights=alerted) / np.bincount(day_of)
    buckets, first_of, bucket_of = np.unique(t // bucket_ms, return_index=True, return_inverse=True)
    n = np.bincount(bucket_of)
    alerts = np.bincount(bucket_of, weights=alerted)
    # A bucket's day is its first window's (a bucket that straddles midnight is rare).
    base = day_share[day_of[first_of]]
    dense = (alerts >= s.dense_min_alerts) & (alerts >= s.dense_factor * base * n)
    guard = round(s.dense_guard_minutes * MINUTE_MS)
    spans = [(int(b) * bucket_ms - guard, (int(b) + 1) * bucket_ms + guard) for b in buckets[dense]]
    return tuple(_merge(spans))


def _merge(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
