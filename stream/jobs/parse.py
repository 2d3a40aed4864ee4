"""`logad parse`: raw log files to template ids, and (with a session key) to daily files.

For each input line, in the order the files are given and lines come:

1. decode it (UTF-8) and split off its header (`log_formats`);
2. mine its message (`trainer.mining.TemplateMiner`, extending `--templates` if given);
3. write a row `file,line,template_id` to `assignments.csv` (line counted from 1);
4. with a session key, add the template id to the line's session.

A line that cannot be parsed (not UTF-8, header does not match, unreadable time) still
gets its row, with an empty template id, and is counted and reported; it joins no session.

At the end: `templates.json` (the whole set, old ids first), and one
`preprocessed_logs_YYYY-MM-DD.jsonl` per day, each session filed under the day (UTC) of
its first dated event, with its events in input order. Sessions are held in memory until
then.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import structlog

from schemas.daily_files import daily_file_name, write_sessions
from schemas.errors import ConfigError, DataError
from schemas.runtime.settings import shown
from schemas.sessions import Session
from schemas.templates import MinerParams, read_templates, write_templates
from stream.jobs.log_formats import BUILTIN, BadTimestamp, LineFormat, ParsedLine, line_format
from trainer.mining import DEFAULT_PARAMS, TemplateMiner, with_params
from trainer.mining.rules_file import read_mask_rules

log = structlog.get_logger(__name__)

TEMPLATES_FILE = "templates.json"
ASSIGNMENTS_FILE = "assignments.csv"
_GZIP_MAGIC = b"\x1f\x8b"
_LOG_EVERY_LINES = 1_000_000
_SHOWN_CHARS = 120


@dataclass(frozen=True)
class ParseSettings:
    format: str = "spring-boot"
    """Header format of the lines: content (the line is the message), spring-boot
    (logback's default console pattern, with or without [app,traceId,spanId]) or hdfs
    (Loghub HDFS)."""
    line_regex: str | None = None
    """A regex with named groups for any other header: (?P<message>...) required, ts and
    level read as time and level, any other group a field. Replaces --format."""
    ts_format: str | None = None
    """strptime format of the ts group of --line-regex (default: ISO 8601 or epoch s/ms)."""
    session_key: str | None = None
    """What makes a session: a field of the format (trace_id) or a regex over the message
    (blk_-?\\d+; its first group if it has one). Without it no daily files are written."""
    day: str | None = None
    """Day (YYYY-MM-DD) for sessions whose lines carry no time, as with --format content."""
    templates: Path | None = None
    """An existing templates.json to extend: its ids keep their templates, new ids are
    appended, and its miner parameters and mask rules apply."""
    mask_rules: Path | None = None
    """A TOML or JSON file of masking rules (name, pattern) run before the built-in ones."""
    similarity: float | None = field(
        default=None, metadata=shown(f"{DEFAULT_PARAMS.similarity}, or the --templates file's")
    )
    """Least share of positions a line must fit (equal, or <*> in the template) to join a
    template."""
    depth: int | None = field(
        default=None, metadata=shown(f"{DEFAULT_PARAMS.depth}, or the --templates file's")
    )
    """Drain tree depth (root, token count, depth-3 leading tokens, leaf)."""
    word_variants: int | None = field(
        default=None, metadata=shown(f"{DEFAULT_PARAMS.word_variants}, or the --templates file's")
    )
    """Templates that may differ from a line in one word before that word becomes <*>
    (0: words never do)."""
    examples: int = 5
    """Unparseable lines shown in the summary."""

    def __post_init__(self) -> None:
        if self.line_regex is None and self.format not in BUILTIN:
            known = ", ".join(BUILTIN)
            raise ValueError(f"unknown format {self.format!r} (known: {known}; or --line-regex)")
        if self.day is not None:
            try:
                date.fromisoformat(self.day)
            except ValueError:
                raise ValueError(f"--day must be YYYY-MM-DD, got {self.day!r}") from None
        if self.examples < 0:
            raise ValueError("examples must be 0 or more")


@dataclass(frozen=True, slots=True)
class BadLine:
    file: str
    line: int
    reason: str
    text: str
    """The line's start, for the report."""


@dataclass
class ParseSummary:
    files: int = 0
    lines: int = 0
    unparseable: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[BadLine] = field(default_factory=list)
    templates_before: int = 0
    templates_after: int = 0
    sessions: int = 0
    undated_sessions: int = 0
    """Sessions with no dated event and no --day: not written."""
    days: list[date] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class _Session:
    events: list[str]
    first_ts: int | None
    """The time of its first dated event in input order: the session's day."""
    start_ts: int | None
    end_ts: int | None
    gaps: list[int] | None = None
    """Per event, ms since the latest time before it in the session (0 when the line's
    time is earlier: lines out of order); None once an event had no time."""
    last_ts: int | None = None
    """The latest event time so far, what the next gap is measured from."""

    @property
    def gaps_ms(self) -> tuple[int, ...] | None:
        return None if self.gaps is None else tuple(self.gaps)


class SessionKey:
    """A line's session id: a named field of its header, or a regex over its message."""

    def __init__(self, key: str, fmt: LineFormat) -> None:
        self.field: str | None = None
        self.regex: re.Pattern[str] | None = None
        if re.fullmatch(r"[A-Za-z_]\w*", key):
            if key not in fmt.fields:
                fields = ", ".join(fmt.fields) or "none"
                raise ConfigError(
                    f"--session-key {key}: no such field in format {fmt.name} (fields: "
                    f"{fields}); a regex over the message needs a non-word character"
                )
            self.field = key
            return
        try:
            self.regex = re.compile(key)
        except re.error as e:
            raise ConfigError(f"bad --session-key regex: {e}") from None

    def __call__(self, parsed: ParsedLine) -> str | None:
        if self.field is not None:
            return parsed.fields.get(self.field) or None
        assert self.regex is not None
        m = self.regex.search(parsed.message)
        if m is None:
            return None
        return (m.group(1) if self.regex.groups else m.group(0)) or None


def miner_params(s: ParseSettings, base: MinerParams | None) -> MinerParams:
    """The miner's parameters: the templates file's when extending (a flag that differs is
    an error, as it would change what the old ids mean), else the defaults plus flags."""
    given = {
        name: value
        for name, value in (
            ("similarity", s.similarity),
            ("depth", s.depth),
            ("word_variants", s.word_variants),
        )
        if value is not None
    }
    if base is None:
        params = with_params(DEFAULT_PARAMS, **given)
        if s.mask_rules is not None:
            params = with_params(params, mask_rules=read_mask_rules(s.mask_rules))
        return params
    clash = [k for k, v in given.items() if getattr(base, k) != v]
    if s.mask_rules is not None and read_mask_rules(s.mask_rules) != base.mask_rules:
        clash.append("mask_rules")
    if clash:
        raise ConfigError(
            f"--{clash[0].replace('_', '-')} differs from the --templates file's; "
            "an extended set keeps the parameters it was mined with"
        )
    return base


def check_inputs(files: Sequence[Path], s: ParseSettings) -> LineFormat:
    """Every check that needs no reading of the logs, so that a mistake fails at once."""
    for path in files:
        if not path.is_file():
            raise DataError(f"no such file: {path}")
    fmt = line_format(s.format, s.line_regex, s.ts_format)
    if s.session_key is not None:
        SessionKey(s.session_key, fmt)
        if not fmt.dated and s.day is None:
            raise ConfigError(
                f"format {fmt.name} has no time to file sessions by day: give --day YYYY-MM-DD"
            )
    if s.templates is not None and not s.templates.is_file():
        raise DataError(f"no such templates file: {s.templates}")
    return fmt


def _lines(path: Path, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    """The file's lines without their line ends (LF or CRLF), gzip or plain by content."""
    with path.open("rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        fh: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if gz else raw
        done = 0
        for n, line in enumerate(fh, 1):
            yield line.rstrip(b"\n").rstrip(b"\r")
            if on_bytes is not None and n % 1024 == 0:
                pos = raw.tell()
                on_bytes(pos - done)
                done = pos
        if on_bytes is not None:
            on_bytes(raw.tell() - done)


def run_parse(
    files: Sequence[Path],
    out_dir: Path,
    s: ParseSettings,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> ParseSummary:
    """Parse `files` into `out_dir`; `on_bytes` hears of each chunk of file read."""
    fmt = check_inputs(files, s)
    key = SessionKey(s.session_key, fmt) if s.session_key is not None else None
    base = read_templates(s.templates) if s.templates is not None else None
    params = miner_params(s, base.params if base is not None else None)
    miner = TemplateMiner.from_set(base) if base is not None else TemplateMiner(params)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ParseSummary(templates_before=len(miner))
    sessions: dict[str, _Session] = {}

    def bad(name: str, lineno: int, reason: str, text: str) -> None:
        summary.unparseable += 1
        summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        if len(summary.examples) < s.examples:
            summary.examples.append(BadLine(name, lineno, reason, text[:_SHOWN_CHARS]))

    assignments = out_dir / ASSIGNMENTS_FILE
    tmp = assignments.with_name(assignments.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as out:
        rows = csv.writer(out)
        rows.writerow(["file", "line", "template_id"])
        for path in files:
            name = str(path)
            summary.files += 1
            file_bad = summary.unparseable
            lineno = 0
            for lineno, raw in enumerate(_lines(path, on_bytes), 1):
                summary.lines += 1
                if summary.lines % _LOG_EVERY_LINES == 0:
                    log.info("parse_progress", lines=summary.lines, templates=len(miner))
                tid = _parse_line(raw, fmt, miner, key, sessions, name, lineno, bad)
                rows.writerow([name, lineno, tid or ""])
            log.info(
                "parse_file_done",
                file=name,
                lines=lineno,
                unparseable=summary.unparseable - file_bad,
            )
    tmp.replace(assignments)
    write_templates(out_dir / TEMPLATES_FILE, miner.to_set())
    summary.templates_after = len(miner)
    summary.written = [out_dir / TEMPLATES_FILE, assignments]
    if key is not None:
        _write_days(sessions, out_dir, s, summary)
    log.info(
        "parse_done",
        lines=summary.lines,
        unparseable=summary.unparseable,
        templates=summary.templates_after,
        new_templates=summary.templates_after - summary.templates_before,
        sessions=summary.sessions,
    )
    return summary


def _parse_line(
    raw: bytes,
    fmt: LineFormat,
    miner: TemplateMiner,
    key: SessionKey | None,
    sessions: dict[str, _Session],
    name: str,
    lineno: int,
    bad: Callable[[str, int, str, str], None],
) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        bad(name, lineno, "not UTF-8", raw.decode("utf-8", "replace"))
        return None
    try:
        parsed = fmt.parse(text)
    except BadTimestamp as e:
        bad(name, lineno, "unreadable time", f"{e}: {text}")
        return None
    if parsed is None:
        bad(name, lineno, f"no {fmt.name} header", text)
        return None
    tid, _ = miner.mine(parsed.message, first_seen=f"{name}:{lineno}")
    if key is not None:
        sid = key(parsed)
        if sid is not None:
            _add_event(sessions, sid, tid, parsed.ts)
    return tid


def _add_event(sessions: dict[str, _Session], sid: str, tid: str, ts: int | None) -> None:
    cur = sessions.get(sid)
    if cur is None:
        sessions[sid] = _Session([tid], ts, ts, ts, None if ts is None else [0], ts)
        return
    cur.events.append(tid)
    if ts is None:
        cur.gaps = None
    elif cur.gaps is not None and cur.last_ts is not None:
        cur.gaps.append(max(0, ts - cur.last_ts))
        cur.last_ts = max(cur.last_ts, ts)
    if ts is not None:
        if cur.first_ts is None:
            cur.first_ts = ts
        cur.start_ts = ts if cur.start_ts is None else min(cur.start_ts, ts)
        cur.end_ts = ts if cur.end_ts is None else max(cur.end_ts, ts)


def _write_days(
    sessions: dict[str, _Session], out_dir: Path, s: ParseSettings, summary: ParseSummary
) -> None:
    fallback = date.fromisoformat(s.day) if s.day is not None else None
    by_day: dict[date, list[Session]] = {}
    for sid, cur in sessions.items():
        # The day of its first event in input order (not of its earliest time): a session is
        # filed where it begins.
        day = _day(cur.first_ts) if cur.first_ts is not None else fallback
        if day is None:
            summary.undated_sessions += 1
            continue
        by_day.setdefault(day, []).append(
            Session(
                sid,
                tuple(cur.events),
                start_ts=cur.start_ts,
                end_ts=cur.end_ts,
                gaps_ms=cur.gaps_ms,
            )
        )
    for day in sorted(by_day):
        path = out_dir / daily_file_name(day)
        summary.sessions += write_sessions(path, by_day[day])
        summary.written.append(path)
    summary.days = sorted(by_day)
    if summary.undated_sessions:
        log.warning("undated_sessions_not_written", sessions=summary.undated_sessions)


def _day(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()
