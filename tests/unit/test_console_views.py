"""The console's pure parts: the bounded store, grouping by pattern and acknowledgements,
the score histogram, and the JSON views the page polls."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from schemas.errors import DataError
from stream.console.histogram import per_minute, score_histogram
from stream.console.patterns import Acks, group_alerts, pattern_key, pattern_of
from stream.console.store import Store
from stream.console.views import (
    alert_row,
    alerts_view,
    distribution_view,
    session_view,
    window_timeline,
)
from tests.unit.console_records import T0, alert, score, surprising

MINUTE = 60_000


def test_pattern_is_the_events_over_the_threshold_whatever_the_rest_of_the_top_five() -> None:
    a = alert("s1", 0, [(3, "db.timeout", 19.0), (4, "db.retry", 9.5), (1, "E1", 2.0)])
    b = alert("s2", 5, [(2, "db.retry", 12.0), (6, "db.timeout", 20.0), (0, "E7", 3.1)])
    assert pattern_of(a) == pattern_of(b) == ("db.retry", "db.timeout")
    under = alert("s3", 9, [(0, "E9", 5.0), (1, "E8", 7.0)])  # a rule's score, no NLL over
    assert pattern_of(under) == ("E8",)
    assert pattern_key(pattern_of(a)) == pattern_key(("db.retry", "db.timeout"))
    assert pattern_key(("a",)) != pattern_key(("b",))


def test_fifty_alerts_of_one_incident_are_one_group_newest_first() -> None:
    incident = [
        alert(f"s{i}", i * 100, [(2, "eureka.empty", 20.0), (0, "E0", 1.0)]) for i in range(50)
    ]
    other = [alert("x1", 7_000, [(1, "db.timeout", 15.0)])]
    groups = group_alerts(incident + other, {})
    assert [len(g.alerts) for g in groups] == [1, 50]  # the newest group first
    assert groups[0].pattern == ("db.timeout",)
    big = groups[1]
    assert [a.session_id for a in big.alerts[:2]] == ["s49", "s48"]
    assert big.last_ms == T0 + 4_900


def test_an_acknowledged_group_is_hidden_until_it_alerts_again(tmp_path: Path) -> None:
    path = tmp_path / "acks.jsonl"
    acks = Acks(path)
    first = [alert(f"s{i}", i, [(2, "eureka.empty", 20.0)]) for i in range(3)]
    (g,) = group_alerts(first, acks.until)
    acks.acknowledge(g.pattern, g.last_ms)
    (g,) = group_alerts(first, acks.until)
    assert g.hidden and g.open_alerts == []
    later = alert("s9", 60_000, [(2, "eureka.empty", 20.0)])
    (g,) = group_alerts([*first, later], Acks(path).until)  # read back from the file
    assert not g.hidden
    assert [a.session_id for a in g.open_alerts] == ["s9"]


def test_a_bad_ack_file_is_one_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "acks.jsonl"
    path.write_text('{"pattern": ["a"], "until_ms": 5}\n\nnot json\n')
    with pytest.raises(DataError, match=r"acks.jsonl:3"):
        Acks(path)


def test_store_keeps_the_window_and_its_bounds_and_drops_duplicate_windows() -> None:
    store = Store(window_ms=10 * MINUTE, max_alerts=3, max_scores=4)
    for i in range(5):
        assert store.add_alert(alert(f"s{i}", i * MINUTE, [(0, "E9", 20.0)]))
    assert not store.add_alert(alert("s4", 4 * MINUTE, [(0, "E9", 20.0)]))  # same window
    assert [a.session_id for a in store.alerts()] == ["s2", "s3", "s4"]  # count bound
    for i in range(6):
        store.add_score(score(f"s{i}", i * MINUTE, 1.0))
    assert [p.session_id for p in store.scores()] == ["s2", "s3", "s4", "s5"]
    store.evict(T0 + 13 * MINUTE + 1)  # keeps scored_at >= 3 min + 1 ms
    assert [a.session_id for a in store.alerts()] == ["s4"]
    assert [p.session_id for p in store.scores()] == ["s4", "s5"]
    assert store.add_alert(alert("s2", 2 * MINUTE, [(0, "E9", 20.0)]))  # its id was freed
    assert store.alerts_seen == 6 and store.scores_seen == 6


def test_histogram_puts_the_threshold_on_a_bin_edge() -> None:
    h = score_histogram([0.0, 0.3, 8.0, 8.01, 15.9, 40.0], threshold=8.0, bins_below=4, max_bins=8)
    assert h.edges[:5] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert len(h.edges) == 9  # capped at max_bins; 40 falls in the last bin
    assert h.below == [2, 0, 0, 1, 0, 0, 0, 0]  # 8.0 is not over 8.0
    assert h.above == [0, 0, 0, 0, 1, 0, 0, 2]
    assert sum(h.below) + sum(h.above) == 6
    assert score_histogram([], threshold=0.0).below == [0] * 21


def test_per_minute_counts_the_last_minutes_only() -> None:
    now = T0 + 10 * MINUTE + 5
    t, counts = per_minute([T0 + 10 * MINUTE, T0 + 9 * MINUTE + 1, T0 + 9 * MINUTE, T0], now, 3)
    assert counts == [0, 2, 1]
    assert t[-1] == (T0 + 10 * MINUTE) // 1000 // 60 * 60


def test_alerts_view_groups_and_hides_acknowledged_and_counts_verdicts() -> None:
    alerts = [
        alert("s1", 0, [(3, "db.timeout", 19.0), (1, "E1", 2.0), (0, "E0", 1.0), (4, "E4", 0.5)]),
        alert("s2", 10, [(3, "db.timeout", 18.0)]),
        alert("s3", 20, [(1, "eureka.empty", 20.0)]),
    ]
    names = {"db.timeout": "Connection to db timed out after <*> ms"}
    acks = {("eureka.empty",): T0 + 20}
    view = alerts_view(alerts, acks, names, {"s1": "anomalous"})
    assert view["total"] == 3
    (g,) = view["groups"]
    assert g["alerts"] == 2 and g["sessions"] == 2
    assert g["pattern"] == [{"event_id": "db.timeout", "name": names["db.timeout"], "new": False}]
    assert g["verdicts"] == {"anomalous": 1, "normal": 0}
    assert [a["session_id"] for a in g["latest"]] == ["s2", "s1"]
    row = g["latest"][1]
    # the three most surprising, in the order they happened
    assert [s["position"] for s in row["surprising"]] == [0, 1, 3]
    assert row["surprising"][2]["expected"][0] == {"event_id": "E1", "name": None, "prob": 0.9}
    assert [a["key"] for a in view["acknowledged"]] == [pattern_key(("eureka.empty",))]
    assert [a["session_id"] for a in view["recent"]] == ["s3", "s2", "s1"]


def test_session_timeline_colours_surprising_events_and_the_end() -> None:
    a = alert(
        "s1",
        0,
        [(1, "T7", 4.0), (3, "T9", 16.0), (4, "<end>", 9.0)],
        events=("T1", "T7", "T2", "T9"),
    )
    w = window_timeline(a, {"T9": "Connection refused <*>"})
    assert [e["event_id"] for e in w["events"]] == ["T1", "T7", "T2", "T9"]
    assert [e["surprising"] for e in w["events"]] == [False, True, False, True]
    assert [e["heat"] for e in w["events"]] == [0.0, 0.5, 0.0, 1.0]
    assert w["events"][3]["name"] == "Connection refused <*>"
    assert w["events"][3]["expected"][0]["event_id"] == "E1"
    assert w["end"]["nll"] == 9.0 and w["end"]["heat"] == 1.0
    assert w["unexplained_below"] == 4.0


def test_session_view_shows_new_templates_and_every_scored_window() -> None:
    store = Store(window_ms=10 * MINUTE, max_alerts=10, max_scores=10)
    a = alert("s1", 50, [(0, "T99", 20.7)], window_index=1)
    ruled = dataclasses.replace(
        surprising(0, "T99", 20.7, "Disk <*> is on fire"), reason="unseen_event"
    )
    a = dataclasses.replace(a, surprising=(ruled,))
    store.add_alert(a)
    store.add_score(score("s1", 10, 1.5, index=0))
    store.add_score(score("s1", 50, 20.7, index=1))
    store.add_score(score("s2", 50, 1.0))
    v = session_view("s1", store.session_alerts("s1"), store.session_scores("s1"), {}, "normal")
    assert v["found"] and v["verdict"] == "normal"
    (w,) = v["windows"]
    assert w["events"][0]["new_template"] == "Disk <*> is on fire"
    # The new template says it already; an [UNK] event without one gets the rule's words.
    assert "reason" not in w["events"][0]
    bare = dataclasses.replace(a, surprising=(dataclasses.replace(ruled, template=None),))
    (e,) = [e for e in window_timeline(bare, {})["events"] if e["surprising"]]
    assert e["reason"] == "an event the model never trained on"
    assert "reason" not in alert_row(alert("s9", 5, [(0, "T1", 9.0)]), {})["surprising"][0]
    assert [(p["window_index"], p["anomalous"]) for p in v["scores"]] == [(0, False), (1, True)]
    assert not session_view("nobody", [], [], {}, None)["found"]
    (g,) = alerts_view([a], {}, {}, {})["groups"]
    assert g["pattern"] == [{"event_id": "T99", "name": "Disk <*> is on fire", "new": True}]


def test_distribution_view_bins_scores_against_the_latest_threshold() -> None:
    store = Store(window_ms=5 * MINUTE, max_alerts=10, max_scores=100)
    for i, v in enumerate([0.0, 0.0, 1.0, 3.0, 12.0]):
        store.add_score(score(f"s{i}", i * 1000, v, threshold=6.0))
    store.add_alert(alert("s4", 4000, [(0, "E9", 12.0)], threshold=6.0))
    d = distribution_view(store, T0 + MINUTE)
    assert d["threshold"] == 6.0 and d["scores"] == 5 and d["anomalous"] == 1
    assert sum(d["histogram"]["above"]) == 1 and sum(d["histogram"]["below"]) == 4
    assert d["histogram"]["edges"][20] == 6.0
    pm = d["per_minute"]
    assert len(pm["t"]) == 5 and sum(pm["alerts"]) == 1 and sum(pm["windows"]) == 5
