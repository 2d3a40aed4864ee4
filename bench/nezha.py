"""The Nezha study's TrainTicket logs (data/nezha_trainticket/) as one record per log line.

A data directory holds one or more days, each as `rca_<day>/` (the fault phase:
`log/*.csv.gz` and `<day>-fault_list.json`) and `fault_free_<day>/` (`log/*.csv.gz`). A CSV
row is `Timestamp,TimeUnixNano,Node,PodName,Container,TraceID,SpanID,Log`, where `Log` is the
container runtime's JSON line, `{"log": "16:42:22.382 INFO  t.s.TravelServiceImpl#532
TraceID: <id> SpanID: <id> [method][what][values]\\n", "stream": ..., "time": ...}`.

Per line, `parse_row` keeps:
- `trace_id` (the session), `ts_ms` (from `Timestamp`, UTC: the time in the log text is the
  pod's local clock, 8 h ahead of the fault list's, and `TimeUnixNano` is garbage on a few
  rows, `-6795364578871345152`);
- `service`: the pod's deployment (`ts-travel-service-64469b5b48-25zj6` ->
  `ts-travel-service`), `pod`;
- `level` (INFO, WARN, ERROR, ... from the text) and `logger` (`t.s.TravelServiceImpl#532`);
- `message`: the text after the time, level, logger, TraceID and SpanID.

Minute files overlap, so `read_day` drops repeated rows. A few rows in the data carry a
`Log` value with bytes of another row glued after its JSON object (sometimes as extra CSV
columns); the first object is what the line said, so it is kept and the rest ignored
(`LogRow.trailing_garbage`).

Pure: no logging, no model; reading files is the only I/O.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from schemas.incidents import service_of_pod

COLUMNS = ("Timestamp", "TimeUnixNano", "Node", "PodName", "Container", "TraceID", "SpanID", "Log")

# "16:42:22.382 INFO  t.s.TravelServiceImpl#532 TraceID: <hex> SpanID: <hex> <message>"; the
# TraceID/SpanID part is optional (lines logged outside a request).
_HEADER = re.compile(
    r"^(?P<time>\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)\s+(?P<level>[A-Z]+)\s+(?P<logger>\S+)\s+"
    r"(?:TraceID:\s*(?P<trace>\S*)\s+SpanID:\s*(?P<span>\S*)\s?)?"
)
_DECODER = json.JSONDecoder()
_STAMP = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?:Z|\+00:00)?$"
)


@dataclass(frozen=True, slots=True)
class LogRow:
    trace_id: str
    ts_ms: int
    service: str
    pod: str
    level: str | None
    """None when the text has no recognisable header."""
    logger: str | None
    message: str
    trailing_garbage: bool = False


@dataclass(frozen=True)
class Day:
    """One day of a data directory: its fault phase, its fault-free phase, its fault list."""

    name: str
    rca_logs: tuple[Path, ...]
    fault_free_logs: tuple[Path, ...]
    fault_list: Path | None


def log_text(cell: str) -> tuple[str, bool]:
    """The `log` field of a `Log` cell (the text itself when it is not JSON), and whether
    anything followed the JSON object."""
    try:
        obj, end = _DECODER.raw_decode(cell)
    except json.JSONDecodeError:
        return cell, False
    if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
        return cell, False
    return obj["log"], bool(cell[end:].strip())


def timestamp_ms(text: str) -> int:
    """Epoch ms of an ISO-8601 time, UTC when it names no zone ('2023-01-29T08:48:42.425293566Z',
    '2023-01-29T09:20:29.295'); digits past the millisecond are dropped."""
    m = _STAMP.match(text.strip())
    if m is None:
        raise ValueError(f"bad Timestamp {text!r}")
    base = datetime.strptime(m.group("base"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    frac = (m.group("frac") or "").ljust(3, "0")[:3]
    return int(base.timestamp()) * 1000 + int(frac)


def split_header(text: str) -> tuple[str | None, str | None, str]:
    """(level, logger, message) of a log line's text; (None, None, text) without a header."""
    text = text.rstrip("\r\n")
    m = _HEADER.match(text)
    if m is None:
        return None, None, text.strip()
    return m.group("level"), m.group("logger"), text[m.end() :].strip()


def parse_row(row: Sequence[str]) -> LogRow:
    """One CSV row (in COLUMNS order) as a record; ValueError when it cannot be one. Columns
    past the eighth are the glued bytes of another row (module doc)."""
    if len(row) < len(COLUMNS):
        raise ValueError(f"{len(row)} columns, expected {len(COLUMNS)}")
    stamp, _, _, pod, _, trace, _, cell = row[: len(COLUMNS)]
    if not trace:
        raise ValueError("no TraceID")
    text, garbage = log_text(cell)
    garbage = garbage or len(row) > len(COLUMNS)
    level, logger, message = split_header(text)
    return LogRow(
        trace_id=trace,
        ts_ms=timestamp_ms(stamp),
        service=service_of_pod(pod),
        pod=pod,
        level=level,
        logger=logger,
        message=message,
        trailing_garbage=garbage,
    )


def read_csv(path: Path) -> Iterator[tuple[str, ...]]:
    """The data rows of one (gzipped or plain) minute file, header checked and skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None:
            return
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path}: unexpected columns {header}")
        for r in rows:
            yield tuple(r)


def read_rows(paths: Iterable[Path]) -> tuple[list[LogRow], int]:
    """Every distinct row of the files as a record, in time order (then file order), and
    how many repeated rows were dropped."""
    seen: set[tuple[str, ...]] = set()
    records: list[LogRow] = []
    dropped = 0
    for p in sorted(paths):
        for r in read_csv(p):
            if r in seen:
                dropped += 1
                continue
            seen.add(r)
            records.append(parse_row(r))
    records.sort(key=lambda x: x.ts_ms)  # stable: equal times keep file order
    return records, dropped


def find_days(data: Path) -> list[Day]:
    """The days of a data directory: every `rca_<day>/` and `fault_free_<day>/` folder."""
    names = sorted(
        {
            p.name.split("_", 1)[1] if p.name.startswith("rca_") else p.name[len("fault_free_") :]
            for p in data.iterdir()
            if p.is_dir() and (p.name.startswith("rca_") or p.name.startswith("fault_free_"))
        }
    )
    days = []
    for name in names:
        rca, free = data / f"rca_{name}", data / f"fault_free_{name}"
        lists = sorted(rca.glob("*fault_list.json")) if rca.is_dir() else []
        days.append(
            Day(
                name,
                tuple(sorted((rca / "log").glob("*.csv*"))) if rca.is_dir() else (),
                tuple(sorted((free / "log").glob("*.csv*"))) if free.is_dir() else (),
                lists[0] if lists else None,
            )
        )
    return days


def traces(records: Iterable[LogRow]) -> dict[str, list[LogRow]]:
    """Records grouped by trace id, each trace in time order (first seen first)."""
    out: dict[str, list[LogRow]] = {}
    for r in records:
        out.setdefault(r.trace_id, []).append(r)
    for rows in out.values():
        rows.sort(key=lambda x: x.ts_ms)
    return out
