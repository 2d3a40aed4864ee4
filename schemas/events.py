"""`LogEvent`: the value of a message on the input topic. The message key is the session id.

An event names its log template by `event_id`, or, raw, carries only its `message`: the
consumer then maps the message to a template id with the model's template set
(trainer/mining/matcher.py). One of the two must be there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DecodeError

SCHEMA_VERSION = 1
NO_EVENT_ID = "missing required field (or a message to map to a template)"


@dataclass(frozen=True, slots=True)
class LogEvent:
    ts: int
    """Event time, epoch milliseconds (ISO-8601 with a zone is accepted on input)."""
    service: str
    session_id: str
    event_id: str | None
    """The log template id: the token the model sees. None for a raw event, whose
    `message` the consumer maps to a template id."""
    level: str | None = None
    message: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> int | None:
        """Ground truth the source carries in attrs["label"] (see `label_of`)."""
        return label_of(self.attrs)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ts": self.ts,
            "service": self.service,
            "session_id": self.session_id,
        }
        if self.event_id is not None:
            d["event_id"] = self.event_id
        if self.level is not None:
            d["level"] = self.level
        if self.message is not None:
            d["message"] = self.message
        if self.attrs:
            d["attrs"] = self.attrs
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> LogEvent:
        attrs = obj.get("attrs")
        if attrs is None:
            attrs = {}
        elif not isinstance(attrs, dict):
            raise DecodeError(f"must be an object, got {type(attrs).__name__}", "attrs")
        ts = f.timestamp_ms(f.req(obj, "ts"), "ts")
        service = f.ident(f.req(obj, "service"), "service")
        session_id = f.ident(f.req(obj, "session_id"), "session_id")
        eid = obj.get("event_id")
        message = obj.get("message")
        if eid is None and not (type(message) is str and message):
            # Neither a template id nor a message to find one by.
            raise DecodeError(NO_EVENT_ID, "event_id")
        return cls(
            ts=ts,
            service=service,
            session_id=session_id,
            event_id=None if eid is None else f.ident(eid, "event_id"),
            level=f.opt_text(obj.get("level"), "level", 32),
            message=f.opt_text(message, "message"),
            attrs=attrs,
        )

    @classmethod
    def decode(cls, data: bytes | str) -> LogEvent:
        """Decode one message value. Raises DecodeError, never anything else."""
        try:
            obj = f.load_object(data, "event")
            plain = _plain_fields(obj)
            if plain is not None:
                return cls(*plain)
            return cls.from_dict(obj)
        except DecodeError:
            raise
        except Exception as e:  # defensive: the consumer must never crash on input
            raise DecodeError(f"undecodable event: {type(e).__name__}: {e}") from None


def label_of(attrs: dict[str, Any]) -> int | None:
    """Ground truth carried by simulated or evaluation traffic in attrs["label"]: 0 or 1
    (a bool is not a label), else None."""
    label = attrs.get("label")
    return label if label in (0, 1) and not isinstance(label, bool) else None


_Fields = tuple[int, str, str, str | None, str | None, str | None, dict[str, Any]]


def _plain_fields(obj: dict[str, Any]) -> _Fields | None:
    """The usual well-formed event's fields, in LogEvent's order, checked exactly as
    `from_dict` checks them (epoch-ms ts, plain strings): the fast path. None for anything
    else, valid or not, which `from_dict` converts or rejects, naming the field at fault."""
    get = obj.get
    ts = get("ts")
    service = get("service")
    sid = get("session_id")
    eid = get("event_id")
    level = get("level")
    message = get("message")
    attrs = get("attrs")
    if (
        type(ts) is int
        and 0 <= ts <= f.MAX_TS_MS
        and type(service) is str
        and 0 < len(service) <= f.MAX_ID_CHARS
        and type(sid) is str
        and 0 < len(sid) <= f.MAX_ID_CHARS
        and (
            (type(eid) is str and 0 < len(eid) <= f.MAX_ID_CHARS)
            # A raw event: no id, a message to map to one.
            or (eid is None and type(message) is str and message)
        )
        and (level is None or (type(level) is str and len(level) <= 32))
        and (message is None or (type(message) is str and len(message) <= f.MAX_TEXT_CHARS))
        and (attrs is None or type(attrs) is dict)
    ):
        return ts, service, sid, eid, level, message, {} if attrs is None else attrs
    return None


_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


Fields = tuple[int, str, str | None, str | None, dict[str, Any]]
"""(ts, session_id, event_id, message, attrs): what `decode_fields` returns."""


def decode_fields(data: bytes | str) -> Fields:
    """`LogEvent.decode(data)`'s (ts, session_id, event_id, message, attrs), without
    building the LogEvent: what a consumer's per-event hot loop needs (the message only
    matters when event_id is None). Exactly the same checks and DecodeError reasons as
    `LogEvent.decode` (a property test compares them)."""
    try:
        if type(data) is bytes and len(data) <= f.MAX_RECORD_BYTES:
            try:
                obj = _loads(data)
            except _JSONDecodeError as e:
                raise DecodeError(f"not valid JSON: {e}") from None
            if type(obj) is not dict:
                raise DecodeError(f"event must be a JSON object, got {type(obj).__name__}")
        else:
            obj = f.load_object(data, "event")
        plain = _plain_fields(obj)
        if plain is not None:
            return plain[0], plain[2], plain[3], plain[5], plain[6]
        event = LogEvent.from_dict(obj)
        return event.ts, event.session_id, event.event_id, event.message, event.attrs
    except DecodeError:
        raise
    except Exception as e:  # defensive: the consumer must never crash on input
        raise DecodeError(f"undecodable event: {type(e).__name__}: {e}") from None
