"""Operator feedback: sessions or time spans an operator marked anomalous, or acknowledged as
normal. One JSON object per line in a feedback file (`feedback.jsonl`), appended by the
console or by hand, read by `logad retrain`:

    {"verdict": "anomalous", "session_id": "req-3dc3639b", "note": "db outage"}
    {"verdict": "normal", "session_id": "req-77aa", "note": "deploy restart, expected"}
    {"verdict": "anomalous", "start": "2026-12-04T10:00:00Z", "end": "2026-12-04T10:20:00Z",
     "service": "order-manager", "note": "incident 4711"}

A line names either one session or a time span (optionally narrowed to a service); `time`
(when the operator said it) and `by` are optional. A later line about the same session
overrides an earlier one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from schemas._fields import ident, load_object, opt_text, req
from schemas.errors import DataError, DecodeError

Verdict = Literal["anomalous", "normal"]
VERDICTS: tuple[Verdict, ...] = ("anomalous", "normal")


@dataclass(frozen=True)
class Feedback:
    """One operator verdict on a session, or on every session in [start_ms, end_ms)."""

    verdict: Verdict
    session_id: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    service: str | None = None
    note: str | None = None
    by: str | None = None
    time: str | None = None

    def __post_init__(self) -> None:
        span = self.start_ms is not None or self.end_ms is not None
        if (self.session_id is None) == (not span):
            raise DecodeError("give either session_id or start and end, not both or neither")
        if span and (self.start_ms is None or self.end_ms is None):
            raise DecodeError("a time span needs both start and end")
        if self.end_ms is not None and self.start_ms is not None and self.end_ms <= self.start_ms:
            raise DecodeError("end must be after start", "end")

    def covers(self, session_id: str, ts_ms: int | None, service: str | None = None) -> bool:
        """Whether this verdict is about that session (its id, or a time inside the span,
        on the span's service when the span names one)."""
        if self.session_id is not None:
            return self.session_id == session_id
        if ts_ms is None or self.start_ms is None or self.end_ms is None:
            return False
        if self.service is not None and service is not None and service != self.service:
            return False
        return self.start_ms <= ts_ms < self.end_ms

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"verdict": self.verdict}
        if self.session_id is not None:
            d["session_id"] = self.session_id
        if self.start_ms is not None and self.end_ms is not None:
            d["start"] = _iso(self.start_ms)
            d["end"] = _iso(self.end_ms)
        for name in ("service", "note", "by", "time"):
            v = getattr(self, name)
            if v is not None:
                d[name] = v
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _time_ms(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise DecodeError(f"must be an ISO 8601 time string, got {type(value).__name__}", name)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise DecodeError(f"not an ISO 8601 time: {value!r}", name) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def decode_feedback(data: bytes | str) -> Feedback:
    """One feedback line; DecodeError names the field that is wrong."""
    obj = load_object(data, "a feedback line")
    verdict = req(obj, "verdict")
    if verdict not in VERDICTS:
        raise DecodeError(f"must be one of {', '.join(VERDICTS)}, got {verdict!r}", "verdict")
    sid = obj.get("session_id")
    return Feedback(
        verdict=verdict,
        session_id=ident(sid, "session_id") if sid is not None else None,
        start_ms=_time_ms(obj["start"], "start") if obj.get("start") is not None else None,
        end_ms=_time_ms(obj["end"], "end") if obj.get("end") is not None else None,
        service=opt_text(obj.get("service"), "service", 512),
        note=opt_text(obj.get("note"), "note"),
        by=opt_text(obj.get("by"), "by", 512),
        time=opt_text(obj.get("time"), "time", 64),
    )


def read_feedback(path: Path) -> list[Feedback]:
    """Every verdict in a feedback file, in order; a bad line is a DataError with its
    line number (an operator's file is small, and a silently dropped verdict would train
    an incident in as normal)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        raise DataError(f"cannot read feedback file {path}: {e.strerror}") from None
    out: list[Feedback] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(decode_feedback(line))
        except DecodeError as e:
            raise DataError(f"{path}:{n}: {e}") from None
    return out


def append_feedback(path: Path, items: Iterable[Feedback]) -> None:
    """Append verdicts, one line each, flushed to disk before returning."""
    data = b"".join(fb.encode() + b"\n" for fb in items)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def session_verdicts(items: Iterable[Feedback]) -> dict[str, Verdict]:
    """The last verdict given for each session named by id."""
    return {fb.session_id: fb.verdict for fb in items if fb.session_id is not None}


def spans(items: Iterable[Feedback]) -> Iterator[Feedback]:
    """The verdicts about time spans."""
    return (fb for fb in items if fb.session_id is None)
