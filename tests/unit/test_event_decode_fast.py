"""LogEvent.decode's fast path accepts exactly what from_dict accepts, and decodes it alike."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import _fields as f
from schemas.errors import DecodeError
from schemas.events import LogEvent

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
