"""LogEvent.decode's fast path accepts exactly what from_dict accepts, and decodes it alike."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import _fields as f
from schemas.errors import DecodeError
from schemas.events import Fields, LogEvent, decode_fields

edge_ints = st.sampled_from([-1, 0, 1, f.MAX_TS_MS, f.MAX_TS_MS + 1, 1_700_000_000_000])
edge_text = st.sampled_from(["", "x", "x" * f.MAX_ID_CHARS, "x" * (f.MAX_ID_CHARS + 1)])
level_text = st.sampled_from(["INFO", "x" * 32, "x" * 33])
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON encoders write
values = st.none() | st.booleans() | ints | st.floats(allow_nan=False) | st.text()
field = {
    "ts": values | edge_ints | st.just("2026-11-28T07:00:00Z") | st.just(1.7e12),
    "service": values | edge_text,
    "session_id": values | edge_text,
    "event_id": values | edge_text,
    "level": values | level_text,
    "message": values | st.just("m" * (f.MAX_TEXT_CHARS + 1)),
    "attrs": values | st.dictionaries(st.text(max_size=4), ints, max_size=2),
}


def slow(obj: dict[str, Any]) -> LogEvent | str:
    try:
        return LogEvent.from_dict(obj)
    except DecodeError as e:
        return str(e)


def fast(data: bytes) -> LogEvent | str:
    try:
        return LogEvent.decode(data)
    except DecodeError as e:
        return str(e)


@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries({}, optional=field))
def test_fast_path_agrees_with_from_dict(obj: dict[str, Any]) -> None:
    data = orjson.dumps(obj)
    assert fast(data) == slow(orjson.loads(data))


def test_a_typical_event_decodes_with_its_attrs() -> None:
    ev = LogEvent(1_700_000_000_000, "gateway", "s1", "E5", "INFO", None, {"label": 1})
    assert LogEvent.decode(ev.encode()) == ev
    assert LogEvent.decode(b'{"ts": 5, "service": "a", "session_id": "b", "event_id": "c"}') == (
        LogEvent(5, "a", "b", "c")
    )


def strict(data: bytes | str) -> Fields | str:
    try:
        ev = LogEvent.decode(data)
    except DecodeError as e:
        return str(e)
    return ev.ts, ev.session_id, ev.event_id, ev.message, ev.attrs


def fields(data: bytes | str) -> Fields | str:
    try:
        return decode_fields(data)
    except DecodeError as e:
        return str(e)


json_values = st.recursive(
    values,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children)
    ),
    max_leaves=8,
)


def as_message(obj: Any, fmt: int) -> bytes:
    """`obj` as a message value, sometimes made malformed."""
    data = orjson.dumps(obj)
    if fmt == 1:
        return data[:-1]  # truncated
    if fmt == 2:
        return data + b"x"  # trailing garbage
    if fmt == 3:
        return b"\xff" + data  # not UTF-8
    return data


@settings(max_examples=500, deadline=None)
@given(
    st.fixed_dictionaries({}, optional=field) | json_values,
    st.sampled_from([0, 0, 0, 1, 2, 3]),
)
def test_decode_fields_agrees_with_decode(obj: Any, fmt: int) -> None:
    data = as_message(obj, fmt)
    assert fields(data) == strict(data)
    text = data.decode("utf-8", "surrogateescape")
    assert fields(text) == strict(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decode_fields_agrees_on_random_bytes(data: bytes) -> None:
    assert fields(data) == strict(data)


def test_decode_fields_agrees_on_edge_cases() -> None:
    ok = LogEvent(5, "a", "b", "c", "INFO", "m", {"label": 1})
    cases: list[bytes | str] = [
        ok.encode(),
        ok.encode().decode(),
        b'{"ts": 5, "service": "a", "session_id": "b", "event_id": "c"}',
        b'{"ts": "2026-11-28T07:00:00Z", "service": "a", "session_id": "b", "event_id": "c"}',
        b'{"ts": 5, "service": "a", "session_id": "b", "event_id": "c", "attrs": null}',
        b'{"ts": true, "service": "a", "session_id": "b", "event_id": "c"}',
        # Raw events: a message and no event id (or a null one); neither is an error.
        b'{"ts": 5, "service": "a", "session_id": "b", "message": "GET /x took 5 ms"}',
        b'{"ts": 5, "service": "a", "session_id": "b", "event_id": null, "message": "m"}',
        b'{"ts": 5, "service": "a", "session_id": "b", "message": ""}',
        b'{"ts": 5, "service": "a", "session_id": "b", "message": 7}',
        b'{"ts": 5, "service": "a", "session_id": "b", "event_id": "", "message": "m"}',
        b"[1, 2]",
        b"null",
        b"",
        b'{"message":"' + b"a" * (2 << 20) + b'"}',  # over the size limit
        "\ud800",  # a lone surrogate
    ]
    for data in cases:
        assert fields(data) == strict(data)
    assert decode_fields(ok.encode()) == (5, "b", "c", "m", {"label": 1})
    assert isinstance(fields(b"null"), str)


def test_a_raw_event_has_a_message_and_no_event_id() -> None:
    raw = LogEvent(5, "gateway", "t1", None, "INFO", "Routing GET /api/orders/42")
    data = raw.encode()
    assert b"event_id" not in data
    assert LogEvent.decode(data) == raw
    assert decode_fields(data) == (5, "t1", None, "Routing GET /api/orders/42", {})
    # Without either, the error names the field and says what would do instead.
    for bad in (
        b'{"ts": 5, "service": "a", "session_id": "b"}',
        b'{"ts": 5, "service": "a", "session_id": "b", "message": ""}',
        b'{"ts": 5, "service": "a", "session_id": "b", "event_id": null, "message": null}',
    ):
        for decode in (LogEvent.decode, decode_fields):
            with pytest.raises(DecodeError, match=r"^event_id: missing required field \(or a"):
                decode(bad)
