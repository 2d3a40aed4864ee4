"""Incident files and incident-level matching: detection, time to first alert, false alerts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import DataError
from schemas.incidents import Incident, parse_incidents, read_incidents, service_of_pod
from trainer.incidents import (
    ScoredSession,
    in_any_incident,
    incident_report,
    match_incidents,
    on_service,
    uncovered_ms,
)

ROOT = Path(__file__).resolve().parents[2]
NEZHA = ROOT / "data/nezha_trainticket/rca_2023-01-29/2023-01-29-fault_list.json"
MIN = 60_000


def session(
    sid: str,
    start: int,
    end: int,
    alert: int | None = None,
    services: frozenset[str] | None = None,
) -> ScoredSession:
    return ScoredSession(sid, start, end, 1.0 if alert is not None else 0.0, alert, services)


# ---- the file format


def test_json_lines_array_and_times() -> None:
    lines = (
        b'{"start": "2023-01-29T08:00:00Z", "end": "2023-01-29T08:02:00+00:00", '
        b'"service": "ts-a", "type": "cpu", "id": "x"}\n'
        b"\n"
        b'{"start": 1000, "end": 2000}\n'
    )
    a, b = parse_incidents(lines)
    assert a == Incident("x", 1674979200000, 1674979320000, "ts-a", "cpu")
    assert b == Incident("3", 1000, 2000)  # id defaults to the line
    assert parse_incidents(orjson.dumps([a.to_dict(), b.to_dict()])) == [a, b]
    assert parse_incidents(b'[{"start": 1, "end": 1}]') == [Incident("1", 1, 1)]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'{"start": 5, "end": 1}', "ends before it starts"),
        (b'{"end": 1}', "start: missing"),
        (b'{"start": "2023-01-29 08:00:00", "end": 1}', "needs a zone"),
        (b'{"start": 1, "end": 2}\nnot json', "line 2"),
        (b"[1]", "must be an object"),
    ],
)
def test_bad_incident_files_name_the_entry(tmp_path: Path, text: bytes, why: str) -> None:
    p = tmp_path / "inc.jsonl"
    p.write_bytes(text)
    with pytest.raises(DataError, match=why):
        read_incidents(p)


def test_missing_or_empty_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read incidents file"):
        read_incidents(tmp_path / "nope.json")
    (tmp_path / "empty.jsonl").write_bytes(b"\n")
    with pytest.raises(DataError, match="lists no incidents"):
        read_incidents(tmp_path / "empty.jsonl")


def test_service_of_pod() -> None:
    assert service_of_pod("ts-contacts-service-866bd68c97-xcqfx") == "ts-contacts-service"
    assert service_of_pod("ts-basic-service-5dc8d4f9fd-46997") == "ts-basic-service"
    assert service_of_pod("mysql-0") == "mysql-0"
    assert service_of_pod("ts-gateway-service") == "ts-gateway-service"


def test_the_nezha_fault_list_reads_as_it_is() -> None:
    incidents = read_incidents(NEZHA, fault_window_ms=2 * MIN)
    raw = orjson.loads(NEZHA.read_bytes())
    assert len(incidents) == sum(len(v) for v in raw.values()) == 28
    first = incidents[0]
    assert first.start_ms == 1674981784000  # 2023-01-29 08:43:04 UTC
    assert first.end_ms - first.start_ms == 2 * MIN
    assert first.service == "ts-contacts-service" and first.type == "return"
    assert [i.start_ms for i in incidents] == sorted(i.start_ms for i in incidents)
    assert {i.type for i in incidents} <= {
        "return",
        "exception",
        "cpu_contention",
        "network_delay",
    }


# ---- matching


def test_detection_time_to_first_alert_and_false_alerts() -> None:
    inc = [
        Incident("a", 10 * MIN, 12 * MIN, "ts-order-service", "cpu"),
        Incident("b", 30 * MIN, 32 * MIN, None, "cpu"),
        Incident("c", 50 * MIN, 52 * MIN, "ts-pay-service", "return"),
    ]
    svc = frozenset({"ts-gateway-service", "ts-order-service-866bd68c97-xcqfx"})
    other = frozenset({"ts-gateway-service", "ts-user-service"})
    sessions = [
        session("before", 0, MIN),  # normal, quiet
        session("fa", 2 * MIN, 3 * MIN, alert=3 * MIN),  # a false alert
        session("hit", 9 * MIN, 11 * MIN, alert=11 * MIN, services=svc),  # overlaps a
        session("early", 10 * MIN + 5_000, 10 * MIN + 9_000, alert=10 * MIN + 9_000, services=svc),
        session("off", 10 * MIN, 11 * MIN, alert=10 * MIN, services=other),  # wrong service
        session("b-late", 31 * MIN, 33 * MIN, alert=33 * MIN),  # b names no service
        session("c-quiet", 50 * MIN, 51 * MIN, services=frozenset({"ts-pay-service"})),
        session("after", 60 * MIN, 70 * MIN),
    ]
    a, b, c = match_incidents(sessions, inc)
    assert a.detected and a.by_service and a.delay_ms == 9_000
    assert a.sessions == 2 and a.alerted == 2  # "off" is not on its service
    assert b.detected and not b.by_service and b.delay_ms == 3 * MIN
    assert not c.detected and c.first_alert_ms is None and c.sessions == 1

    r = incident_report(sessions, inc)
    assert r.detected == 2 and r.alerts == 5
    assert r.false_alerts == 1 and r.alerts_off_service == 1
    assert r.normal_sessions == 3  # before, fa, after
    assert r.hours_outside == pytest.approx((70 - 6) / 60)
    assert r.false_alerts_per_1000 == pytest.approx(1000 / 3)
    assert r.false_alerts_per_hour == pytest.approx(60 / 64)
    d = r.to_dict()
    assert d["by_type"]["cpu"]["detected"] == 2 and d["by_type"]["return"]["detected"] == 0
    assert d["by_type"]["cpu"]["time_to_first_alert_s"]["median"] == pytest.approx(94.5)
    assert d["matched_on_service"] == 2  # a and c; b by time
    assert orjson.loads(orjson.dumps(d)) == d


def test_an_alert_before_the_incident_is_no_detection_and_no_false_alert() -> None:
    inc = [Incident("a", 10 * MIN, 12 * MIN)]
    s = [session("long", 5 * MIN, 11 * MIN, alert=6 * MIN)]  # alerted on an early window
    r = incident_report(s, inc)
    assert r.detected == 0 and r.false_alerts == 0


def test_on_service_and_uncovered() -> None:
    assert on_service(None, "x") and on_service(frozenset({"y"}), None)
    assert on_service(frozenset({"x-7d9f8c6b5-abcde"}), "x")
    assert not on_service(frozenset({"x2"}), "x")
    assert uncovered_ms(0, 100, []) == 100
    assert uncovered_ms(0, 100, [(10, 20), (15, 30), (90, 200), (-5, 2)]) == 100 - 2 - 20 - 10
    assert uncovered_ms(0, 100, [(0, 100)]) == 0


# ---- properties

times = st.integers(0, 100)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[ScoredSession], list[Incident]]:
    svcs = st.none() | st.frozensets(st.sampled_from(["a", "b", "c-1f2e3d4c5b-x1y2z"]), max_size=2)
    sessions = []
    for i in range(draw(st.integers(0, 12))):
        start = draw(times)
        end = start + draw(st.integers(0, 20))
        alert = draw(st.none() | st.integers(start, end))
        sessions.append(ScoredSession(f"s{i}", start, end, 0.0, alert, draw(svcs)))
    incidents = []
    for i in range(draw(st.integers(0, 5))):
        start = draw(times)
        incidents.append(
            Incident(
                f"i{i}",
                start,
                start + draw(st.integers(0, 30)),
                draw(st.none() | st.sampled_from(["a", "b", "c"])),
                draw(st.none() | st.sampled_from(["t1", "t2"])),
            )
        )
    return sessions, incidents


@given(scenario(), st.data())
def test_more_alerts_never_detect_fewer_incidents(
    sc: tuple[list[ScoredSession], list[Incident]], data: st.DataObject
) -> None:
    sessions, incidents = sc
    before = incident_report(sessions, incidents)
    # Alert on sessions that did not, and add an alerted session.
    more = [
        replace(s, alert_ms=data.draw(st.integers(s.start_ms, s.end_ms)))
        if s.alert_ms is None and data.draw(st.booleans())
        else s
        for s in sessions
    ]
    start = data.draw(times)
    more.append(ScoredSession("new", start, start + 5, 1.0, start + 5, None))
    after = incident_report(more, incidents)
    assert after.detected >= before.detected
    for o_before, o_after in zip(before.outcomes, after.outcomes, strict=True):
        assert o_after.detected >= o_before.detected
        if o_before.detected and o_after.delay_ms is not None and o_before.delay_ms is not None:
            assert o_after.delay_ms <= o_before.delay_ms


@given(scenario())
def test_alerts_inside_incidents_never_count_as_false(
    sc: tuple[list[ScoredSession], list[Incident]],
) -> None:
    sessions, incidents = sc
    r = incident_report(sessions, incidents)
    inside = in_any_incident(sessions, incidents)
    assert r.false_alerts == sum(s.alerted and not i for s, i in zip(sessions, inside, strict=True))
    # Alerted sessions added inside an incident change no false-alert count.
    extra = [
        ScoredSession(f"x{k}", inc.start_ms, inc.end_ms, 1.0, inc.end_ms, None)
        for k, inc in enumerate(incidents)
    ]
    r2 = incident_report(sessions + extra, incidents)
    assert r2.false_alerts == r.false_alerts
    assert r2.alerts == r.alerts + len(extra)
    assert r.detected <= len(incidents)
    assert sum(t.incidents for t in r.types.values()) == len(incidents)
    assert sum(t.detected for t in r.types.values()) == r.detected
    assert r.false_alerts + r.alerts_off_service <= r.alerts
