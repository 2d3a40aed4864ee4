"""`LogEvent`: the value of a message on the input topic. The message key is the session id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DecodeError

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class LogEvent:
    ts: int
    """Event time, epoch milliseconds (ISO-8601 with a zone is accepted on input)."""
    service: str
    session_id: str
    event_id: str
    """The log template id: the token the model sees."""
    level: str | None = None
    message: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ts": self.ts,
            "service": self.service,
            "session_id": self.session_id,
            "event_id": self.event_id,
        }
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
        return cls(
            ts=f.timestamp_ms(f.req(obj, "ts"), "ts"),
            service=f.ident(f.req(obj, "service"), "service"),
            session_id=f.ident(f.req(obj, "session_id"), "session_id"),
            event_id=f.ident(f.req(obj, "event_id"), "event_id"),
            level=f.opt_text(obj.get("level"), "level", 32),
            message=f.opt_text(obj.get("message"), "message"),
            attrs=attrs,
        )

    @classmethod
    def decode(cls, data: bytes | str) -> LogEvent:
        """Decode one message value. Raises DecodeError, never anything else."""
        try:
            return cls.from_dict(f.load_object(data, "event"))
        except DecodeError:
            raise
        except Exception as e:  # defensive: the consumer must never crash on input
            raise DecodeError(f"undecodable event: {type(e).__name__}: {e}") from None
