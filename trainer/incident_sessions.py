"""Sessions with their times (and services, where the input has them), for incident-level
evaluation (trainer/incidents.py).

Three inputs:
- **session files** (daily files): each line's `start_ts`/`end_ts`; no services (a Session
  does not record them);
- **events files** (LogEvent lines, raw ones mapped to template ids with the bundle's
  templates, as `logad evaluate` maps them): a session's span is its first to its last
  event, and its services are its events' `service` fields;
- **scored files**, already judged, so no model is needed: the Score lines `logad replay
  --out` writes (a session's windows grouped by session id; its alert time is the last event
  of its first anomalous window), or daily files serve's archive wrote, whose lines carry
  `score` and `alerted`. Neither records services.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from schemas.daily_files import read_sessions
from schemas.errors import DataError, DecodeError
from schemas.events import LogEvent
from schemas.scores import Score
from schemas.sessions import Session
from trainer.event_files import is_events_file
from trainer.incidents import ScoredSession
from trainer.mining.matcher import TemplateMatcher, event_id_for
from trainer.time_gaps import TimedEvents

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class TimedSession:
    session_id: str
    events: tuple[str, ...]
    start_ms: int
    end_ms: int
    services: frozenset[str] | None


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        yield from gzip.GzipFile(fileobj=raw) if gz else raw


def _span(s: Session, path: Path) -> tuple[int, int]:
    a = s.start_ts if s.start_ts is not None else s.end_ts
    b = s.end_ts if s.end_ts is not None else s.start_ts
    if a is None or b is None:
        raise DataError(
            f"{path}: session {s.session_id} has no start_ts/end_ts: incident evaluation "
            "needs session times (use events files, or session files with times)"
        )
    return a, b


def _event_sessions(path: Path, matcher: TemplateMatcher | None) -> list[TimedSession]:
    rows: dict[str, list[tuple[int, int, str, str]]] = {}
    for lineno, raw in enumerate(_lines(path), 1):
        if not raw.strip():
            continue
        try:
            e = LogEvent.decode(raw)
            eid = event_id_for(e.event_id, e.message, e.ts, matcher)
        except DecodeError as err:
            raise DataError(f"{path}:{lineno}: {err}") from None
        rows.setdefault(e.session_id, []).append((e.ts, lineno, eid, e.service))
    out = []
    for sid, events in rows.items():
        events.sort()
        out.append(
            TimedSession(
                sid,
                # With the gaps between the events' times, for a time-aware bundle.
                TimedEvents(
                    (x[2] for x in events),
                    (0, *(b[0] - a[0] for a, b in pairwise(events))),
                ),
                events[0][0],
                events[-1][0],
                frozenset(x[3] for x in events),
            )
        )
    return out


def read_timed_sessions(
    paths: Iterable[Path], matcher: TemplateMatcher | None = None
) -> list[TimedSession]:
    """Every session of the session or events files, with its span (and services)."""
    out: list[TimedSession] = []
    for p in paths:
        if not p.is_file():
            raise DataError(f"no such session file: {p}")
        if is_events_file(p):
            out.extend(_event_sessions(p, matcher))
        else:
            out.extend(
                TimedSession(s.session_id, _events(s), *_span(s, p), None) for s in read_sessions(p)
            )
    return out


def _events(s: Session) -> tuple[str, ...]:
    return s.events if s.gaps_ms is None else TimedEvents(s.events, s.gaps_ms)


def judged_sessions(
    sessions: Sequence[TimedSession], scores: npt.ArrayLike, threshold: float
) -> list[ScoredSession]:
    """Pure: sessions scored whole (max over windows) judged at `threshold`; the alert time
    is the session's last event."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(sessions),):
        raise ValueError(f"{s.size} scores for {len(sessions)} sessions")
    return [
        ScoredSession(
            t.session_id,
            t.start_ms,
            t.end_ms,
            float(v),
            t.end_ms if v > threshold else None,
            t.services,
        )
        for t, v in zip(sessions, s.tolist(), strict=True)
    ]


@dataclass
class _Acc:
    start: int
    end: int
    score: float
    alert: int | None

    def add(self, start: int, end: int, score: float, alert: int | None) -> None:
        self.start, self.end = min(self.start, start), max(self.end, end)
        self.score = max(self.score, score)
        if alert is not None:
            self.alert = alert if self.alert is None else min(self.alert, alert)


def read_scored_files(paths: Iterable[Path]) -> tuple[list[ScoredSession], set[float]]:
    """Sessions from Score lines or archive lines (module doc), and the thresholds the
    verdicts were made at."""
    acc: dict[str, _Acc] = {}
    thresholds: set[float] = set()
    for p in paths:
        if not p.is_file():
            raise DataError(f"no such scores file: {p}")
        for lineno, raw in enumerate(_lines(p), 1):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
                if isinstance(obj, dict) and "window_id" in obj:
                    sc = Score.from_dict(obj)
                    sid, row = sc.session_id, (sc.first_ts, sc.last_ts, sc.score)
                    alert = sc.last_ts if sc.anomalous else None
                    thresholds.add(sc.threshold)
                elif isinstance(obj, dict):
                    se = Session.from_dict(obj)
                    if se.alerted is None or se.score is None:
                        raise DecodeError("an archive line without score and alerted")
                    a, b = _span(se, p)
                    sid, row = se.session_id, (a, b, se.score)
                    alert = b if se.alerted else None
                else:
                    raise DecodeError("not a Score or a scored session")
            except (orjson.JSONDecodeError, DecodeError) as e:
                raise DataError(f"{p}:{lineno}: {e}") from None
            if sid in acc:
                acc[sid].add(*row, alert)
            else:
                acc[sid] = _Acc(*row, alert)
    sessions = [ScoredSession(k, a.start, a.end, a.score, a.alert) for k, a in acc.items()]
    return sessions, thresholds
