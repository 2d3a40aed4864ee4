"""bench/quality_trainticket.py's pure parts: the three rules, what counts as a normal trace,
and the per-method figures."""

from __future__ import annotations

from bench.nezha import LogRow
from bench.quality_trainticket import (
    flagged,
    in_incident_on_service,
    method_row,
    training_sessions,
    unseen_event_flags,
    unseen_pair_flags,
)
from schemas.incidents import Incident
from trainer.incident_sessions import TimedSession

TRAIN = [("A", "B", "C"), ("A", "C")]


def test_unseen_event_flags_only_new_ids() -> None:
    test = [("A", "B"), ("C", "A"), ("A", "X"), ()]
    assert unseen_event_flags(TRAIN, test) == [False, False, True, False]


def test_unseen_pair_flags_new_orders_and_new_ids() -> None:
    # (B, C) and (A, C) were seen; (C, A) was not; a lone unseen event is flagged too.
    test = [("A", "B", "C"), ("A", "C"), ("C", "A"), ("X",), ("B",)]
    assert unseen_pair_flags(TRAIN, test) == [False, False, True, True, False]
    # Every trace the event rule flags, the pair rule flags.
    ev = unseen_event_flags(TRAIN, test)
    assert all(p for e, p in zip(ev, unseen_pair_flags(TRAIN, test), strict=True) if e)


def _row(trace: str, ts: int, service: str = "ts-a-service") -> LogRow:
    return LogRow(trace, ts, service, service + "-1", "INFO", None, "m")


def test_training_sessions_are_traces_in_time_order() -> None:
    rows = [_row("t1", 30), _row("t2", 10), _row("t1", 20)]
    sessions = training_sessions(rows, ["T3", "T1", "T2"])
    by_id = {s.session_id: s for s in sessions}
    assert by_id["t1"].events == ("T2", "T3")
    assert (by_id["t1"].start_ts, by_id["t1"].end_ts) == (20, 30)
    assert by_id["t2"].events == ("T1",) and by_id["t2"].label == 0


def _timed(sid: str, start: int, end: int, *services: str) -> TimedSession:
    return TimedSession(sid, ("T1",), start, end, frozenset(services))


INCIDENTS = [
    Incident("i1", 1_000, 2_000, "ts-a-service", "return"),
    Incident("i2", 5_000, 6_000, "ts-b-service", "cpu_contention"),
]


def test_normal_traces_and_figures() -> None:
    timed = [
        _timed("in-a", 1_100, 1_200, "ts-a-service"),  # in i1, on its service
        _timed("in-time-off-service", 1_300, 1_400, "ts-c-service"),
        _timed("outside", 3_000, 3_100, "ts-a-service"),
        _timed("outside-2", 7_000, 7_100, "ts-b-service"),
        _timed("in-b", 5_500, 5_600, "ts-b-service"),  # in i2, not flagged
    ]
    flags = [True, True, True, False, False]
    sessions = flagged(timed, flags)
    assert [s.alert_ms for s in sessions] == [1_200, 1_400, 3_100, None, None]
    assert in_incident_on_service(sessions, INCIDENTS).tolist() == [
        True,
        False,
        False,
        False,
        True,
    ]
    row = method_row("rule", sessions, INCIDENTS)
    assert (row["detected"], row["incidents"]) == (1, 2)
    assert row["by_type"]["return"]["detected"] == 1
    assert row["by_type"]["cpu_contention"]["detected"] == 0
    # Normal: the three traces not in an incident on its service; two of them alerted.
    assert (row["normal_traces"], row["false_alerts"]) == (3, 2)
    assert row["false_alerts_per_1000"] == round(1000 * 2 / 3, 2)
    assert row["traces_caught"] == 0.5
    # evaluate --incidents' stricter count: only the trace outside every incident's time.
    strict = row["outside_incident_time"]
    assert (strict["false_alerts"], strict["traces"]) == (1, 2)
    assert strict["alerts_in_incident_time_off_service"] == 1
    assert row["per_incident"][0]["time_to_first_alert_s"] == 0.2
