"""Daily files of sessions: `preprocessed_logs_YYYY-MM-DD.jsonl` (or `.json`, a JSON array).

Readers stream: one file at a time, one line at a time. A partial last line (a writer killed
mid-append) is skipped and reported, never treated as data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson
import structlog

from schemas.errors import DataError, DecodeError
from schemas.sessions import Session

DAILY_RE = re.compile(r"^preprocessed_logs_(\d{4}-\d{2}-\d{2})\.jsonl?$")
DONE_SUFFIX = ".done"

log = structlog.get_logger("schemas.daily_files")


def daily_file_name(day: date) -> str:
    return f"preprocessed_logs_{day.isoformat()}.jsonl"


def day_of(path: Path) -> date | None:
    """The date in a daily file's name, or None for any other file name."""
    m = DAILY_RE.match(path.name)
    if not m:
        return None
    try:
        return date.fromisoformat(m.group(1))
    except ValueError:
        return None


def is_complete(path: Path) -> bool:
    """A day is complete once its `.done` marker exists beside it."""
    return path.with_name(path.name + DONE_SUFFIX).exists()


@dataclass(frozen=True)
class DayFile:
    path: Path
    day: date | None


def find_daily_files(
    sources: Sequence[Path],
    from_date: date | None = None,
    to_date: date | None = None,
    complete_only: bool = False,
) -> list[DayFile]:
    """Daily files under the given directories, plus files named explicitly, in date order.

    A directory contributes its `preprocessed_logs_*` files within [from_date, to_date].
    An explicitly named file is always used unless its name carries a date outside the range.
    """
    found: list[DayFile] = []
    for src in sources:
        if src.is_dir():
            for p in src.iterdir():
                d = day_of(p)
                if d is None:
                    continue
                if (from_date and d < from_date) or (to_date and d > to_date):
                    continue
                if complete_only and not is_complete(p):
                    continue
                found.append(DayFile(p, d))
        elif src.is_file():
            d = day_of(src)
            if d is not None and ((from_date and d < from_date) or (to_date and d > to_date)):
                continue
            found.append(DayFile(src, d))
        else:
            raise DataError(f"no such file or directory: {src}")
    found.sort(key=lambda f: (f.day or date.min, str(f.path)))
    return found


def read_sessions(path: Path, *, strict: bool = True) -> Iterator[Session]:
    """Stream the sessions of one daily file.

    A bad line raises DataError naming the file and line number (or, with strict=False,
    is logged and skipped). A final line with no newline that does not parse is a torn
    append: it is skipped with a warning in both modes.
    """
    if path.suffix == ".json":
        yield from _read_json_array(path)
        return
    with path.open("rb") as fh:
        lineno = 0
        for raw in fh:
            lineno += 1
            if not raw.strip():
                continue
            try:
                yield Session.decode(raw)
            except DecodeError as e:
                if not raw.endswith(b"\n"):
                    log.warning("partial_last_line_skipped", path=str(path), line=lineno)
                    return
                if strict:
                    raise DataError(f"{path}:{lineno}: bad session: {e}") from None
                log.warning("bad_session_line_skipped", path=str(path), line=lineno, reason=str(e))


def _read_json_array(path: Path) -> Iterator[Session]:
    try:
        items = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(items, list):
        raise DataError(f"{path}: a .json daily file must hold a JSON array of sessions")
    for i, obj in enumerate(items):
        if not isinstance(obj, dict):
            raise DataError(f"{path}: item {i}: a session must be an object")
        try:
            yield Session.from_dict(obj)
        except DecodeError as e:
            raise DataError(f"{path}: item {i}: bad session: {e}") from None


def iter_sessions(files: Iterable[DayFile], *, strict: bool = True) -> Iterator[Session]:
    for f in files:
        yield from read_sessions(f.path, strict=strict)


def write_sessions(path: Path, sessions: Iterable[Session]) -> int:
    """Write a JSON Lines daily file atomically; returns the number of sessions written."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("wb") as fh:
        for s in sessions:
            fh.write(s.encode() + b"\n")
            n += 1
    tmp.replace(path)
    return n


def write_complete_day(directory: Path, day: date, sessions: Iterable[Session]) -> Path:
    """Write `day`'s daily file in `directory` (created if missing) and mark it complete
    (`.done`), as `logad simulate` does; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / daily_file_name(day)
    write_sessions(path, sessions)
    path.with_name(path.name + DONE_SUFFIX).touch()
    return path
