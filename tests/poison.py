"""A corpus of poison records: input no event decoder should accept, each of which serve
must dead-letter (with its reason) and then carry on. Shared by the unit tests (through
the loop with fakes) and tests/integration/test_poison.py (on the real broker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas._fields import MAX_ID_CHARS, MAX_TEXT_CHARS, MAX_TS_MS

YEAR_2300_MS = int(datetime(2300, 1, 1, tzinfo=UTC).timestamp() * 1000)
OVERSIZED_BYTES = 1_048_400
"""The size of the non-JSON value the fault probe got through the broker."""


@dataclass(frozen=True)
class Poison:
    kind: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def _event(now_ms: int, kind: str, **fields: Any) -> dict[str, Any]:
    """A valid event of session poison-KIND, with `fields` replaced (None: removed)."""
    e: dict[str, Any] = {
        "ts": now_ms,
        "service": "svc",
        "session_id": f"poison-{kind}",
        "event_id": "E1",
    }
    for k, v in fields.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def _nested(depth: int, open_: bytes, close: bytes, inner: bytes = b"1") -> bytes:
    return open_ * depth + inner + close * depth


def poison_corpus(now_ms: int) -> list[Poison]:
    """At least 40 kinds of poison, each its own `kind`; `now_ms` dates the events whose
    only fault is not their time."""

    def ev(kind: str, **fields: Any) -> dict[str, Any]:
        return _event(now_ms, kind, **fields)

    def js(kind: str, **fields: Any) -> Poison:
        return Poison(kind, f"poison-{kind}".encode(), orjson.dumps(ev(kind, **fields)))

    def raw(kind: str, value: bytes, key: bytes | None = None, **kw: Any) -> Poison:
        return Poison(kind, f"poison-{kind}".encode() if key is None else key, value, **kw)

    valid = orjson.dumps(ev("x"))
    out = [
        Poison("null_key_and_value", None, None),
        raw("oversized_not_json", b"x" * OVERSIZED_BYTES),
        raw("empty_value", b""),
        raw("whitespace_only", b" \n\t "),
        raw("nul_bytes", b"\x00" * 64),
        raw("invalid_utf8", b"\xff\xfe\xfa not utf-8 at all"),
        raw("invalid_utf8_in_string", valid.replace(b'"svc"', b'"s\xffvc"')),
        raw("lone_surrogate_escape", valid.replace(b'"svc"', b'"\\ud800"')),
        raw("utf8_bom", b"\xef\xbb\xbf" + valid),
        raw("truncated_json", valid[: len(valid) // 2]),
        raw("trailing_garbage", valid + b" trailing"),
        raw("depth_bomb_arrays", _nested(100_000, b"[", b"]")),
        raw("depth_bomb_objects", _nested(5_000, b'{"a":', b"}")),
        raw(
            "depth_bomb_in_attrs",
            valid[:-1] + b',"attrs":' + _nested(2_000, b'{"a":', b"}") + b"}",
        ),
        raw("huge_array", b"[" + b"1," * 200_000 + b"1]"),
        raw("nan_literal", valid.replace(str(now_ms).encode(), b"NaN")),
        raw("infinity_literal", valid.replace(str(now_ms).encode(), b"Infinity")),
        raw("minus_infinity_literal", valid.replace(str(now_ms).encode(), b"-Infinity")),
        raw("top_level_array", orjson.dumps([ev("top_level_array")])),
        raw("top_level_string", b'"an event"'),
        raw("top_level_number", b"12345"),
        raw("top_level_null", b"null"),
        raw("top_level_true", b"true"),
        raw("empty_object", b"{}"),
        raw("duplicate_keys", valid[:-1] + b',"ts":"not a time"}'),
        raw("key_not_utf8", b"\x80not json", key=b"\xff\xfe\x00\xc3"),
        raw(
            "garbage_headers",
            b"{garbage",
            headers=(("\u00ff-h", b"\xff\x00\xfe"), ("x", b"\x80" * 100)),
        ),
        js("ts_missing", ts=None),
        js("ts_string", ts="soon"),
        js("ts_bool", ts=True),
        js("ts_fraction", ts=now_ms + 0.5),
        js("ts_list", ts=[now_ms]),
        js("ts_object", ts={"ms": now_ms}),
        js("ts_negative", ts=-1),
        js("ts_beyond_2400", ts=MAX_TS_MS + 1),
        raw("ts_huge_integer", valid.replace(str(now_ms).encode(), b"1" + b"0" * 30)),
        js("ts_seconds_with_fraction", ts=now_ms / 1000 + 0.25),
        js("ts_iso_without_zone", ts="2026-11-01T00:00:00"),
        js("ts_iso_garbage", ts="2026-13-45T99:99:99Z"),
        js("ts_iso_too_long", ts="2026-11-01T00:00:00" + "0" * 60 + "Z"),
        js("ts_2300_future", ts=YEAR_2300_MS),
        js("service_missing", service=None),
        js("service_int", service=7),
        js("service_empty", service=""),
        js("service_list", service=["svc"]),
        js("session_id_missing", session_id=None),
        js("session_id_int", session_id=42),
        js("session_id_object", session_id={"id": 1}),
        js("session_id_empty", session_id=""),
        js("session_id_too_long", session_id="s" * (MAX_ID_CHARS + 1)),
        js("event_id_int", event_id=7),
        js("event_id_list", event_id=["E1"]),
        js("event_id_empty", event_id=""),
        js("event_id_too_long", event_id="E" * (MAX_ID_CHARS + 1)),
        js("event_id_and_message_missing", event_id=None),
        js("message_int", message=12),
        js("message_over_text_limit", message="m" * (MAX_TEXT_CHARS + 1)),
        js("raw_message_empty", event_id=None, message=""),
        js("level_int", level=3),
        js("level_too_long", level="L" * 33),
        js("attrs_list", attrs=[1, 2]),
        js("attrs_string", attrs="label=1"),
        js("attrs_int", attrs=1),
    ]
    kinds = [p.kind for p in out]
    assert len(set(kinds)) == len(kinds), "kinds are unique"
    return out
