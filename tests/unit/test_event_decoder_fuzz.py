"""The LogEvent decoder only ever returns a record or raises DecodeError, whatever it is fed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DecodeError, LogEvent

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

event_like = st.fixed_dictionaries(
    {},
    optional={
        "ts": json_values | st.integers(min_value=-(10**15), max_value=10**15) | st.text(),
        "service": json_values,
        "session_id": json_values,
        "event_id": json_values,
        "level": json_values,
        "message": json_values,
        "attrs": json_values,
    },
)


def _decode(data: bytes) -> None:
    try:
        ev = LogEvent.decode(data)
    except DecodeError as e:
        assert str(e)
        return
    assert isinstance(ev, LogEvent)
    assert isinstance(ev.ts, int) and ev.ts >= 0
    # A decoded event re-encodes and decodes to itself.
    assert LogEvent.decode(ev.encode()) == ev


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _decode(data)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_random_json(value: Any) -> None:
    _decode(json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(event_like)
def test_event_shaped_json(obj: dict[str, Any]) -> None:
    _decode(json.dumps(obj).encode())
