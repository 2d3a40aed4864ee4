"""Header formats of raw log lines: a line's message, its fields and its time.

Built in:

- `content`: the whole line is the message; no fields, no time.
- `spring-boot`: Spring Boot's default logback console pattern,
  e.g. `2023-01-29 16:42:22.382  INFO 1 --- [nio-8080-exec-1] c.e.FooService : message`,
  also with Sleuth/Micrometer's `[app,traceId,spanId]` after the level
  (fields `app`, `trace_id`, `span_id`, `pid`, `thread`, `logger`).
- `hdfs`: Loghub's HDFS lines, `081109 203615 148 INFO dfs.DataNode$PacketResponder: message`
  (fields `pid`, `component`).

Or a regex with named groups (`--line-regex`): `message` is required, `ts` and `level` are
read as the time and level, and any other named group becomes a field. Times without a
zone are taken as UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.errors import ConfigError


class BadTimestamp(ValueError):
    """The header matched but its time could not be read."""


@dataclass(frozen=True, slots=True)
class ParsedLine:
    message: str
    fields: dict[str, str]
    """Every named group but the message, as matched (`ts` and `level` among them)."""
    ts: int | None
    """Epoch milliseconds, when the format has a time."""


TimeReader = Callable[[dict[str, str]], int | None]


@dataclass(frozen=True)
class LineFormat:
    name: str
    regex: re.Pattern[str] | None
    """None: the whole line is the message."""
    read_time: TimeReader | None
    """Epoch ms from the matched fields; None when the format carries no time."""

    @property
    def fields(self) -> tuple[str, ...]:
        if self.regex is None:
            return ()
        return tuple(n for n in self.regex.groupindex if n != "message")

    @property
    def dated(self) -> bool:
        return self.read_time is not None

    def parse(self, line: str) -> ParsedLine | None:
        """The line's parts, or None when the header does not match."""
        if self.regex is None:
            return ParsedLine(line, {}, None)
        m = self.regex.match(line)
        if m is None:
            return None
        fields = {k: v for k, v in m.groupdict().items() if v is not None and k != "message"}
        ts = self.read_time(fields) if self.read_time is not None else None
        return ParsedLine(m.group("message"), fields, ts)


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def iso_or_epoch(text: str) -> int:
    """Epoch ms from ISO 8601 (e.g. `2023-01-29 16:42:22.382`, `...,382`, `...Z`) or from epoch
    seconds (10 digits) or milliseconds (13 digits)."""
    if text.isdigit() and len(text) in (10, 13):
        return int(text) * (1000 if len(text) == 10 else 1)
    try:
        return _ms(datetime.fromisoformat(text))
    except ValueError:
        raise BadTimestamp(f"not a time: {text!r}") from None


def _ts_field(fields: dict[str, str]) -> int | None:
    text = fields.get("ts")
    return None if text is None else iso_or_epoch(text)


def strptime_reader(fmt: str) -> TimeReader:
    """Reads the `ts` field with a strptime format."""

    def read(fields: dict[str, str]) -> int | None:
        text = fields.get("ts")
        if text is None:
            return None
        try:
            return _ms(datetime.strptime(text, fmt))
        except ValueError:
            raise BadTimestamp(f"{text!r} does not fit {fmt!r}") from None

    return read


def _hdfs_time(fields: dict[str, str]) -> int:
    text = f"{fields['date']} {fields['time']}"
    try:
        return _ms(datetime.strptime(text, "%y%m%d %H%M%S"))
    except ValueError:
        raise BadTimestamp(f"not a time: {text!r}") from None


_SPRING_BOOT = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s+(?P<level>TRACE|DEBUG|INFO|WARN|ERROR|FATAL)"
    # Sleuth / Micrometer tracing: [app,traceId,spanId] or [app,traceId,spanId,exportable]
    r"\s+(?:\[(?P<app>[^,\]]*),(?P<trace_id>[^,\]]*),(?P<span_id>[^,\]]*)(?:,[^\]]*)?\]\s+)?"
    r"(?P<pid>\d+)\s+---\s+\[\s*(?P<thread>[^\]]*)\]\s+(?P<logger>\S+)\s*:\s?(?P<message>.*)"
)

_HDFS = re.compile(
    r"(?P<date>\d{6}) (?P<time>\d{6}) (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<component>[^:\s]+): ?(?P<message>.*)"
)

BUILTIN: dict[str, LineFormat] = {
    "content": LineFormat("content", None, None),
    "spring-boot": LineFormat("spring-boot", _SPRING_BOOT, _ts_field),
    "hdfs": LineFormat("hdfs", _HDFS, _hdfs_time),
}


def line_format(name: str, line_regex: str | None, ts_format: str | None) -> LineFormat:
    """The built-in format `name`, or the format `line_regex` describes."""
    if line_regex is None:
        if name not in BUILTIN:
            known = ", ".join(BUILTIN)
            raise ConfigError(f"unknown format {name!r} (known: {known}; or give --line-regex)")
        if ts_format is not None:
            raise ConfigError(
                "--ts-format goes with --line-regex (a built-in format reads its own)"
            )
        return BUILTIN[name]
    try:
        regex = re.compile(line_regex)
    except re.error as e:
        raise ConfigError(f"bad --line-regex: {e}") from None
    if "message" not in regex.groupindex:
        raise ConfigError("--line-regex needs a (?P<message>...) group")
    reader: TimeReader | None = None
    if "ts" in regex.groupindex:
        reader = strptime_reader(ts_format) if ts_format else _ts_field
    elif ts_format is not None:
        raise ConfigError("--ts-format needs a (?P<ts>...) group in --line-regex")
    return LineFormat("line-regex", regex, reader)
