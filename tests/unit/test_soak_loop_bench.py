"""bench/soak_loop.py's pure parts: a day's figures from scores and labels, the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from bench.soak_loop import day_figures, deadline_day, parser, verdict
from schemas.events import LogEvent
from schemas.scores import Score
from stream.devtools.simulate.traffic import SimSession


def _session(sid: str, anomaly: str | None = None, ids: tuple[str, ...] = ("a", "b")) -> SimSession:
    events = tuple(LogEvent(1_000 + i, "svc", sid, e) for i, e in enumerate(ids))
    return SimSession(sid, events, anomaly)


def _score(sid: str, index: int, anomalous: bool) -> Score:
    return Score(
        window_id=f"{sid}-{index}",
        session_id=sid,
        window_index=index,
        model_version="m",
        score=9.0 if anomalous else 1.0,
        threshold=5.0,
        anomalous=anomalous,
        n_events=2,
        first_ts=1_000,
        last_ts=1_001,
        scored_at=1_001,
    )


def test_a_session_alerts_when_any_window_does() -> None:
    sessions = [
        _session("n1"),
        _session("n2", ids=("order.checkout.start",)),  # drifted, normal
        _session("n3"),
        _session("x1", "db_timeout"),
        _session("x2", "truncated"),
    ]
    scores = [
        _score("n1", 0, False),
        _score("n2", 0, False),
        _score("n2", 1, True),  # a later window of n2 alerts: a false alert
        _score("x1", 0, True),
        _score("x2", 0, False),
    ]
    f = day_figures(scores, sessions)
    assert (f["normal"], f["anomalous"], f["caught"], f["recall"]) == (3, 2, 1, 0.5)
    assert f["false_alerts"] == 1 and f["fa_per_1000"] == pytest.approx(333.333)
    assert (f["drifted_normal"], f["drifted_false_alerts"]) == (1, 1)
    assert f["not_scored"] == 1  # n3 never scored
    assert f["recall_by_kind"] == {"db_timeout": "1/1", "truncated": "0/1"}


def _row(day: int, fa: float, caught: int = 9, anomalous: int = 10) -> dict[str, Any]:
    return {"day": day, "fa_per_1000": fa, "caught": caught, "anomalous": anomalous}


def test_the_target_is_met_when_fa_is_back_by_the_deadline_and_recall_holds() -> None:
    assert deadline_day(4, 1) == 6 and deadline_day(4, 2) == 7
    rows = [_row(1, 2.0), _row(2, 4.0), _row(3, 3.0), _row(4, 40.0), _row(5, 20.0)]
    rows += [_row(6, 4.5), _row(7, 3.0)]
    v = verdict(rows, drift_day=4, ramp_days=1, fa_tolerance=2.0, recall_tolerance=0.05)
    assert v["pre_drift_fa_per_1000"] == 3.0 and v["fa_bound_per_1000"] == 5.0
    assert (v["peak_fa_per_1000"], v["peak_day"]) == (40.0, 4)
    assert v["days_checked"] == [6, 7] and v["fa_within_bound_from_day"] == 6
    assert v["fa_recovered_by_deadline"] and v["recall_held"] and v["target_met"]


def test_a_late_recovery_or_a_recall_loss_misses_the_target() -> None:
    rows = [_row(1, 2.0), _row(2, 2.0), _row(3, 40.0), _row(4, 30.0), _row(5, 9.0), _row(6, 2.0)]
    v = verdict(rows, drift_day=3, ramp_days=1, fa_tolerance=2.0, recall_tolerance=0.05)
    assert v["days_checked"] == [5, 6] and v["fa_within_bound_from_day"] == 6
    assert not v["fa_recovered_by_deadline"] and not v["target_met"]
    rows = [_row(1, 2.0), _row(2, 2.0), _row(3, 2.0, caught=5), _row(4, 2.0, caught=6)]
    rows += [_row(5, 2.0, caught=7)]
    v = verdict(rows, drift_day=3, ramp_days=1, fa_tolerance=2.0, recall_tolerance=0.05)
    assert v["fa_recovered_by_deadline"] and v["post_drift_recall"] == 0.6
    assert not v["recall_held"] and not v["target_met"]
    # Too few days after the drift to judge: not met, and said so.
    v = verdict(rows[:4], drift_day=3, ramp_days=1, fa_tolerance=2.0, recall_tolerance=0.05)
    assert not v["measurable"] and not v["target_met"]


def test_help_names_the_sizes() -> None:
    text = parser().format_help()
    for flag in ("--days", "--drift-day", "--sessions-per-day", "--out", "--results", "--threads"):
        assert flag in text
