"""On-disk cache of tokenized daily files, keyed by each file's content hash.

A cached file holds *file-local* integer codes: `events.json` lists the file's distinct event
ids, and `codes.npy` holds, window after window, each event's index into that list. The
training vocab is applied at load time through a small lookup table (one vectorized take),
so a cache entry stays valid whatever vocab a run builds or extends, and a nightly run only
tokenizes new or changed days. Sessions longer than MAX_EVENTS are cut with `split_points`,
as the stream cuts them. With `end_marker`, each window is marked by the rule of
trainer/end_marker.py (a separate cache entry, suffixed "-end"). With `time_gaps` (a
time-aware run), each event's gap level (trainer/time_gaps.py) is stored beside its code
(another entry, suffixed "-t"): 0 for a window's first event, the marker, and a session
without `gaps_ms`.

    <cache_dir>/v1-<blake2b of content>-w510[-end][-t]/
        events.json        {"events": [...], "n_sessions": N, "n_windows": W, "source": ...}
        codes.npy          uint16 (uint32 past 65535 distinct events), all windows back to back
        offsets.npy        int64, W + 1 window boundaries into codes
        session_hash.npy   uint64 per window: hash of its session_id (the validation split)
        levels.npy         uint8 per event, beside codes (only with time_gaps)
    <cache_dir>/stat-memo.json   path -> [size, mtime_ns, content hash], to skip re-hashing

Entries are written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson
import structlog

from schemas.daily_files import read_sessions
from schemas.errors import DataError
from schemas.sessions import Session
from schemas.windows import MAX_EVENTS, split_points
from trainer.end_marker import END_EVENT, marks
from trainer.time_gaps import gap_levels

log = structlog.get_logger(__name__)

CACHE_FORMAT = 1
MEMO = "stat-memo.json"


@dataclass(frozen=True)
class FileTokens:
    """One daily file's windows, as file-local codes (memory-mapped when loaded)."""

    key: str
    events: tuple[str, ...]
    codes: npt.NDArray[np.unsignedinteger]
    offsets: npt.NDArray[np.int64]
    session_hash: npt.NDArray[np.uint64]
    n_sessions: int
    levels: npt.NDArray[np.uint8] | None = None
    """Per event (as `codes`), its gap level; None: not a time-aware entry."""

    @property
    def n_windows(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)


def session_hash(session_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "little")


def encode_sessions(
    sessions: Iterable[Session],
    key: str = "",
    *,
    end_marker: bool = False,
    time_gaps: bool = False,
) -> FileTokens:
    """Pure: split sessions into windows and code their events by first appearance; with
    `end_marker`, append the marker to the windows the rule marks, in sessions that ended
    (a window the stream cut mid-session, archived with `ended` false, gets none); with
    `time_gaps`, keep each event's gap level (a window's first event has none, as the
    stream's windows have none)."""
    table: dict[str, int] = {}
    codes: list[int] = []
    levels: list[npt.NDArray[np.uint8]] = []
    offsets = [0]
    hashes: list[int] = []
    n_sessions = 0
    for s in sessions:
        n_sessions += 1
        h = session_hash(s.session_id)
        for a, b in split_points(len(s.events), MAX_EVENTS):
            codes.extend(table.setdefault(e, len(table)) for e in s.events[a:b])
            if time_gaps:
                gaps = None if s.gaps_ms is None else s.gaps_ms[a:b]
                levels.append(gap_levels(gaps, b - a))
            if end_marker and marks(b - a, s.ended):
                codes.append(table.setdefault(END_EVENT, len(table)))
                if time_gaps:
                    levels.append(np.zeros(1, dtype=np.uint8))
            offsets.append(len(codes))
            hashes.append(h)
    dtype = np.uint16 if len(table) <= 1 << 16 else np.uint32
    return FileTokens(
        key=key,
        events=tuple(table),
        codes=np.asarray(codes, dtype=dtype),
        offsets=np.asarray(offsets, dtype=np.int64),
        session_hash=np.asarray(hashes, dtype=np.uint64),
        n_sessions=n_sessions,
        levels=(np.concatenate(levels) if levels else np.zeros(0, np.uint8)) if time_gaps else None,
    )


def content_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TokenCache:
    """Loads daily files through the cache, tokenizing only those not cached yet; with
    `end_marker`, windows are marked (trainer/end_marker.py); with `time_gaps`, events
    carry their gap levels (trainer/time_gaps.py)."""

    def __init__(
        self, cache_dir: Path, *, end_marker: bool = False, time_gaps: bool = False
    ) -> None:
        self.dir = cache_dir
        self.end_marker = end_marker
        self.time_gaps = time_gaps
        self.hits = 0
        self.misses = 0
        self._memo: dict[str, list[int | str]] = {}
        self._memo_dirty = False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create token cache {cache_dir}: {e.strerror}") from None
        try:
            self._memo = orjson.loads((self.dir / MEMO).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            self._memo = {}

    def key_of(self, path: Path) -> str:
        """The file's content hash (reused while its size and mtime are unchanged)."""
        try:
            st = path.stat()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
        name = str(path.resolve())
        memo = self._memo.get(name)
        if memo and memo[0] == st.st_size and memo[1] == st.st_mtime_ns:
            return str(memo[2])
        digest = content_hash(path)
        self._memo[name] = [st.st_size, st.st_mtime_ns, digest]
        self._memo_dirty = True
        return digest

    def entry_dir(self, key: str) -> Path:
        suffix = ("-end" if self.end_marker else "") + ("-t" if self.time_gaps else "")
        return self.dir / f"v{CACHE_FORMAT}-{key}-w{MAX_EVENTS}{suffix}"

    def load(self, path: Path) -> FileTokens:
        key = self.key_of(path)
        entry = self.entry_dir(key)
        if entry.is_dir():
            try:
                ft = _read_entry(entry, key)
                self.hits += 1
                return ft
            except (OSError, ValueError, KeyError, orjson.JSONDecodeError) as e:
                log.warning("token_cache_entry_unreadable", entry=str(entry), error=str(e))
                shutil.rmtree(entry, ignore_errors=True)
        self.misses += 1
        log.info("tokenizing_daily_file", path=str(path), key=key)
        ft = encode_sessions(
            read_sessions(path, strict=True),
            key,
            end_marker=self.end_marker,
            time_gaps=self.time_gaps,
        )
        _write_entry(entry, ft, path)
        return _read_entry(entry, key)

    def save_memo(self) -> None:
        if not self._memo_dirty:
            return
        tmp = self.dir / f".{MEMO}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(self._memo))
        os.replace(tmp, self.dir / MEMO)
        self._memo_dirty = False


def _write_entry(entry: Path, ft: FileTokens, source: Path) -> None:
    tmp = entry.with_name(f".tmp-{entry.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "codes.npy", ft.codes)
    np.save(tmp / "offsets.npy", ft.offsets)
    np.save(tmp / "session_hash.npy", ft.session_hash)
    if ft.levels is not None:
        np.save(tmp / "levels.npy", ft.levels)
    meta = {
        "format": CACHE_FORMAT,
        "events": list(ft.events),
        "n_sessions": ft.n_sessions,
        "n_windows": ft.n_windows,
        "source": str(source),
    }
    (tmp / "events.json").write_bytes(orjson.dumps(meta))
    try:
        os.replace(tmp, entry)
    except OSError:
        # Another process published the same entry first; its content is identical.
        shutil.rmtree(tmp, ignore_errors=True)


def _read_entry(entry: Path, key: str) -> FileTokens:
    meta = orjson.loads((entry / "events.json").read_bytes())
    offsets = np.load(entry / "offsets.npy", mmap_mode="r")
    timed = entry.name.endswith("-t")
    ft = FileTokens(
        key=key,
        events=tuple(meta["events"]),
        codes=np.load(entry / "codes.npy", mmap_mode="r"),
        offsets=offsets,
        session_hash=np.load(entry / "session_hash.npy", mmap_mode="r"),
        n_sessions=int(meta["n_sessions"]),
        levels=np.load(entry / "levels.npy", mmap_mode="r") if timed else None,
    )
    if ft.levels is not None and len(ft.levels) != len(ft.codes):
        raise ValueError("levels do not match the codes")
    if ft.n_windows != int(meta["n_windows"]) or len(ft.session_hash) != ft.n_windows:
        raise ValueError("window counts disagree")
    if ft.n_windows and int(offsets[-1]) != len(ft.codes):
        raise ValueError("offsets do not cover the codes")
    return ft
