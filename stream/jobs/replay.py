"""`logad replay`: historical data through the same sessionizer and scorer as `logad serve`.

Sources (each yields `(event, partition, offset, label)` in a deterministic order):

- daily files: each Session line becomes its events, in order, at one synthetic event time
  per line spaced more than the gap apart, so every line closes as its own window (a line
  over 510 events is split as the stream splits it). Offsets are the running event index,
  partition -1. The windows then get the line's real start/end times back, and its
  per-event gaps (`gaps_ms`, for a time-aware bundle) when the line has them.
- an events file of LogEvent JSON lines (optionally .gz) in time order; partition 0,
  offset = line index. A label may ride in `attrs.label`, as simulated traffic has it.
  Raw events (a message, no event_id) are mapped to template ids as serve maps them, with
  the bundle's templates (trainer/mining/matcher.py); new templates get new ids in input
  order, and their text rides in the Scores' surprising events.
- a Kafka topic between two times, through `offsets_for_times`, consumed with no group
  (assigned partitions, no commits), so no committed offset moves.

Determinism: no wall clock enters the output. The sessionizer runs on event time only (no
idle flush; everything left open is flushed at the end), `scored_at` is each window's last
event time, and the Scores are written sorted by (first_ts, session_id, window_index,
window_id). The same input and bundle give byte-identical output.
"""

from __future__ import annotations

import bisect
import dataclasses
import gzip
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import structlog

from schemas.daily_files import find_daily_files, read_sessions
from schemas.errors import ConfigError, DataError, DecodeError
from schemas.events import LogEvent
from schemas.runtime.settings import only
from schemas.scores import Score
from schemas.signing import BundleKeySettings
from schemas.windows import Window
from stream.serve.sessionizer import Sessionizer
from stream.serve.settings import KafkaSettings, SessionizerSettings
from trainer.mining.matcher import TemplateMatcher, event_id_for, with_new_templates
from trainer.scorer_settings import ScorerSettings

log = structlog.get_logger(__name__)

LIVE_SCORES_TOPIC = "logad.scores"
_SERVICE = "replay"


_NEVER_MS = 1 << 60
"""Replay never flushes by wall clock: it runs on event time only."""


@dataclass(frozen=True)
class ReplaySettings:
    """Every knob of `logad replay`: the stream's sessionizer and scorer, offline."""

    batch_windows: int = 256
    """Windows handed to the scorer at a time."""
    kafka: KafkaSettings = field(default=KafkaSettings(client_id="logad-replay"))
    sessionizer: SessionizerSettings = field(
        default=SessionizerSettings(idle_timeout_ms=_NEVER_MS),
        metadata=only(
            "gap_ms", "max_events", "max_duration_ms", "max_open_sessions", "allowed_lateness_ms"
        ),
    )
    scoring: ScorerSettings = field(default=ScorerSettings())
    signing: BundleKeySettings = field(default=BundleKeySettings())

    def __post_init__(self) -> None:
        if self.batch_windows < 1:
            raise ValueError("batch_windows must be >= 1")


Item = tuple[LogEvent, int, int, int | None]
Progress = Callable[[int, str], None]
"""Called with (work units done since the last call, a short description)."""


def _noop(n: int, what: str) -> None:
    pass


# ---- sources


@dataclass
class DaySource:
    """Daily files as events. `restore` gives windows their lines' real times back."""

    files: list[Path]
    gap_ms: int
    _bases: list[int] = dataclasses.field(default_factory=list)
    _times: list[tuple[int, int] | None] = dataclasses.field(default_factory=list)
    _gaps: list[tuple[int, ...] | None] = dataclasses.field(default_factory=list)

    def total(self) -> int:
        return sum(p.stat().st_size for p in self.files)

    def items(self, progress: Progress = _noop) -> Iterator[Item]:
        offset = 0
        line = 0
        step = self.gap_ms + 1
        for path in self.files:
            for s in read_sessions(path, strict=False):
                ts = line * step
                self._bases.append(offset)
                times = (s.start_ts, s.end_ts) if s.start_ts is not None and s.end_ts else None
                self._times.append(times)
                self._gaps.append(s.gaps_ms)
                for e in s.events:
                    yield LogEvent(ts, _SERVICE, s.session_id, e), -1, offset, s.label
                    offset += 1
                line += 1
                progress(len(s.encode()) + 1, path.name)

    def restore(self, w: Window) -> Window:
        k = bisect.bisect_right(self._bases, w.first_offset) - 1
        if k < 0:
            return w
        # The synthetic times gave every gap 0: the line's own, or none known.
        line_gaps = self._gaps[k]
        gaps = None
        if line_gaps is not None:
            a = w.first_offset - self._bases[k]
            gaps = (0, *line_gaps[a + 1 : a + len(w.events)])
        times = self._times[k]
        if times is None:
            return dataclasses.replace(w, gaps_ms=gaps)
        return dataclasses.replace(w, first_ts=times[0], last_ts=times[1], gaps_ms=gaps)


def day_files(days_dir: Path, from_date: date | None, to_date: date | None) -> list[Path]:
    files = [f.path for f in find_daily_files([days_dir], from_date, to_date)]
    if not files:
        raise DataError(f"no daily files in {days_dir} between {from_date} and {to_date}")
    return files


def _open_events(path: Path) -> tuple[IO[bytes] | gzip.GzipFile, Callable[[], int]]:
    raw = path.open("rb")
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw), raw.tell
    return raw, raw.tell


_WARN_UNDECODABLE = 10
"""Undecodable lines logged one by one; the rest are counted in one summary line."""


def event_items(path: Path, progress: Progress = _noop) -> Iterator[Item]:
    """LogEvent lines of a file, as partition 0 with the line index as offset. A file of
    session lines (a daily file given as --events) is refused at its first line."""
    fh, pos = _open_events(path)
    last = bad = 0
    with fh:
        for i, raw in enumerate(fh):
            if not raw.strip():
                continue
            try:
                event = LogEvent.decode(raw)
            except DecodeError as e:
                if bad == 0 and _is_session_line(raw):
                    raise DataError(
                        f"{path} holds session lines (a daily file), not LogEvents: "
                        "replay it with --days-dir"
                    ) from None
                bad += 1
                if bad <= _WARN_UNDECODABLE:
                    log.warning(
                        "replay_event_undecodable", path=str(path), line=i + 1, error=str(e)
                    )
                continue
            yield event, 0, i, event.label
            if i % 1024 == 0:
                now = pos()
                progress(now - last, path.name)
                last = now
        progress(pos() - last, path.name)
    if bad > _WARN_UNDECODABLE:
        log.warning("replay_events_undecodable", path=str(path), lines=bad)


def _is_session_line(raw: bytes) -> bool:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and "events" in obj and "session_id" in obj


def in_time_range(items: Iterator[Item], from_ms: int | None, to_ms: int | None) -> Iterator[Item]:
    """The items whose event time (the event's own `ts`) lies in [from_ms, to_ms)."""
    lo = from_ms if from_ms is not None else -(2**63)
    hi = to_ms if to_ms is not None else 2**63
    for item in items:
        if lo <= item[0].ts < hi:
            yield item


# ---- the pipeline


def sessionize(
    items: Iterator[Item],
    settings: ReplaySettings,
    batch: int,
    matcher: TemplateMatcher | None = None,
) -> Iterator[list[Window]]:
    """Windows as the sessionizer closes them, in chunks of about `batch`; raw events get
    their ids from `matcher` (without one, a raw event is a DataError)."""
    sessions = Sessionizer(settings.sessionizer)
    add = sessions.add_fields
    pending: list[Window] = []
    for event, partition, offset, label in items:
        try:
            eid = event_id_for(event.event_id, event.message, event.ts, matcher)
        except DecodeError as e:
            raise DataError(f"event at partition {partition} offset {offset}: {e}") from None
        add(pending, event.ts, event.session_id, eid, partition, offset, 0, label)
        if len(pending) >= batch:
            yield pending
            pending = []
    pending += sessions.flush_all(ended=True)  # the file is over, and so are its sessions
    if pending:
        yield pending


def replay_scores(
    items: Iterator[Item],
    scorer: Any,
    settings: ReplaySettings,
    restore: Callable[[Window], Window] | None = None,
    matcher: TemplateMatcher | None = None,
    on_scored: Callable[[list[tuple[Window, Score]]], None] | None = None,
) -> list[Score]:
    """Every window's Score, sorted; `scored_at` is the window's last event time.
    `on_scored` gets each batch's windows with their Scores as they are scored (the
    archive, as serve's scoring thread hands them to it)."""
    scores: list[Score] = []
    for windows in sessionize(items, settings, settings.batch_windows, matcher):
        if restore is not None:
            windows = [restore(w) for w in windows]
        batch = []
        for w, s in zip(windows, scorer.score_windows(windows, 0), strict=True):
            s = with_new_templates(s, matcher)
            batch.append((w, dataclasses.replace(s, scored_at=w.last_ts)))
        if on_scored is not None:
            on_scored(batch)
        scores += (s for _, s in batch)
    scores.sort(key=lambda s: (s.first_ts, s.session_id, s.window_index, s.window_id))
    return scores


def write_scores(path: Path, scores: Sequence[Score]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        for s in scores:
            fh.write(s.encode() + b"\n")
    tmp.replace(path)


def check_out_topic(topic: str, force: bool) -> None:
    if topic == LIVE_SCORES_TOPIC and not force:
        raise ConfigError(
            f"--out-topic {topic} is the live scores topic; replay into another topic "
            "(or pass --force)"
        )


# ---- evaluation against labelled session files


def read_labels(files: Sequence[Path]) -> dict[str, int]:
    labels: dict[str, int] = {}
    for p in files:
        for s in read_sessions(p, strict=False):
            if s.label is not None:
                labels[s.session_id] = s.label
    if not labels:
        raise DataError(f"no labelled sessions in {', '.join(map(str, files))}")
    return labels


@dataclass(frozen=True)
class BlockEvaluation:
    detection: dict[str, Any]
    sessions_labelled: int
    sessions_scored: int
    missing: int


def evaluate_blocks(scores: Sequence[Score], labels: dict[str, int]) -> BlockEvaluation:
    """Per session (block): its highest window score against the threshold."""
    from trainer.metrics import detection

    best: dict[str, float] = {}
    threshold = scores[0].threshold if scores else 0.0
    for s in scores:
        if s.score > best.get(s.session_id, -np.inf):
            best[s.session_id] = s.score
    normal = [best[sid] for sid, lb in labels.items() if lb == 0 and sid in best]
    abnormal = [best[sid] for sid, lb in labels.items() if lb == 1 and sid in best]
    if not normal or not abnormal:
        raise DataError(
            f"the replay scored {len(normal)} labelled normal and {len(abnormal)} labelled "
            "abnormal sessions; need both"
        )
    det = detection(normal, abnormal, threshold)
    missing = sum(1 for sid in labels if sid not in best)
    return BlockEvaluation(det.to_dict(), len(labels), len(normal) + len(abnormal), missing)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)


def is_tty() -> bool:
    return isinstance(sys.stderr, io.TextIOBase) and sys.stderr.isatty()
