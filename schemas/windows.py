"""`Window`: up to 510 events of one session, as the scorer sees it ([CLS] + events + [SEP])."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DecodeError

MAX_TOKENS = 512
MAX_EVENTS = MAX_TOKENS - 2  # room for [CLS] and [SEP]


def make_window_id(session_id: str, partition: int, first_offset: int, last_offset: int) -> str:
    """Deterministic id: re-reading the same offsets after a crash yields the same id."""
    key = f"{session_id}\x1f{partition}\x1f{first_offset}\x1f{last_offset}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Window:
    window_id: str
    session_id: str
    index: int
    """The window's index within its session (0, 1, ... as a long session is split)."""
    events: tuple[str, ...]
    first_ts: int
    last_ts: int
    partition: int
    """Source partition; -1 for a file source."""
    first_offset: int
    last_offset: int
    late: bool = False
    """True when the window holds events that arrived after their session had closed."""
    label: int | None = None
    """Ground truth, when the source carries one (simulated or evaluation data)."""
    ended: bool = True
    """False when the window was cut while its session may go on (size or duration limit,
    the open-session bound or a shutdown): the scorer then appends no session-end
    marker (trainer/end_marker.py)."""
    gaps_ms: tuple[int, ...] | None = None
    """Per event, the milliseconds since the session's previous event (the first 0: a
    window's first event is scored as if nothing came before), when the source knew the
    events' times; a time-aware bundle (`time_buckets`) scores them. None: unknown."""

    def __post_init__(self) -> None:
        if len(self.events) > MAX_EVENTS:
            raise DecodeError(f"{len(self.events)} events, over {MAX_EVENTS}", "events")
        if self.gaps_ms is not None:
            f.check_gaps(self.gaps_ms, "gaps_ms", len(self.events))

    @classmethod
    def build(
        cls,
        session_id: str,
        index: int,
        events: tuple[str, ...],
        first_ts: int,
        last_ts: int,
        partition: int,
        first_offset: int,
        last_offset: int,
        late: bool = False,
        label: int | None = None,
        ended: bool = True,
        gaps_ms: tuple[int, ...] | None = None,
    ) -> Window:
        return cls(
            make_window_id(session_id, partition, first_offset, last_offset),
            session_id,
            index,
            events,
            first_ts,
            last_ts,
            partition,
            first_offset,
            last_offset,
            late,
            label,
            ended,
            gaps_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "window_id": self.window_id,
            "session_id": self.session_id,
            "index": self.index,
            "events": list(self.events),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "partition": self.partition,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "late": self.late,
        }
        if self.label is not None:
            d["label"] = self.label
        if not self.ended:
            d["ended"] = False
        if self.gaps_ms is not None:
            d["gaps_ms"] = list(self.gaps_ms)
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Window:
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or label not in (0, 1)):
            raise DecodeError(f"must be 0 or 1, got {label!r}", "label")
        events = f.id_list(f.req(obj, "events"), "events")
        return cls(
            window_id=f.ident(f.req(obj, "window_id"), "window_id"),
            session_id=f.ident(f.req(obj, "session_id"), "session_id"),
            index=f.integer(f.req(obj, "index"), "index", 0),
            events=events,
            first_ts=f.timestamp_ms(f.req(obj, "first_ts"), "first_ts"),
            last_ts=f.timestamp_ms(f.req(obj, "last_ts"), "last_ts"),
            partition=f.integer(f.req(obj, "partition"), "partition", -1),
            first_offset=f.integer(f.req(obj, "first_offset"), "first_offset", 0),
            last_offset=f.integer(f.req(obj, "last_offset"), "last_offset", 0),
            late=f.boolean(obj.get("late", False), "late"),
            label=label,
            ended=f.boolean(obj.get("ended", True), "ended"),
            gaps_ms=f.opt_gaps(obj.get("gaps_ms"), "gaps_ms", len(events)),
        )

    @classmethod
    def decode(cls, data: bytes | str) -> Window:
        return cls.from_dict(f.load_object(data, "window"))


def split_points(n_events: int, max_events: int = MAX_EVENTS) -> list[tuple[int, int]]:
    """[start, end) slices that cut a session into consecutive windows of <= max_events.

    The trainer splits long sessions with this, and the stream's sessionizer closes a window
    at the same size, so both see the same windows.
    """
    if n_events <= 0:
        return []
    return [(s, min(s + max_events, n_events)) for s in range(0, n_events, max_events)]
