"""`DailyArchive`: the stream's record of every scored window, as daily session files.

Each scored window becomes one `Session` line (its events, times, label, score, the
threshold it was judged at, whether it alerted and, if it did, its alert pattern) in
`DIR/preprocessed_logs_YYYY-MM-DD.jsonl`, the day being the UTC date of the window's last
event. Lines are appended with one `os.write` of whole lines on an O_APPEND descriptor, so a
crash can only tear the tail of the file: `read_sessions` skips a partial last line with a
warning, and reopening a day for append first cuts such a tail off (so the
next line never glues onto it). Files are fsynced when they are rotated out and at close.

A day is complete once the stream's watermark has passed its end plus a grace: then a
`.done` marker is written beside it, and the nightly trainer (which reads complete days only)
may use it. A complete day is never appended to: a window that ends on it and is scored
later (a straggler past the grace, a partition that lagged) goes to `DIR/late/`, a daily
file of the same name and format that the trainer does not read. `ArchiveTap` is how
`logad serve` drives it.

With raw events, the lines hold the template ids serve mined, and serve's template set goes
to `DIR/templates.json` (atomically) before any day is marked complete, and at shutdown: a
complete day's ids are all in it, and `logad train` on the directory finds it there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path

import structlog

from schemas.daily_files import DONE_SUFFIX, daily_file_name, day_of
from schemas.scores import Score
from schemas.sessions import Session
from schemas.templates import TemplateSet, write_templates
from schemas.windows import Window

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
TEMPLATES_FILE = "templates.json"
LATE_DIR = "late"
_EPOCH = date(1970, 1, 1)


# ---- pure day math


def utc_day(ts_ms: int) -> date:
    """The UTC date holding the epoch-ms instant `ts_ms`."""
    return _EPOCH + timedelta(days=ts_ms // DAY_MS)


def day_end_ms(day: date) -> int:
    """Epoch ms of the first instant after `day` (its next UTC midnight)."""
    return ((day - _EPOCH).days + 1) * DAY_MS


def completed_days(days: Iterable[date], watermark_ms: int, grace_ms: int) -> list[date]:
    """The days whose end plus `grace_ms` the watermark has reached, oldest first."""
    return sorted(d for d in set(days) if day_end_ms(d) + grace_ms <= watermark_ms)


def session_line(window: Window, score: Score) -> bytes:
    """The archive line of one scored window (a `Session`, newline-terminated)."""
    return (
        Session(
            session_id=window.session_id,
            events=window.events,
            start_ts=window.first_ts,
            end_ts=window.last_ts,
            label=window.label,
            score=score.score,
            alerted=score.anomalous,
            ended=window.ended,
            pattern=score.pattern if score.anomalous else None,
            threshold=score.threshold,
            gaps_ms=window.gaps_ms,
        ).encode()
        + b"\n"
    )


def cut_torn_tail(path: Path) -> int:
    """Truncate a file after its last newline; returns the bytes removed (0 if none)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as fh:
        pos = size
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            data = fh.read(pos - start)
            if pos == size and data.endswith(b"\n"):
                return 0
            nl = data.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return size - keep


class DailyArchive:
    """Appends scored windows to daily files; one open descriptor per day written to."""

    def __init__(
        self,
        directory: Path,
        *,
        grace_ms: int = 0,
        templates: Callable[[], TemplateSet | None] | None = None,
    ) -> None:
        """`templates`: the template set the lines' ids come from, written beside them."""
        self.dir = directory
        self.grace_ms = grace_ms
        self.templates = templates
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fds: dict[date, int] = {}
        self._late_fds: dict[date, int] = {}
        self._done: set[date] = set()
        """Days known complete (a marker is never removed)."""
        self._newest: date | None = None

    def path_for(self, day: date) -> Path:
        return self.dir / daily_file_name(day)

    def append(self, window: Window, score: Score) -> None:
        self.append_many([(window, score)])

    def append_many(self, scored: Iterable[tuple[Window, Score]]) -> None:
        """Append a batch: one write per day touched, each of whole lines."""
        by_day: dict[date, list[bytes]] = {}
        for window, score in scored:
            by_day.setdefault(utc_day(window.last_ts), []).append(session_line(window, score))
        for day, lines in sorted(by_day.items()):
            fd = self._late_fd(day) if self._is_done(day) else self._fd(day)
            data = b"".join(lines)
            written = os.write(fd, data)
            while written < len(data):  # a short write on a regular file: finish it
                written += os.write(fd, data[written:])

    def _is_done(self, day: date) -> bool:
        if day not in self._done and self._done_path(day).exists():
            self._done.add(day)
        return day in self._done

    def _late_fd(self, day: date) -> int:
        fd = self._late_fds.get(day)
        if fd is None:
            path = self.dir / LATE_DIR / daily_file_name(day)
            path.parent.mkdir(exist_ok=True)
            # The watermark said the day was over: the trainer may have read it already.
            log.warning("archive_late_window", day=day.isoformat(), path=str(path))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._late_fds[day] = fd
        return fd

    def _fd(self, day: date) -> int:
        fd = self._fds.get(day)
        if fd is not None:
            return fd
        path = self.path_for(day)
        if path.exists():
            cut = cut_torn_tail(path)
            if cut:
                log.warning("archive_torn_tail_repaired", path=str(path), bytes_removed=cut)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fds[day] = fd
        if self._newest is None or day > self._newest:
            # Rotation: a new day starts, so days two or more back are unlikely to get more.
            self._newest = day
            for old in [d for d in self._fds if d < day - timedelta(days=1)]:
                self._close_day(old)
        return fd

    def _close_day(self, day: date) -> None:
        fd = self._fds.pop(day)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("archive_day_closed", day=day.isoformat())

    def existing_days(self) -> list[date]:
        return sorted(d for p in self.dir.iterdir() if (d := day_of(p)) is not None)

    def mark_complete(self, watermark_ms: int) -> list[date]:
        """Write a `.done` marker for each day the watermark has passed (end + grace);
        returns the days newly marked."""
        marked = []
        days = completed_days(self.existing_days(), watermark_ms, self.grace_ms)
        days = [d for d in days if not self._done_path(d).exists()]
        if days:
            self.write_templates()  # first: a complete day's ids are all in it
        for day in days:
            done = self._done_path(day)
            if day in self._fds:
                self._close_day(day)  # fsync before the marker says it is whole
            done.write_bytes(b"")
            self._done.add(day)
            marked.append(day)
            log.info("archive_day_complete", day=day.isoformat(), watermark_ms=watermark_ms)
        return marked

    def _done_path(self, day: date) -> Path:
        path = self.path_for(day)
        return path.with_name(path.name + DONE_SUFFIX)

    def write_templates(self) -> None:
        templates = self.templates() if self.templates is not None else None
        if templates is not None:
            write_templates(self.dir / TEMPLATES_FILE, templates)
            log.info("archive_templates_written", templates=len(templates.templates))

    def close(self) -> None:
        for day in list(self._fds):
            self._close_day(day)
        for fd in self._late_fds.values():
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._late_fds.clear()
        self.write_templates()

    def __enter__(self) -> DailyArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArchiveTap:
    """`logad serve`'s side of the archive.

    Appends come from the scoring thread, right after a batch is scored; submissions and
    completion ticks come from the event loop, so one lock guards the archive. A day is
    marked complete only for a watermark whose windows are all on disk: each tick snapshots
    (watermark, windows submitted so far), and the snapshot is used at a later tick, once
    every window submitted before it has been appended (batches may finish out of order).
    One snapshot is pending at a time, so the bookkeeping stays bounded.
    """

    def __init__(self, archive: DailyArchive) -> None:
        self.archive = archive
        self._lock = threading.Lock()
        self._epoch = 0
        self._unwritten: dict[int, int] = {}  # epoch -> its windows not yet appended
        self._epoch_of: dict[int, int] = {}  # id(window) -> epoch; windows are held meanwhile
        self._pending: tuple[int, int] | None = None  # (epoch, watermark)

    def submitted(self, windows: Sequence[Window]) -> None:
        if not windows:
            return
        with self._lock:
            e = self._epoch
            for w in windows:
                self._epoch_of[id(w)] = e
            self._unwritten[e] = self._unwritten.get(e, 0) + len(windows)

    def append(self, scored: list[tuple[Window, Score]]) -> None:
        with self._lock:
            self.archive.append_many(scored)
            for w, _ in scored:
                e = self._epoch_of.pop(id(w), None)
                if e is None:
                    continue  # not submitted through this tap
                left = self._unwritten[e] - 1
                if left:
                    self._unwritten[e] = left
                else:
                    del self._unwritten[e]

    def tick(self, watermark_ms: int | None) -> list[date]:
        """Mark the days a fully written snapshot completes; take a new snapshot."""
        marked: list[date] = []
        with self._lock:
            if self._pending is not None:
                epoch, wm = self._pending
                if min(self._unwritten, default=epoch + 1) > epoch:
                    marked = self.archive.mark_complete(wm)
                    self._pending = None
            if self._pending is None and watermark_ms is not None:
                self._pending = (self._epoch, watermark_ms)
                self._epoch += 1
        return marked

    def close(self, watermark_ms: int | None = None, *, mark: bool = True) -> list[date]:
        """At shutdown, once every window is scored: mark what `watermark_ms` (the last
        watermark, else the pending one) completes, then fsync and close every day.
        `mark=False` when open windows were handed back: their days are not whole yet."""
        marked: list[date] = []
        with self._lock:
            if watermark_ms is None and self._pending is not None:
                watermark_ms = self._pending[1]
            if mark and watermark_ms is not None and not self._unwritten:
                marked = self.archive.mark_complete(watermark_ms)
            self._pending = None
            self.archive.close()
        return marked
