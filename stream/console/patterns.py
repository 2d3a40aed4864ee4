"""Alerts grouped by pattern, so that one incident is one row and not fifty, and the
acknowledgements that hide a group.

An alert's pattern is the set of its surprising events whose NLL passes the threshold:
a window scores its largest NLL, so these are the events that made it an alert. The
rest of the top five are the least unlikely of an ordinary window and vary from one
session to the next; grouping on them would split one incident into many groups. An
alert with no such event (a score from a rule, not an NLL) is named by its most
surprising event.

An acknowledgement hides a group's alerts scored up to the newest one it had when it was
acknowledged; a later alert of the same pattern shows the group again, as a new
occurrence. Acknowledgements live in memory and, with an ack file, one JSON line each:

    {"pattern": ["T12", "T40"], "until_ms": 1764900000000, "time": "2026-12-05T10:00:00Z"}
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import structlog

from schemas.errors import DataError
from schemas.scores import Alert

log = structlog.get_logger(__name__)

Pattern = tuple[str, ...]


def pattern_of(alert: Alert) -> Pattern:
    """The alert's pattern (`Alert.pattern`)."""
    return alert.pattern


def pattern_key(pattern: Pattern) -> str:
    """A short, stable id of a pattern, for the page and the API."""
    return hashlib.sha1(orjson.dumps(list(pattern))).hexdigest()[:12]


@dataclass
class Group:
    """The alerts of one pattern, newest first."""

    pattern: Pattern
    alerts: list[Alert] = field(default_factory=list)
    acked_until: int | None = None
    """Alerts scored up to this time (ms) are acknowledged."""

    @property
    def key(self) -> str:
        return pattern_key(self.pattern)

    @property
    def open_alerts(self) -> list[Alert]:
        """The alerts not acknowledged."""
        if self.acked_until is None:
            return self.alerts
        return [a for a in self.alerts if a.scored_at > self.acked_until]

    @property
    def hidden(self) -> bool:
        return not self.open_alerts

    @property
    def last_ms(self) -> int:
        return max(a.scored_at for a in self.alerts)


def group_alerts(alerts: Iterable[Alert], acks: Mapping[Pattern, int]) -> list[Group]:
    """Groups by pattern, the group with the newest alert first; alerts newest first."""
    groups: dict[Pattern, Group] = {}
    for a in alerts:
        p = pattern_of(a)
        g = groups.get(p)
        if g is None:
            g = groups[p] = Group(p, acked_until=acks.get(p))
        g.alerts.append(a)
    for g in groups.values():
        g.alerts.sort(key=lambda a: a.scored_at, reverse=True)
    return sorted(groups.values(), key=lambda g: g.last_ms, reverse=True)


class Acks:
    """Acknowledged patterns: pattern -> alerts scored up to this time are acknowledged.
    With a `path`, loaded from it at start and appended to on each acknowledgement."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.until: dict[Pattern, int] = {}
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
                pattern = tuple(str(e) for e in obj["pattern"])
                until = int(obj["until_ms"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise DataError(f"{path}:{n}: not an acknowledgement line") from None
            self.until[pattern] = max(until, self.until.get(pattern, until))

    def acknowledge(self, pattern: Pattern, until_ms: int, now: datetime | None = None) -> None:
        self.until[pattern] = max(until_ms, self.until.get(pattern, until_ms))
        if self.path is None:
            return
        when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        line = orjson.dumps({"pattern": list(pattern), "until_ms": until_ms, "time": when})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            fh.write(line + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.info("console_group_acknowledged", pattern=list(pattern), until_ms=until_ms)
