"""`Session`: one line of a daily file, and the unit the trainer reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    events: tuple[str, ...]
    start_ts: int | None = None
    end_ts: int | None = None
    label: int | None = None
    """1 anomalous, 0 normal, None unknown."""
    score: float | None = None
    """Set by the stream's archive: the window's anomaly score."""
    alerted: bool | None = None
    """Set by the stream's archive: whether the window raised an alert."""
    ended: bool = True
    """False for a window the stream cut while its session went on (`Window.ended`): the
    trainer gives it no session-end marker. In a line only when False."""
    pattern: tuple[str, ...] | None = None
    """Set by the stream's archive on a window that alerted: its alert pattern, the
    surprising event ids over the threshold (`schemas.scores.alert_pattern`)."""
    threshold: float | None = None
    """Set by the stream's archive: the threshold the window was judged at."""
    gaps_ms: tuple[int, ...] | None = None
    """Per event, the milliseconds since the session's previous event (the first 0), when
    the source knew the events' times; a time-aware model (`time_buckets`) sees them. In a
    line only when known."""

    def __post_init__(self) -> None:
        if self.gaps_ms is not None:
            f.check_gaps(self.gaps_ms, "gaps_ms", len(self.events))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"session_id": self.session_id, "events": list(self.events)}
        for name in ("start_ts", "end_ts", "label", "score", "alerted"):
            v = getattr(self, name)
            if v is not None:
                d[name] = v
        if not self.ended:
            d["ended"] = False
        if self.pattern is not None:
            d["pattern"] = list(self.pattern)
        if self.threshold is not None:
            d["threshold"] = self.threshold
        if self.gaps_ms is not None:
            d["gaps_ms"] = list(self.gaps_ms)
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Session:
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or label not in (0, 1)):
            raise DecodeError(f"must be 0 or 1, got {label!r}", "label")
        score = obj.get("score")
        alerted = obj.get("alerted")
        pattern = obj.get("pattern")
        threshold = obj.get("threshold")
        events = f.id_list(f.req(obj, "events"), "events")
        return cls(
            session_id=f.ident(f.req(obj, "session_id"), "session_id"),
            events=events,
            start_ts=f.opt_ts(obj.get("start_ts"), "start_ts"),
            end_ts=f.opt_ts(obj.get("end_ts"), "end_ts"),
            label=label,
            score=None if score is None else f.number(score, "score"),
            alerted=None if alerted is None else f.boolean(alerted, "alerted"),
            ended=f.boolean(obj.get("ended", True), "ended"),
            pattern=None if pattern is None else f.id_list(pattern, "pattern"),
            threshold=None if threshold is None else f.number(threshold, "threshold"),
            gaps_ms=f.opt_gaps(obj.get("gaps_ms"), "gaps_ms", len(events)),
        )

    @classmethod
    def decode(cls, data: bytes | str) -> Session:
        return cls.from_dict(f.load_object(data, "session"))
