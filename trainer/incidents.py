"""Incident-level evaluation (pure): which incidents the alerts caught, how soon, and how many
alerts fell outside every incident.

Labels per session say little on real systems: many sessions inside a fault window are not
affected by it. The honest unit is the incident (schemas/incidents.py). Given scored
sessions, each with its time span and, when known, the services it touched:

- a session is **in** an incident when its span [start, end] overlaps the incident's;
- an incident is **detected** when an alerted session in it is on its service (any session,
  when the incident names no service or the session's services are unknown: matching is
  then by time only, and the report says how many incidents were matched that way) and its
  alert came at or after the incident's start;
- the **time to first alert** is the earliest such alert time minus the incident's start. A
  session's alert time is the last event of the window that alerted (for a session scored
  whole, its last event): the earliest moment serve can have scored it; serve adds its
  session gap and batching;
- a **false alert** is an alerted session in no incident, whatever its service: an alert
  inside an incident's time on another service is counted apart (`alerts_off_service`),
  neither false nor a detection, since faults spread to their callers;
- the rates are per hour of observed time outside every incident (from the first session's
  start to the last one's end, less the incidents' spans) and per 1,000 sessions in no
  incident.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.incidents import Incident

UNTYPED = "(no type)"


@dataclass(frozen=True)
class ScoredSession:
    session_id: str
    start_ms: int
    end_ms: int
    score: float
    alert_ms: int | None
    """When its first alert could be raised (module doc); None: it did not alert."""
    services: frozenset[str] | None = None
    """The services its events came from; None: unknown (session and score files)."""

    @property
    def alerted(self) -> bool:
        return self.alert_ms is not None


def on_service(services: frozenset[str] | None, service: str | None) -> bool:
    """Whether a session with `services` can be an incident's on `service` (module doc)."""
    if service is None or services is None:
        return True
    prefix = service + "-"
    return any(s == service or s.startswith(prefix) for s in services)


@dataclass(frozen=True)
class IncidentOutcome:
    incident: Incident
    detected: bool
    first_alert_ms: int | None
    sessions: int
    """Sessions in the incident (in time, on its service when matched by service)."""
    alerted: int
    """Of them, alerted (at any time)."""
    by_service: bool
    """Matched on the service (False: the incident names none, or the sessions in it carry none)."""

    @property
    def delay_ms(self) -> int | None:
        if self.first_alert_ms is None:
            return None
        return self.first_alert_ms - self.incident.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.incident.to_dict(),
            "detected": self.detected,
            "time_to_first_alert_s": None if self.delay_ms is None else self.delay_ms / 1000,
            "sessions": self.sessions,
            "alerted_sessions": self.alerted,
            "matched_on": "service" if self.by_service else "time",
        }


@dataclass(frozen=True)
class _Arrays:
    start: npt.NDArray[np.int64]
    end: npt.NDArray[np.int64]
    alert: npt.NDArray[np.int64]
    alerted: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, sessions: Sequence[ScoredSession]) -> _Arrays:
        alert = np.array([-1 if s.alert_ms is None else s.alert_ms for s in sessions], np.int64)
        return cls(
            np.array([s.start_ms for s in sessions], np.int64),
            np.array([s.end_ms for s in sessions], np.int64),
            alert,
            np.array([s.alert_ms is not None for s in sessions], np.bool_),
        )

    def overlapping(self, inc: Incident) -> npt.NDArray[np.bool_]:
        return (self.start <= inc.end_ms) & (self.end >= inc.start_ms)


def match_incident(
    sessions: Sequence[ScoredSession], inc: Incident, arrays: _Arrays | None = None
) -> IncidentOutcome:
    a = arrays or _Arrays.of(sessions)
    idx = np.flatnonzero(a.overlapping(inc))
    by_service = inc.service is not None and any(sessions[int(i)].services is not None for i in idx)
    if by_service:
        idx = np.array(
            [i for i in idx if on_service(sessions[int(i)].services, inc.service)], np.int64
        )
    alerted = idx[a.alerted[idx]] if idx.size else idx
    in_time = alerted[a.alert[alerted] >= inc.start_ms] if alerted.size else alerted
    first = int(a.alert[in_time].min()) if in_time.size else None
    return IncidentOutcome(
        inc, first is not None, first, int(idx.size), int(alerted.size), by_service
    )


def match_incidents(
    sessions: Sequence[ScoredSession], incidents: Sequence[Incident]
) -> list[IncidentOutcome]:
    """Each incident's outcome (module doc), in the order given."""
    a = _Arrays.of(sessions)
    return [match_incident(sessions, inc, a) for inc in incidents]


def in_any_incident(
    sessions: Sequence[ScoredSession], incidents: Sequence[Incident]
) -> npt.NDArray[np.bool_]:
    """Per session: whether its span overlaps some incident's (service ignored)."""
    a = _Arrays.of(sessions)
    inside = np.zeros(len(sessions), np.bool_)
    for inc in incidents:
        inside |= a.overlapping(inc)
    return inside


def uncovered_ms(lo: int, hi: int, spans: Sequence[tuple[int, int]]) -> int:
    """Milliseconds of [lo, hi] that no span covers."""
    covered, cursor = 0, lo
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in spans):
        if b <= cursor:
            continue
        covered += b - max(a, cursor)
        cursor = b
    return max(hi - lo, 0) - covered


@dataclass(frozen=True)
class TypeSummary:
    incidents: int
    detected: int
    delays_ms: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        d = [x / 1000 for x in self.delays_ms]
        return {
            "incidents": self.incidents,
            "detected": self.detected,
            "detection_rate": self.detected / self.incidents if self.incidents else None,
            "time_to_first_alert_s": {
                "median": statistics.median(d) if d else None,
                "mean": statistics.fmean(d) if d else None,
                "max": max(d) if d else None,
            },
        }


def by_type(outcomes: Sequence[IncidentOutcome]) -> dict[str, TypeSummary]:
    groups: dict[str, list[IncidentOutcome]] = {}
    for o in outcomes:
        groups.setdefault(o.incident.type or UNTYPED, []).append(o)
    return {
        t: TypeSummary(
            len(os),
            sum(o.detected for o in os),
            tuple(o.delay_ms for o in os if o.delay_ms is not None),
        )
        for t, os in sorted(groups.items())
    }


@dataclass(frozen=True)
class IncidentReport:
    outcomes: tuple[IncidentOutcome, ...]
    types: dict[str, TypeSummary]
    sessions: int
    alerts: int
    """Alerted sessions."""
    false_alerts: int
    alerts_off_service: int
    normal_sessions: int
    """Sessions in no incident."""
    hours_outside: float
    """Observed hours outside every incident."""
    sessions_with_services: int

    @property
    def detected(self) -> int:
        return sum(o.detected for o in self.outcomes)

    @property
    def false_alerts_per_hour(self) -> float | None:
        return self.false_alerts / self.hours_outside if self.hours_outside > 0 else None

    @property
    def false_alerts_per_1000(self) -> float | None:
        n = self.normal_sessions
        return 1000.0 * self.false_alerts / n if n else None

    def to_dict(self) -> dict[str, Any]:
        total = TypeSummary(
            len(self.outcomes),
            self.detected,
            tuple(o.delay_ms for o in self.outcomes if o.delay_ms is not None),
        )
        return {
            "incidents": len(self.outcomes),
            "detected": self.detected,
            **{k: v for k, v in total.to_dict().items() if k not in ("incidents", "detected")},
            "false_alerts": self.false_alerts,
            "false_alerts_per_hour": self.false_alerts_per_hour,
            "false_alerts_per_1000_sessions": self.false_alerts_per_1000,
            "normal_sessions": self.normal_sessions,
            "hours_outside_incidents": self.hours_outside,
            "alerts": self.alerts,
            "alerts_off_service": self.alerts_off_service,
            "sessions": self.sessions,
            "sessions_with_services": self.sessions_with_services,
            "matched_on_service": sum(o.by_service for o in self.outcomes),
            "by_type": {t: s.to_dict() for t, s in self.types.items()},
            "per_incident": [o.to_dict() for o in self.outcomes],
        }


def incident_report(
    sessions: Sequence[ScoredSession], incidents: Sequence[Incident]
) -> IncidentReport:
    """Everything the module doc defines, for these sessions and incidents."""
    outcomes = match_incidents(sessions, incidents)
    inside = in_any_incident(sessions, incidents)
    alerted = np.array([s.alerted for s in sessions], np.bool_)
    on_some = np.zeros(len(sessions), np.bool_)  # in time and on the service of an incident
    a = _Arrays.of(sessions)
    for inc in incidents:
        for i in np.flatnonzero(a.overlapping(inc) & alerted):
            on_some[i] |= on_service(sessions[int(i)].services, inc.service)
    hours = 0.0
    if sessions:
        lo, hi = int(a.start.min()), int(a.end.max())
        hours = uncovered_ms(lo, hi, [(i.start_ms, i.end_ms) for i in incidents]) / 3_600_000
    return IncidentReport(
        outcomes=tuple(outcomes),
        types=by_type(outcomes),
        sessions=len(sessions),
        alerts=int(alerted.sum()),
        false_alerts=int((alerted & ~inside).sum()),
        alerts_off_service=int((alerted & inside & ~on_some).sum()),
        normal_sessions=int((~inside).sum()),
        hours_outside=hours,
        sessions_with_services=sum(s.services is not None for s in sessions),
    )


def format_incident_table(report: IncidentReport) -> str:
    """Per type: incidents detected and time to first alert; then the false-alert rates."""
    rows = [f"{'incident type':<22} {'detected':>9} {'rate':>6} {'median TTFA':>12}", "-" * 52]
    items = [*report.types.items(), ("all", None)]
    for name, t in items:
        d = report.to_dict() if t is None else t.to_dict()
        n, k = d["incidents"], d["detected"]
        med = d["time_to_first_alert_s"]["median"]
        rate = f"{k / n:6.2f}" if n else "     -"
        rows.append(
            f"{name:<22} {f'{k}/{n}':>9} {rate} {'-' if med is None else f'{med:.1f} s':>12}"
        )
    per_h, per_k = report.false_alerts_per_hour, report.false_alerts_per_1000
    rows.append(
        f"false alerts {report.false_alerts} outside incidents: "
        f"{'-' if per_h is None else f'{per_h:.4g}'} per hour, "
        f"{'-' if per_k is None else f'{per_k:.4g}'} per 1,000 of {report.normal_sessions} sessions"
        f"; {report.alerts_off_service} alerts in incidents off their service"
    )
    return "\n".join(rows)
