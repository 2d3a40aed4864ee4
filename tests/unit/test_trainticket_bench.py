"""bench/quality_trainticket.py's pure parts: the three rules, which fault-phase traces are
trained on and which are held-out normal ones, what counts as a normal trace, and the
per-method figures."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nezha import LogRow
from bench.quality_trainticket import (
    FAULT_FREE,
    HELD_OUT,
    MESSAGE_KEY,
    NEAR,
    OFF_SERVICE,
    OUTSIDE_INCIDENTS,
    SERVICE_KEY,
    TRAIN,
    aftermath,
    block_role,
    false_alarms,
    flagged,
    in_incident_on_service,
    main,
    method_row,
    miner_text,
    outside_incidents,
    role_masks,
    since_injection_s,
    trace_levels,
    trace_roles,
    trace_services,
    trace_spans,
    training_rows,
    training_sessions,
    unseen_alarm_pair_flags,
    unseen_event_flags,
    unseen_pair_flags,
)
from schemas.incidents import Incident
from trainer.incident_sessions import TimedSession

SEEN = [("A", "B", "C"), ("A", "C")]


def test_unseen_event_flags_only_new_ids() -> None:
    test = [("A", "B"), ("C", "A"), ("A", "X"), ()]
    assert unseen_event_flags(SEEN, test) == [False, False, True, False]


def test_unseen_pair_flags_new_orders_and_new_ids() -> None:
    # (B, C) and (A, C) were seen; (C, A) was not; a lone unseen event is flagged too.
    test = [("A", "B", "C"), ("A", "C"), ("C", "A"), ("X",), ("B",)]
    assert unseen_pair_flags(SEEN, test) == [False, False, True, True, False]
    # Every trace the event rule flags, the pair rule flags.
    ev = unseen_event_flags(SEEN, test)
    assert all(p for e, p in zip(ev, unseen_pair_flags(SEEN, test), strict=True) if e)


def test_unseen_alarm_pair_flags_need_an_error_or_warn_line_in_the_new_pair() -> None:
    test = [("C", "A"), ("C", "A"), ("C", "A"), ("A", "B"), ("X",)]
    levels = [("INFO", "INFO"), ("ERROR", "INFO"), ("INFO", "WARN"), ("ERROR", "ERROR"), (None,)]
    # A new order among INFO lines passes; with an ERROR or WARN line in it, it is flagged; a
    # known pair at ERROR is not; an unseen event always is.
    assert unseen_alarm_pair_flags(SEEN, test, levels) == [False, True, True, False, True]
    with pytest.raises(ValueError):
        unseen_alarm_pair_flags(SEEN, [("A", "B")], [("INFO",)])


def _row(trace: str, ts: int, service: str = "ts-a-service", level: str | None = "INFO") -> LogRow:
    return LogRow(trace, ts, service, service + "-1", level, None, "m")


def test_miner_text_keys_templates_by_service_or_by_message_alone() -> None:
    a, b = _row("t1", 1, "ts-travel-service"), _row("t2", 2, "ts-travel2-service")
    # Two services running the same code log the same text: one template unless keyed.
    assert miner_text(a, SERVICE_KEY) != miner_text(b, SERVICE_KEY)
    assert miner_text(a, MESSAGE_KEY) == miner_text(b, MESSAGE_KEY) == "m"
    assert miner_text(a) == "ts-travel-service m"


def test_trace_levels_and_services_per_trace_in_row_order() -> None:
    rows = [_row("t1", 1, level="WARN"), _row("t2", 2, "ts-b-service"), _row("t1", 3)]
    assert trace_levels(rows) == {"t1": ["WARN", "INFO"], "t2": ["INFO"]}
    assert trace_services(rows) == {
        "t1": frozenset({"ts-a-service"}),
        "t2": frozenset({"ts-b-service"}),
    }


def test_training_sessions_are_traces_in_time_order() -> None:
    rows = [_row("t1", 30), _row("t2", 10), _row("t1", 20)]
    sessions = training_sessions(rows, ["T3", "T1", "T2"])
    by_id = {s.session_id: s for s in sessions}
    assert by_id["t1"].events == ("T2", "T3")
    assert (by_id["t1"].start_ts, by_id["t1"].end_ts) == (20, 30)
    assert by_id["t2"].events == ("T1",) and by_id["t2"].label == 0
    assert by_id["t1"].gaps_ms is None


def test_training_sessions_with_gaps_carry_their_lines_gaps() -> None:
    rows = [_row("t1", 30), _row("t2", 10), _row("t1", 20), _row("t1", 20)]
    by_id = {s.session_id: s for s in training_sessions(rows, ["T3", "T1", "T2", "T4"], True)}
    # Ties keep file order; the first line has no gap.
    assert by_id["t1"].events == ("T2", "T4", "T3")
    assert by_id["t1"].gaps_ms == (0, 0, 10)
    assert by_id["t2"].gaps_ms == (0,)


def test_a_time_aware_run_may_not_overwrite_the_committed_results() -> None:
    with pytest.raises(SystemExit, match="--results"):
        main(["--time-buckets", "16"])


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


# --- which fault-phase traces are trained on ------------------------------------------------


def test_trace_spans_first_to_last_line() -> None:
    rows = [_row("t1", 50), _row("t2", 10), _row("t1", 20), _row("t1", 40)]
    assert trace_spans(rows) == {"t1": (20, 50), "t2": (10, 10)}


def test_outside_incidents_guard_on_any_service() -> None:
    inc = [Incident("i", 10_000, 20_000, "ts-a-service")]
    # The guard widens the span on both sides; touching its edge is inside.
    assert outside_incidents((0, 4_999), inc, 5_000)
    assert not outside_incidents((0, 5_000), inc, 5_000)
    assert not outside_incidents((25_000, 26_000), inc, 5_000)
    assert outside_incidents((25_001, 26_000), inc, 5_000)
    assert not outside_incidents((12_000, 13_000), inc, 0)  # inside, whatever the service
    assert outside_incidents((25_001, 26_000), [], 5_000)


def test_block_role_alternates_and_rejects_empty_blocks() -> None:
    assert [block_role(t, 600) for t in (0, 599, 600, 1_199, 1_200, 1_800)] == [
        TRAIN,
        TRAIN,
        HELD_OUT,
        HELD_OUT,
        TRAIN,
        HELD_OUT,
    ]
    with pytest.raises(ValueError):
        block_role(0, 0)


def test_trace_roles_near_incidents_then_blocks() -> None:
    inc = [Incident("i", 10_000, 12_000, "ts-a-service")]
    spans = {
        "early": (1_000, 1_500),  # block 0: train
        "guarded": (8_500, 9_000),  # within the 2 s guard before the incident
        "inside": (11_000, 11_500),
        "late-odd": (15_000, 15_100),  # block 1 of 10 s: held out
        "late-even": (21_000, 21_100),  # block 2: train
    }
    roles = trace_roles(spans, inc, 2_000, 10_000)
    assert roles == {
        "early": TRAIN,
        "guarded": NEAR,
        "inside": NEAR,
        "late-odd": HELD_OUT,
        "late-even": TRAIN,
    }
    # A larger guard only ever moves traces to NEAR.
    wider = trace_roles(spans, inc, 4_000, 10_000)
    assert all(wider[t] == NEAR for t, r in roles.items() if r == NEAR)
    assert wider["late-odd"] == NEAR


def test_trace_roles_off_service_trains_on_other_services_near_an_incident() -> None:
    inc = [Incident("i", 10_000, 12_000, "ts-a-service")]
    spans = {"on": (1_000, 11_000), "off": (1_000, 11_000), "odd-off": (10_500, 11_000)}
    services = {
        "on": frozenset({"ts-a-service", "ts-b-service"}),
        "off": frozenset({"ts-b-service"}),
        "odd-off": frozenset({"ts-b-service"}),
    }
    roles = trace_roles(spans, inc, 2_000, 10_000, services)
    # In a training block, off the incident's service: trained on. A held-out block keeps
    # only traces out of every incident, whatever their services.
    assert roles == {"on": NEAR, "off": TRAIN, "odd-off": NEAR}
    assert trace_roles(spans, inc, 2_000, 10_000)["off"] == NEAR


def test_training_rows_per_mode() -> None:
    free = [_row("f1", 5), _row("f1", 50)]
    phase = [_row("a", 10), _row("b", 20), _row("c", 30), _row("a", 40)]
    roles = {"a": TRAIN, "b": HELD_OUT, "c": NEAR}
    assert training_rows(free, phase, roles, FAULT_FREE) == free
    got = training_rows(free, phase, roles, OUTSIDE_INCIDENTS)
    assert [(r.trace_id, r.ts_ms) for r in got] == [("f1", 5), ("a", 10), ("a", 40), ("f1", 50)]
    assert training_rows(free, phase, roles, OFF_SERVICE) == got
    with pytest.raises(ValueError):
        training_rows(free, phase, roles, "everything")


def test_role_masks_train_only_when_trained_on() -> None:
    timed = [_timed("a", 0, 1), _timed("b", 0, 1), _timed("c", 0, 1), _timed("unknown", 0, 1)]
    roles = {"a": TRAIN, "b": HELD_OUT, "c": NEAR}
    trained, held_out = role_masks(timed, roles, OUTSIDE_INCIDENTS)
    assert trained.tolist() == [True, False, False, False]
    assert held_out.tolist() == [False, True, False, False]
    trained, held_out = role_masks(timed, roles, FAULT_FREE)
    assert not trained.any() and held_out.tolist() == [False, True, False, False]


def test_false_alarms_counts_only_the_given_traces() -> None:
    alerted = np.array([True, True, False, True])
    assert false_alarms(alerted, np.array([True, False, True, False])) == {
        "traces": 2,
        "false_alerts": 1,
        "per_1000": 500.0,
    }
    assert false_alarms(alerted, np.zeros(4, np.bool_))["per_1000"] is None


def test_method_row_held_out_headline_never_counts_trained_traces() -> None:
    timed = [
        _timed("in-a", 1_100, 1_200, "ts-a-service"),
        _timed("trained", 3_000, 3_100, "ts-a-service"),  # alerted, but trained on
        _timed("held", 7_000, 7_100, "ts-b-service"),  # alerted, held out
        _timed("held-2", 8_000, 8_100, "ts-b-service"),
        _timed("near", 2_100, 2_200, "ts-c-service"),  # alerted, in neither set
    ]
    sessions = flagged(timed, [True, True, True, False, True])
    trained = np.array([False, True, False, False, False])
    held_out = np.array([False, False, True, True, False])
    row = method_row("rule", sessions, INCIDENTS, held_out, trained, held_out)
    assert (row["normal_traces"], row["false_alerts"]) == (2, 1)
    assert row["false_alerts_per_1000"] == 500.0
    assert row["held_out_normal"]["per_1000"] == 500.0
    # Detection is over every trace; the trained one is outside every incident anyway.
    assert row["detected"] == 1
    # The broad normal set and the strict rate leave the trained trace out too.
    assert row["not_in_incident_on_service_untrained"]["traces"] == 3
    assert row["outside_incident_time"]["traces"] == 3
    # Without the mask the trained trace would count: the figures differ.
    loose = method_row("rule", sessions, INCIDENTS)
    assert loose["not_in_incident_on_service_untrained"]["traces"] == 4
    with pytest.raises(ValueError):
        method_row("rule", sessions, INCIDENTS, held_out | trained, trained)


def test_since_injection_counts_only_earlier_injections_on_a_touched_service() -> None:
    sessions = flagged(
        [
            _timed("after-b", 7_500, 7_600, "ts-b-service"),  # 2.5 s after i2
            _timed("after-a-only", 7_500, 7_600, "ts-a-service"),  # i1 at 1 s
            _timed("before", 500, 600, "ts-a-service"),
            _timed("other", 7_500, 7_600, "ts-z-service"),
        ],
        [True, True, True, True],
    )
    assert [since_injection_s(s, INCIDENTS) for s in sessions] == [2.5, 6.5, None, None]
    held = np.array([True, True, True, False])
    alerted = np.array([True, False, True, True])
    got = aftermath(alerted, held, sessions, INCIDENTS)
    # "other" is not held out and "after-a-only" did not alert; "before" has no injection.
    assert got["false_alerts_soon_after_injection_on_their_service"] == 1
    assert got["seconds_since_injection"] == [2.5]
    assert got["held_out_traces_soon_after_injection_on_their_service"] == 2
    assert got["other_false_alerts"] == {"traces": 1, "false_alerts": 1, "per_1000": 1000.0}
