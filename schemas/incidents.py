"""Incident files: the time spans in which something went wrong, for `logad evaluate --incidents`.

An incident file is JSON Lines, or one JSON array, of objects:

    {"start": "2023-01-29T08:43:04Z", "end": "2023-01-29T08:45:04Z",
     "service": "ts-contacts-service", "type": "return", "id": "inc-1"}

- `start`, `end` (required): ISO-8601 with a zone, or epoch milliseconds; end >= start.
- `service` (optional): the service the incident hit. A session matches it when one of the
  session's services is that name or a pod of it (the name followed by '-': Kubernetes
  names pods `<deployment>-<hash>-<suffix>`).
- `type` (optional): the kind of fault, for the per-type figures.
- `id` (optional): a name for the incident in the report (default: its line, from 1).

The fault list of the Nezha study (data/nezha_trainticket/, `<day>-fault_list.json`) is read
as it is: an object keyed by hour, each a list of `{inject_time, inject_pod, inject_type}`.
Each injection is an incident from `inject_time` (UTC, as the logs' clock) lasting
`fault_window_ms`, on the service of `inject_pod` (its deployment name), of type
`inject_type`. (`inject_timestamp` is 8 h off in that data, so it is ignored.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DataError, DecodeError

NEZHA_TIME = "%Y-%m-%d %H:%M:%S"
_POD = re.compile(r"^(?P<service>.+?)-[a-z0-9]{6,10}-[a-z0-9]{5}$")


@dataclass(frozen=True)
class Incident:
    id: str
    start_ms: int
    end_ms: int
    service: str | None = None
    type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "start": self.start_ms, "end": self.end_ms}
        if self.service is not None:
            d["service"] = self.service
        if self.type is not None:
            d["type"] = self.type
        return d

    @classmethod
    def from_dict(cls, obj: Any, default_id: str) -> Incident:
        if not isinstance(obj, dict):
            raise DecodeError("an incident must be an object")
        start = f.timestamp_ms(f.req(obj, "start"), "start")
        end = f.timestamp_ms(f.req(obj, "end"), "end")
        if end < start:
            raise DecodeError(f"ends before it starts ({end} < {start})", "end")
        raw_id = obj.get("id")
        return cls(
            id=default_id if raw_id is None else f.ident(str(raw_id), "id"),
            start_ms=start,
            end_ms=end,
            service=None if obj.get("service") is None else f.ident(obj["service"], "service"),
            type=None if obj.get("type") is None else f.ident(obj["type"], "type"),
        )


def service_of_pod(pod: str) -> str:
    """A Kubernetes Deployment's pod name without its replica-set hash and pod suffix
    ('ts-contacts-service-866bd68c97-xcqfx' -> 'ts-contacts-service'); other names as they are."""
    m = _POD.match(pod)
    return m.group("service") if m else pod


def is_nezha_fault_list(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(
            isinstance(v, list) and all(isinstance(x, dict) and "inject_time" in x for x in v)
            for v in obj.values()
        )
    )


def from_nezha(obj: dict[str, list[dict[str, Any]]], fault_window_ms: int) -> list[Incident]:
    """A Nezha fault list's injections as incidents of `fault_window_ms` each, in time order."""
    out: list[Incident] = []
    for hour in sorted(obj):
        for i, x in enumerate(obj[hour]):
            name = f"{hour}[{i}]"
            try:
                start_dt = datetime.strptime(str(x["inject_time"]), NEZHA_TIME).replace(tzinfo=UTC)
            except ValueError as e:
                raise DecodeError(f"bad inject_time: {e}", name) from None
            start = round(start_dt.timestamp() * 1000)
            pod = x.get("inject_pod")
            kind = x.get("inject_type")
            out.append(
                Incident(
                    id=f"{start_dt:%H:%M:%S} {kind or ''}".strip(),
                    start_ms=start,
                    end_ms=start + fault_window_ms,
                    service=None if pod is None else service_of_pod(str(pod)),
                    type=None if kind is None else str(kind),
                )
            )
    return sorted(out, key=lambda i: (i.start_ms, i.id))


def parse_incidents(data: bytes, fault_window_ms: int = 120_000) -> list[Incident]:
    """Incidents from a file's bytes (module doc: JSON Lines, a JSON array, or a Nezha fault
    list); a DecodeError names the bad entry."""
    if fault_window_ms <= 0:
        raise ValueError(f"fault_window_ms must be > 0, got {fault_window_ms}")
    try:
        whole: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None  # JSON Lines
    if is_nezha_fault_list(whole):
        return from_nezha(whole, fault_window_ms)
    if isinstance(whole, list):
        items = [(str(i), x) for i, x in enumerate(whole, 1)]
    elif isinstance(whole, dict):
        items = [("1", whole)]  # one line of JSON Lines
    else:
        items = []
        for n, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    items.append((str(n), orjson.loads(line)))
                except orjson.JSONDecodeError as e:
                    raise DecodeError(f"line {n}: not JSON ({e})") from None
    incidents = []
    for where, obj in items:
        try:
            incidents.append(Incident.from_dict(obj, where))
        except DecodeError as e:
            raise DecodeError(f"incident {where}: {e}") from None
    return incidents


def read_incidents(path: Path, fault_window_ms: int = 120_000) -> list[Incident]:
    """The incidents of a file; a DataError (one line) when it is missing, bad or empty."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read incidents file {path}: {e.strerror or e}") from None
    try:
        incidents = parse_incidents(data, fault_window_ms)
    except DecodeError as e:
        raise DataError(f"{path}: {e}") from None
    if not incidents:
        raise DataError(f"{path} lists no incidents")
    return incidents
