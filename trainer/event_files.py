"""Events files as sessions, for `logad evaluate`: LogEvent JSON lines (plain or .gz), raw
ones (a message, no event_id) mapped to template ids as serve maps them
(trainer/mining/matcher.py).

Each session id's events, ordered by time and then by line, are one session. An evaluation
file is either this or a session file; `is_events_file` tells them apart by the first line.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import orjson

from schemas.errors import DataError, DecodeError
from schemas.events import LogEvent
from trainer.mining.matcher import TemplateMatcher, event_id_for
from trainer.time_gaps import TimedEvents

_GZIP_MAGIC = b"\x1f\x8b"


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        yield from gzip.GzipFile(fileobj=raw) if gz else raw


def is_events_file(path: Path) -> bool:
    """Whether the file's first record is a LogEvent (it has a session_id and no events
    list), not a Session. A `.json` file is a session array."""
    if path.suffix == ".json":
        return False
    for raw in _lines(path):
        if raw.strip():
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return False  # the session reader reports it
            return isinstance(obj, dict) and "events" not in obj and "session_id" in obj
    return False


def read_event_sessions(path: Path, matcher: TemplateMatcher | None) -> list[tuple[str, ...]]:
    """The file's sessions as event-id sequences (`TimedEvents`, with the gaps between
    their events' times), in order of first appearance. A bad line, or a raw event without
    templates to map it, is a DataError naming the line."""
    sessions: dict[str, list[tuple[int, int, str]]] = {}
    for lineno, raw in enumerate(_lines(path), 1):
        if not raw.strip():
            continue
        try:
            event = LogEvent.decode(raw)
            eid = event_id_for(event.event_id, event.message, event.ts, matcher)
        except DecodeError as e:
            raise DataError(f"{path}:{lineno}: {e}") from None
        sessions.setdefault(event.session_id, []).append((event.ts, lineno, eid))
    return [_timed(sorted(events)) for events in sessions.values()]


def _timed(events: list[tuple[int, int, str]]) -> TimedEvents:
    """The session's event ids in time order, with the gaps between their times."""
    ts = [t for t, _n, _e in events]
    gaps = (0, *(b - a for a, b in pairwise(ts))) if ts else ()
    return TimedEvents((e for _t, _n, e in events), gaps)
