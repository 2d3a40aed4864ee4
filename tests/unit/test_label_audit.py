"""bench/label_audit.py: held-out traces that log an incident's own error templates."""

from __future__ import annotations

import numpy as np
import pytest

from bench.label_audit import TraceLines, shared_error_templates


def lines(*spec: tuple[str, str]) -> TraceLines:
    return TraceLines(
        [e for e, _ in spec], [lv for _, lv in spec], [f"message of {e}" for e, _ in spec]
    )


TRACES = [
    lines(("A", "INFO"), ("E1", "ERROR")),  # 0 held out, logs the incident's error
    lines(("A", "INFO"), ("E2", "ERROR")),  # 1 held out, an error no incident logs
    lines(("A", "INFO"), ("E1", "INFO")),  # 2 held out, E1 at INFO: not an error line
    lines(("A", "INFO"), ("E9", "ERROR")),  # 3 a trace no incident or held-out trace is
    lines(("B", "INFO"), ("E1", "ERROR")),  # 4 in incident x
    lines(
        ("B", "INFO"),
    ),  # 5 in incident x
    lines(("B", "INFO"), ("E3", "ERROR")),  # 6 in incident y
]
HELD = np.array([1, 1, 1, 0, 0, 0, 0], np.bool_)
INCIDENTS = {"x": [4, 5], "y": [6]}
TRAINING = [
    lines(("A", "INFO"), ("E1", "WARN")),
    lines(
        ("E3", "ERROR"),
    ),
]


def test_finds_the_held_out_traces_logging_an_incidents_error() -> None:
    alerted = np.array([1, 1, 0, 0, 1, 0, 1], np.bool_)
    since = [300.0, None, 12.5, None, None, None, None]
    got = shared_error_templates(TRACES, HELD, TRAINING, INCIDENTS, alerted, since)
    assert got["held_out_traces"] == 3
    assert got["held_out_traces_with_an_incident_error_unseen_in_training"] == 1
    assert got["of_them_alerted"] == 1
    assert got["held_out_alerted"] == 2
    (t,) = got["templates"]
    assert t["template"] == "E1"
    assert t["example"] == "message of E1"
    assert t["held_out_traces"] == 1
    assert t["held_out_alerted"] == 1
    assert t["seconds_since_injection"] == [300.0]
    assert t["training_traces"] == 0  # E1 at WARN in training is not its error line
    assert t["incidents"] == [{"id": "x", "traces_with_it": 1, "traces": 2}]


def test_nothing_shared_gives_no_template() -> None:
    held = np.array([0, 1, 0, 0, 0, 0, 0], np.bool_)
    alerted = np.zeros(7, np.bool_)
    got = shared_error_templates(TRACES, held, TRAINING, INCIDENTS, alerted, [None] * 7)
    assert got["templates"] == []
    assert got["held_out_traces_with_an_incident_error_unseen_in_training"] == 0


def test_an_error_training_logs_is_listed_but_not_counted() -> None:
    held = np.array([0, 0, 0, 0, 0, 0, 1], np.bool_)  # trace 6 logs E3, as incident y does
    alerted = np.ones(7, np.bool_)
    got = shared_error_templates(TRACES, held, TRAINING, INCIDENTS, alerted, [None] * 7)
    (t,) = got["templates"]
    assert (t["template"], t["training_traces"]) == ("E3", 1)
    assert t["incidents"] == [{"id": "y", "traces_with_it": 1, "traces": 1}]
    assert got["held_out_traces_with_an_incident_error_unseen_in_training"] == 0
    assert got["of_them_alerted"] == 0


def test_levels_must_line_up_with_events() -> None:
    bad = TraceLines(["A", "B"], ["INFO"], ["a", "b"])
    with pytest.raises(ValueError):
        bad.error_templates()
