"""Every record round-trips, validates against its JSON Schema, and rejects bad input clearly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import Alert, DecodeError, LogEvent, Score, Session, Window
from schemas.scores import Expected, SurprisingEvent

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"


def schema(name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.v1.json").read_text())
    return out


def make_score() -> Score:
    surprising = (SurprisingEvent(3, "db.query.timeout", 9.5, (Expected("db.query.ok", 0.9),)),)
    return Score(
        window_id="abc",
        session_id="s1",
        window_index=0,
        model_version="v1",
        score=4.2,
        threshold=3.0,
        anomalous=True,
        n_events=7,
        first_ts=1_700_000_000_000,
        last_ts=1_700_000_001_000,
        scored_at=1_700_000_002_000,
        surprising=surprising,
        label=1,
    )


def test_log_event_round_trip_and_schema() -> None:
    ev = LogEvent(1_700_000_000_000, "gateway", "s1", "gateway.route.ok", "INFO", "hi", {"k": 1})
    data = ev.encode()
    assert LogEvent.decode(data) == ev
    jsonschema.validate(orjson.loads(data), schema("log_event"))


def test_raw_log_event_round_trip_and_schema() -> None:
    ev = LogEvent(1_700_000_000_000, "gateway", "t1", None, "INFO", "Routing GET /api/orders/42")
    data = ev.encode()
    assert LogEvent.decode(data) == ev
    jsonschema.validate(orjson.loads(data), schema("log_event"))
    # The schema, like the decoder, wants an event id or a message.
    for bad in ({"message": ""}, {}, {"event_id": None}):
        obj = {"ts": 1, "service": "x", "session_id": "s", **bad}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(obj, schema("log_event"))
        with pytest.raises(DecodeError):
            LogEvent.from_dict(obj)


def test_log_event_iso_timestamp_is_normalized_to_epoch_ms() -> None:
    raw = b'{"ts":"2008-11-09T20:35:30Z","service":"x","session_id":"s","event_id":"E5"}'
    assert LogEvent.decode(raw).ts == 1226262930000
    raw2 = b'{"ts":"2008-11-09T21:35:30+01:00","service":"x","session_id":"s","event_id":"E5"}'
    assert LogEvent.decode(raw2).ts == 1226262930000


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"service":"x","session_id":"s","event_id":"E"}', "ts"),
        (b'{"ts":1,"service":"x","session_id":5,"event_id":"E"}', "session_id"),
        (b'{"ts":1,"service":"x","session_id":"s","event_id":""}', "event_id"),
        (b'{"ts":"2008-11-09T20:35:30","service":"x","session_id":"s","event_id":"E"}', "ts"),
        (b'{"ts":true,"service":"x","session_id":"s","event_id":"E"}', "ts"),
        (b'{"ts":1,"service":"x","session_id":"s","event_id":"E","attrs":[1]}', "attrs"),
        (b'{"ts":1,"service":["x"],"session_id":"s","event_id":"E"}', "service"),
    ],
)
def test_log_event_rejects_bad_fields_naming_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as exc:
        LogEvent.decode(raw)
    assert exc.value.field == field
    assert field in str(exc.value)


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe not utf8", b"[1,2]", b"", b"{", b"null", b"[" * 5000 + b"]" * 5000]
)
def test_log_event_rejects_non_objects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        LogEvent.decode(raw)


def test_log_event_rejects_huge_values() -> None:
    raw = orjson.dumps({"ts": 1, "service": "x", "session_id": "s", "event_id": "E" * 10_000})
    with pytest.raises(DecodeError, match="event_id"):
        LogEvent.decode(raw)
    with pytest.raises(DecodeError, match="limit"):
        LogEvent.decode(b'{"message":"' + b"a" * (2 << 20) + b'"}')


def test_session_round_trip_and_schema() -> None:
    s = Session("blk_1", ("E5", "E22"), 1, 2, 0, 1.5, False)
    data = s.encode()
    assert Session.decode(data) == s
    jsonschema.validate(orjson.loads(data), schema("session"))


def test_session_cut_mid_session_round_trips_and_ended_is_the_default() -> None:
    cut = Session("w1", ("E5",), ended=False)
    data = cut.encode()
    assert orjson.loads(data)["ended"] is False
    assert Session.decode(data) == cut
    jsonschema.validate(orjson.loads(data), schema("session"))
    assert "ended" not in orjson.loads(Session("w2", ("E5",)).encode())
    assert Session.decode(b'{"session_id": "w2", "events": []}').ended is True
    with pytest.raises(DecodeError, match="ended"):
        Session.decode(b'{"session_id": "w3", "events": [], "ended": "no"}')


def test_session_minimal_hdfs_line() -> None:
    s = Session.decode(b'{"session_id": "blk_1", "events": ["E5", 22], "label": 1}')
    assert s.events == ("E5", "22") and s.label == 1 and s.start_ts is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"session_id":"b","events":"E5"}', "events"),
        (b'{"session_id":"b","events":["E5", null]}', "events[1]"),
        (b'{"session_id":"b","events":[],"label":2}', "label"),
        (b'{"events":[]}', "session_id"),
    ],
)
def test_session_rejects_bad_fields(raw: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as exc:
        Session.decode(raw)
    assert exc.value.field == field


def test_window_round_trip_schema_and_deterministic_id() -> None:
    w = Window.build("s1", 0, ("a", "b"), 10, 20, 3, 100, 105, late=True, label=1)
    assert Window.decode(w.encode()) == w
    jsonschema.validate(orjson.loads(w.encode()), schema("window"))
    again = Window.build("s1", 0, ("a", "b"), 10, 20, 3, 100, 105)
    assert again.window_id == w.window_id
    assert Window.build("s1", 0, ("a",), 10, 20, 3, 100, 106).window_id != w.window_id


def test_window_rejects_more_than_510_events() -> None:
    with pytest.raises(DecodeError, match="510"):
        Window.build("s", 0, tuple("e" for _ in range(511)), 0, 0, 0, 0, 0)


def test_score_and_alert_round_trip_and_schema() -> None:
    sc = make_score()
    assert Score.decode(sc.encode()) == sc
    jsonschema.validate(orjson.loads(sc.encode()), schema("score"))
    al = Alert.from_score(sc, ("a", "b", "c"))
    assert Alert.decode(al.encode()) == al
    jsonschema.validate(orjson.loads(al.encode()), schema("alert"))
    assert al.surprising[0].expected[0].event_id == "db.query.ok"


def test_a_new_template_rides_with_its_surprising_event() -> None:
    new = SurprisingEvent(0, "T42", 11.0, (Expected("T3", 0.8),), template="Disk <*> is full")
    sc = dataclasses.replace(make_score(), surprising=(new,))
    assert Score.decode(sc.encode()) == sc
    jsonschema.validate(orjson.loads(sc.encode()), schema("score"))
    al = Alert.from_score(sc, ("T42",))
    assert Alert.decode(al.encode()).surprising[0].template == "Disk <*> is full"
    jsonschema.validate(orjson.loads(al.encode()), schema("alert"))
    # A known template's event carries no text: older consumers see the same record.
    assert "template" not in make_score().to_dict()["surprising"][0]
    d = sc.to_dict()
    d["surprising"][0]["template"] = 5
    with pytest.raises(DecodeError) as exc:
        Score.from_dict(d)
    assert exc.value.field == "surprising[0].template"


def test_score_rejects_bad_nested_field() -> None:
    d = make_score().to_dict()
    d["surprising"][0]["expected"][0]["prob"] = "high"
    with pytest.raises(DecodeError) as exc:
        Score.from_dict(d)
    assert exc.value.field == "surprising[0].expected[0].prob"


def test_alert_requires_events() -> None:
    d = make_score().to_dict()
    with pytest.raises(DecodeError, match="events"):
        Alert.from_dict(d)
