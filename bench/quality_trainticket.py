"""Detection on real microservice logs (`make bench-trainticket`): TrainTicket from the Nezha
study, scored per incident, logad against three simple rules, on CPU.

The data directory (default data/nezha_trainticket) holds one or more days, each as
`rca_<day>/` (the fault phase: `log/*.csv.gz` and `<day>-fault_list.json`) and
`fault_free_<day>/` (`log/*.csv.gz`). bench/nezha.py turns each CSV row into a record:
trace id, time, service (the pod's deployment), level, and the message after the time,
level, logger and ids.

1. What is trained on (--train-on). A fault-phase trace is *out of incidents* when its span
   (first to last line) overlaps no incident's [inject_time - guard, inject_time +
   fault_window + guard] (--guard-s, 60 s), on any service: faults spread to callers and may
   outlast the window. Out-of-incident traces are split by epoch-aligned clock blocks of
   --block-s (600 s) on their first line: even blocks are training blocks, odd blocks
   held-out ones, so held-out normal traces are never trained on. Only the fault list's
   times choose these traces, standing in for "train on days without incidents"; no
   fault-phase label chooses a threshold or a method parameter.
   - `outside-incidents` (the default): the fault-free traces plus the training-block ones.
   - `fault-free`: the fault-free traces only (one minute, 71 traces on the shipped day).
   - `off-service`: as outside-incidents, plus the training-block traces near an incident that
     touch none of its service (the incident definition's own unit: a time span on a
     service). Held-out normal traces stay out of every incident, any service.
   outside-incidents is the default because the fault-free minute holds a fraction of the
   templates normal traffic uses: with it every method's false alarms measure that gap more
   than the method. With more normal traffic the rules' false alarms on the same held-out
   traces fall at the same detections, and logad's weakness with little validation data shows
   instead of hiding: its own threshold, the maximum of a few dozen validation windows, lands
   on its score for a never-seen event, which no trace exceeds (docs/quality.md).
2. Templates: logad's miner (trainer/mining, the Drain variant `logad parse` runs) mines the
   training lines, as `<service> <message>` so that templates are per service. Every
   fault-phase line goes through the bundle's templates the way `logad evaluate` and serve
   map raw events (trainer/mining/matcher.py), so a line unlike every training template gets
   a new id, [UNK] to the model.
3. Sessions: one per trace, its lines in time order. Training: the training traces, as daily
   files with their templates.json, through the real `logad train` with
   bench/quality_hdfs.py's recipe (tiny preset, its lr and p99.9 threshold on the trainer's
   held-out validation slice, end marker, batch budget) but for the epochs: a few hundred
   traces fill a few batches, so it takes more of them (--epochs).
4. Incidents: each injection of the fault list, from `inject_time` for `--fault-window-s`
   (120 s) on the injected pod's service (schemas/incidents.py).
5. Methods, each judging every fault-phase trace as a whole, in the same run:
   - logad: the bundle's default strategy at its own calibrated threshold (a trace's score is
     its highest window's), as `logad evaluate --incidents` scores it (the bench runs that
     command's code too and checks that it counts the same);
   - unseen event: the trace holds a template id no training trace holds;
   - unseen pair: the trace holds two consecutive template ids that follow each other in no
     training trace, or an unseen event;
   - unseen pair at ERROR/WARN (the level as a signal): an unseen event, or an unseen pair of
     which one line was logged at ERROR or WARN;
   - any ERROR: the trace holds a line logged at ERROR.
   logad's window rules (the known-mix exemption in known steps or in any order, count
   ceilings, known ends) are measured too, each way (RULE_VARIANTS), re-calibrated on the
   training days as `logad evaluate --calibrate-on` does, on TrainTicket and on HDFS
   (`logad_rules_off`, `hdfs.rules_off`).
6. Figures per method (trainer/incidents.py), incidents matched on every fault-phase trace:
   incidents detected (overall and per `inject_type`); time to first alert, a trace's alert
   time being its last line; and the headline false alarms per 1,000 normal traces (issue
   23), the denominator in the output and the JSON (`normal_traces`,
   `config.false_alarm_denominator`):
   - outside-incidents: the held-out-block traces only;
   - fault-free: the traces in no incident (in time and on its service), as before.
   Both modes also give the rate over the held-out-block traces (`held_out_normal`: the same
   traces in both, so the modes compare), over untrained traces in no incident on their
   service, and `logad evaluate --incidents`'s stricter rate per 1,000 untrained traces
   outside every incident's time (an alert inside one on another service counts as
   neither). No false-alarm figure counts a trained trace.
   The labels are audited beside them (bench/label_audit.py, `label_audit`): the held-out
   traces that log an ERROR template an incident's traces log, and whether training did.
7. Unless --skip-hdfs: quality_hdfs's recipe on data/hdfs, `logad train` then the dev F1 of
   the bundle's default strategy at its own threshold (population ratio, as quality_hdfs).

Writes bench/results/quality_trainticket.json and .png (detection per type per method); the
work files (daily files, events, bundle, `logad evaluate` plots) stay under --out. The last
line printed is `RESULT incidents_detected=X/Y false_alerts_per_1000=Z hdfs_f1=W`, for logad.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import itertools
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from bench import label_audit  # noqa: E402
from bench.hdfs_args import add_device_args  # noqa: E402
from bench.machine import report_header, results_dir, shown_path, write_result  # noqa: E402
from bench.nezha import Day, LogRow, find_days, read_rows  # noqa: E402
from schemas.errors import DataError  # noqa: E402
from schemas.events import LogEvent  # noqa: E402
from schemas.incidents import Incident, read_incidents  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.sessions import Session  # noqa: E402
from schemas.templates import TemplateSet  # noqa: E402
from trainer.incident_sessions import TimedSession  # noqa: E402
from trainer.incidents import (  # noqa: E402
    IncidentReport,
    ScoredSession,
    incident_report,
    on_service,
)
from trainer.time_gaps import gaps_from_times  # noqa: E402

DATA = ROOT / "data" / "nezha_trainticket"
WORK = ROOT / "bench" / "out" / "trainticket"
RESULTS_JSON = ROOT / "bench" / "results" / "quality_trainticket.json"
LOGAD = "logad (default strategy, own threshold)"
ALARM_LEVELS = frozenset({"ERROR", "WARN"})
METHODS = (
    LOGAD,
    "unseen event",
    "unseen event pair",
    "unseen pair at ERROR/WARN",
    "any ERROR line",
)


SERVICE_KEY, MESSAGE_KEY = "service", "message"


def miner_text(r: LogRow, key: str = SERVICE_KEY) -> str:
    """What the miner sees of a line: with SERVICE_KEY its service first, so that templates
    are per service (two services running the same code log the same text); with
    MESSAGE_KEY the message alone, as `logad parse` and serve mine it."""
    return f"{r.service} {r.message}" if key == SERVICE_KEY else r.message


# --- what is trained on ---------------------------------------------------------------------

FAULT_FREE, OUTSIDE_INCIDENTS, OFF_SERVICE = "fault-free", "outside-incidents", "off-service"
TRAIN_ON = (FAULT_FREE, OUTSIDE_INCIDENTS, OFF_SERVICE)
TRAIN, HELD_OUT, NEAR = "train", "held-out", "near an incident"
"""A fault-phase trace's role: in a training block, in a held-out block (both out of every
incident, guard included), or within an incident's guarded span (never trained on, never a
held-out normal trace)."""


def trace_spans(rows: Iterable[LogRow]) -> dict[str, tuple[int, int]]:
    """Each trace's first and last line time."""
    spans: dict[str, tuple[int, int]] = {}
    for r in rows:
        lo, hi = spans.get(r.trace_id, (r.ts_ms, r.ts_ms))
        spans[r.trace_id] = (min(lo, r.ts_ms), max(hi, r.ts_ms))
    return spans


def outside_incidents(span: tuple[int, int], incidents: Sequence[Incident], guard_ms: int) -> bool:
    """Whether a trace's span overlaps no incident's [start - guard, end + guard], whatever its
    services: a fault spreads to callers, and its effects may outlast the window."""
    lo, hi = span
    return not any(
        lo <= inc.end_ms + guard_ms and hi >= inc.start_ms - guard_ms for inc in incidents
    )


def block_role(start_ms: int, block_ms: int) -> str:
    """TRAIN in even clock blocks of `block_ms` (epoch-aligned), HELD_OUT in odd ones."""
    if block_ms <= 0:
        raise ValueError(f"block must be positive, got {block_ms} ms")
    return TRAIN if (start_ms // block_ms) % 2 == 0 else HELD_OUT


def off_service(
    span: tuple[int, int], services: frozenset[str], incidents: Sequence[Incident], guard_ms: int
) -> bool:
    """Whether a trace touches no service of an incident whose guarded span it overlaps."""
    lo, hi = span
    return not any(
        lo <= inc.end_ms + guard_ms and hi >= inc.start_ms - guard_ms
        and on_service(services, inc.service)
        for inc in incidents
    )  # fmt: skip


def trace_roles(
    spans: Mapping[str, tuple[int, int]],
    incidents: Sequence[Incident],
    guard_ms: int,
    block_ms: int,
    services: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, str]:
    """Each fault-phase trace's role (TRAIN, HELD_OUT or NEAR): out of every guarded incident,
    the block of its first line decides; no label but the fault list's times is read. With
    `services` (OFF_SERVICE), a training-block trace near an incident is TRAIN too when it
    touches none of the services of the incidents near it; HELD_OUT stays out of every one."""
    roles = {}
    for tid, span in spans.items():
        block = block_role(span[0], block_ms)
        if outside_incidents(span, incidents, guard_ms):
            roles[tid] = block
        elif block == TRAIN and services is not None:
            roles[tid] = TRAIN if off_service(span, services[tid], incidents, guard_ms) else NEAR
        else:
            roles[tid] = NEAR
    return roles


def trace_services(rows: Iterable[LogRow]) -> dict[str, frozenset[str]]:
    """The services each trace's lines come from."""
    out_: dict[str, set[str]] = {}
    for r in rows:
        out_.setdefault(r.trace_id, set()).add(r.service)
    return {k: frozenset(v) for k, v in out_.items()}


def training_rows(
    fault_free: Sequence[LogRow],
    fault_phase: Sequence[LogRow],
    roles: Mapping[str, str],
    train_on: str,
) -> list[LogRow]:
    """The lines templates are mined from and traces trained on, in time order: the fault-free
    lines, plus (OUTSIDE_INCIDENTS) the fault-phase lines of TRAIN traces."""
    if train_on == FAULT_FREE:
        return list(fault_free)
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}")
    extra = [r for r in fault_phase if roles.get(r.trace_id) == TRAIN]
    return sorted([*fault_free, *extra], key=lambda r: r.ts_ms)  # stable: ties keep order


def role_masks(
    timed: Sequence[TimedSession], roles: Mapping[str, str], train_on: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per scored trace: whether it was trained on, whether it is a held-out normal trace."""
    role = [roles.get(t.session_id, NEAR) for t in timed]
    trained = np.array([train_on != FAULT_FREE and r == TRAIN for r in role], np.bool_)
    held_out = np.array([r == HELD_OUT for r in role], np.bool_)
    return trained, held_out


# --- the data -------------------------------------------------------------------------------


@dataclasses.dataclass
class Data:
    days: list[Day]
    train_rows: list[LogRow]
    test_rows: list[LogRow]
    incidents: list[Incident]
    repeated_rows: int
    glued_rows: int


def load(data: Path, fault_window_ms: int) -> Data:
    days = find_days(data)
    if not days:
        raise DataError(f"{data}: no rca_<day>/ or fault_free_<day>/ folders")
    train_files = [p for d in days for p in d.fault_free_logs]
    test_files = [p for d in days for p in d.rca_logs]
    if not train_files or not test_files:
        raise DataError(f"{data}: needs fault-free logs and fault-phase logs")
    incidents: list[Incident] = []
    for d in days:
        if d.rca_logs and d.fault_list is None:
            raise DataError(f"{data}/rca_{d.name}: no fault list")
        if d.fault_list is not None:
            incidents += [
                dataclasses.replace(i, id=f"{d.name} {i.id}")
                for i in read_incidents(d.fault_list, fault_window_ms)
            ]
    train, dropped_a = read_rows(train_files)
    test, dropped_b = read_rows(test_files)
    return Data(
        days,
        train,
        test,
        sorted(incidents, key=lambda i: i.start_ms),
        dropped_a + dropped_b,
        sum(r.trailing_garbage for r in (*train, *test)),
    )


def mine_training(rows: Sequence[LogRow], key: str = SERVICE_KEY) -> tuple[TemplateSet, list[str]]:
    """logad's miner over the fault-free lines in time order: the set and each line's id."""
    from trainer.mining import DEFAULT_PARAMS, TemplateMiner

    miner = TemplateMiner(DEFAULT_PARAMS)
    ids = [miner.mine(miner_text(r, key))[0] for r in rows]
    return miner.to_set(), ids


def training_sessions(
    rows: Sequence[LogRow], ids: Sequence[str], with_gaps: bool = False
) -> list[Session]:
    """One Session per trace, its lines in time order; `with_gaps`: carrying the gaps
    between its lines' times (a time-aware model trains on them)."""
    out_: list[Session] = []
    for tid, lines in rows_by_trace(rows).items():
        times = [rows[i].ts_ms for i in lines]
        out_.append(
            Session(
                tid,
                tuple(ids[i] for i in lines),
                start_ts=times[0],
                end_ts=times[-1],
                label=0,
                gaps_ms=gaps_from_times(times) if with_gaps else None,
            )
        )
    return out_


def rows_by_trace(rows: Sequence[LogRow]) -> dict[str, list[int]]:
    """Each trace's row indices in time order (ties in row order)."""
    by_trace: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(rows):
        by_trace.setdefault(r.trace_id, []).append((r.ts_ms, i))
    return {tid: [i for _, i in sorted(items)] for tid, items in by_trace.items()}


def write_events(path: Path, rows: Iterable[LogRow], key: str = SERVICE_KEY) -> None:
    """Raw LogEvents (a message, no event id) in time order: `logad evaluate`'s input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=3) as fh:
        for r in rows:
            e = LogEvent(r.ts_ms, r.service, r.trace_id, None, r.level, miner_text(r, key))
            fh.write(e.encode() + b"\n")


def write_incidents(path: Path, incidents: Sequence[Incident]) -> None:
    path.write_bytes(b"".join(orjson.dumps(i.to_dict()) + b"\n" for i in incidents))


# --- the rules ------------------------------------------------------------------------------


def pairs(events: Sequence[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(events))


def unseen_event_flags(train: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> list[bool]:
    known = {e for s in train for e in s}
    return [any(e not in known for e in s) for s in test]


def unseen_pair_flags(train: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> list[bool]:
    known_pairs = set().union(*(pairs(s) for s in train)) if train else set()
    known = {e for s in train for e in s}
    return [any(e not in known for e in s) or not pairs(s) <= known_pairs for s in test]


def unseen_alarm_pair_flags(
    train: Sequence[Sequence[str]],
    test: Sequence[Sequence[str]],
    test_levels: Sequence[Sequence[str | None]],
) -> list[bool]:
    """The level as a signal: an unseen event, or an unseen pair of which one line was logged
    at ERROR or WARN (a new order among INFO lines alone is not enough)."""
    known_pairs = set().union(*(pairs(s) for s in train)) if train else set()
    known = {e for s in train for e in s}
    flags = []
    for seq, levels in zip(test, test_levels, strict=True):
        if len(seq) != len(levels):
            raise ValueError(f"{len(seq)} events but {len(levels)} levels")
        steps = zip(itertools.pairwise(seq), itertools.pairwise(levels), strict=True)
        flags.append(
            any(e not in known for e in seq)
            or any(p not in known_pairs and ALARM_LEVELS & {*lv} for p, lv in steps)
        )
    return flags


def trace_levels(rows: Iterable[LogRow]) -> dict[str, list[str | None]]:
    """Each trace's lines' levels, in the order its events are scored (time, then file)."""
    out_: dict[str, list[str | None]] = {}
    for r in rows:
        out_.setdefault(r.trace_id, []).append(r.level)
    return out_


def trace_lines(
    rows: Sequence[LogRow], timed: Sequence[TimedSession]
) -> list[label_audit.TraceLines]:
    """Each timed trace's lines (template id, level, message), in the order it is scored."""
    levels = trace_levels(rows)
    messages: dict[str, list[str]] = {}
    for r in rows:
        messages.setdefault(r.trace_id, []).append(r.message)
    return [
        label_audit.TraceLines(t.events, levels[t.session_id], messages[t.session_id])
        for t in timed
    ]


def training_lines(rows: Sequence[LogRow], ids: Sequence[str]) -> list[label_audit.TraceLines]:
    """Each training trace's lines with the ids mined for them, in time order."""
    return [
        label_audit.TraceLines(
            [ids[i] for i in lines],
            [rows[i].level for i in lines],
            [rows[i].message for i in lines],
        )
        for lines in rows_by_trace(rows).values()
    ]


def incident_traces(
    sessions: Sequence[ScoredSession],
    incidents: Sequence[Incident],
    trained: np.ndarray | None = None,
) -> list[list[int]]:
    """Per incident, in order: its traces (those not `trained`), in time and on its service."""
    return [
        [
            i
            for i, s in enumerate(sessions)
            if (trained is None or not trained[i])
            and s.start_ms <= inc.end_ms
            and s.end_ms >= inc.start_ms
            and on_service(s.services, inc.service)
        ]
        for inc in incidents
    ]


def flagged(
    timed: Sequence[TimedSession], flags: Sequence[bool], scores: Sequence[float] | None = None
) -> list[ScoredSession]:
    """Sessions judged by `flags` (a rule), alert time at the trace's last line."""
    return [
        ScoredSession(
            t.session_id,
            t.start_ms,
            t.end_ms,
            float(f) if scores is None else float(scores[i]),
            t.end_ms if f else None,
            t.services,
        )
        for i, (t, f) in enumerate(zip(timed, flags, strict=True))
    ]


# --- the figures ----------------------------------------------------------------------------


def in_incident_on_service(
    sessions: Sequence[ScoredSession], incidents: Sequence[Incident]
) -> np.ndarray:
    """Per trace: whether it overlaps some incident in time and touches its service."""
    inside = np.zeros(len(sessions), np.bool_)
    for idx in incident_traces(sessions, incidents):
        inside[idx] = True
    return inside


def since_injection_s(session: ScoredSession, incidents: Sequence[Incident]) -> float | None:
    """Seconds from the latest injection, before the trace starts, on a service the trace
    touches; None: no such injection. A held-out false alarm a few minutes after one may be
    the fault's aftermath, which the fixed-length incident window calls normal."""
    starts = [
        inc.start_ms
        for inc in incidents
        if inc.start_ms <= session.start_ms and on_service(session.services, inc.service)
    ]
    return (session.start_ms - max(starts)) / 1000 if starts else None


AFTERMATH_S = 600.0
"""A held-out false alarm this soon after an injection on its service counts as possibly the
fault's aftermath (reported beside the headline, never instead of it)."""


def aftermath(
    alerted: np.ndarray,
    held_out: np.ndarray,
    sessions: Sequence[ScoredSession],
    incidents: Sequence[Incident],
) -> dict[str, Any]:
    """The held-out false alarms by time since the latest injection on a service they touch,
    and the rate over the held-out traces not that soon after one."""
    soon = np.zeros(len(sessions), np.bool_)
    since: list[float | None] = [None] * len(sessions)
    for i in np.flatnonzero(held_out):
        x = since[i] = since_injection_s(sessions[int(i)], incidents)
        soon[i] = x is not None and x <= AFTERMATH_S
    other = held_out & ~soon
    return {
        "within_s": AFTERMATH_S,
        "held_out_traces_soon_after_injection_on_their_service": int(soon.sum()),
        "false_alerts_soon_after_injection_on_their_service": int((alerted & soon).sum()),
        "seconds_since_injection": sorted(
            round(x, 1) for i, x in enumerate(since) if x is not None and soon[i] and alerted[i]
        ),
        "other_false_alerts": false_alarms(alerted, other),
    }


def false_alarms(alerted: np.ndarray, normal: np.ndarray) -> dict[str, Any]:
    """Alerted traces among `normal` ones, and per 1,000 of them."""
    n, k = int(normal.sum()), int((alerted & normal).sum())
    return {"traces": n, "false_alerts": k, "per_1000": round(1000 * k / n, 2) if n else None}


def method_row(
    name: str,
    sessions: Sequence[ScoredSession],
    incidents: Sequence[Incident],
    normal: np.ndarray | None = None,
    trained: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
) -> dict[str, Any]:
    """One method's figures. Incidents are matched on every trace; no false-alarm figure counts
    a `trained` trace. The headline false alarms are over `normal` traces (default: those in no
    incident on its service); `held_out` adds the figure over those traces."""
    if trained is None:
        trained = np.zeros(len(sessions), np.bool_)
    untrained = [s for s, t in zip(sessions, trained, strict=True) if not t]
    # A trained trace lies outside every incident's span, so it detects none: matching the
    # untrained ones detects the same, and keeps trained traces out of the strict rate.
    rep: IncidentReport = incident_report(untrained, incidents)
    d = rep.to_dict()
    alerted = np.array([s.alerted for s in sessions], np.bool_)
    anomalous = in_incident_on_service(sessions, incidents)
    broad = ~anomalous & ~trained
    normal = broad if normal is None else normal
    if (normal & trained).any():
        raise ValueError("a trained trace cannot count as a normal one")
    head = false_alarms(alerted, normal)
    extra = (
        {}
        if held_out is None
        else {
            "held_out_normal": false_alarms(alerted, held_out),
            "held_out_aftermath": aftermath(alerted, held_out, sessions, incidents),
        }
    )
    return {
        "method": name,
        "incidents": len(incidents),
        "detected": rep.detected,
        "detection_rate": round(rep.detected / len(incidents), 4) if incidents else None,
        "by_type": {
            t: {"incidents": v["incidents"], "detected": v["detected"]}
            | {"median_time_to_first_alert_s": v["time_to_first_alert_s"]["median"]}
            for t, v in d["by_type"].items()
        },
        "time_to_first_alert_s": d["time_to_first_alert_s"],
        "false_alerts_per_1000": head["per_1000"],
        "false_alerts": head["false_alerts"],
        "normal_traces": head["traces"],
        "not_in_incident_on_service_untrained": false_alarms(alerted, broad),
        **extra,
        "traces_in_incidents_on_service": int(anomalous.sum()),
        "traces_caught": round(float(alerted[anomalous].mean()), 4) if anomalous.any() else None,
        "alerted_traces": int(alerted.sum()),
        "outside_incident_time": {
            "false_alerts": rep.false_alerts,
            "per_1000_traces": None
            if rep.false_alerts_per_1000 is None
            else round(rep.false_alerts_per_1000, 2),
            # No per-hour rate: the fault phase is minute files with gaps of minutes to
            # hours between them, which incident_report would count as observed time.
            "traces": rep.normal_sessions,
            "alerts_in_incident_time_off_service": rep.alerts_off_service,
        },
        "per_incident": [
            {
                "id": o.incident.id,
                "type": o.incident.type,
                "service": o.incident.service,
                "detected": o.detected,
                "time_to_first_alert_s": None if o.delay_ms is None else o.delay_ms / 1000,
                "traces": o.sessions,
                "alerted": o.alerted,
            }
            for o in rep.outcomes
        ],
    }


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def table(rows: Sequence[Mapping[str, Any]], types: Sequence[str]) -> str:
    head = f"{'method':<42} {'detected':>9} " + " ".join(f"{t[:14]:>14}" for t in types)
    head += f" {'FA/1000':>8} {'held-out':>9} {'FA/1000 (out of time)':>22} {'median TTFA':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        per = " ".join(
            f"{r['by_type'][t]['detected']}/{r['by_type'][t]['incidents']:<}".rjust(14)
            if t in r["by_type"]
            else f"{'-':>14}"
            for t in types
        )
        strict = r["outside_incident_time"]["per_1000_traces"]
        held = r.get("held_out_normal", {}).get("per_1000")
        lines.append(
            f"{r['method']:<42} {r['detected']}/{r['incidents']:<6} {per} "
            f"{r['false_alerts_per_1000']!s:>8} {'-' if held is None else held:>9} "
            f"{'-' if strict is None else strict:>22} "
            f"{fmt_s(r['time_to_first_alert_s']['median']):>12}"
        )
    return "\n".join(lines)


def plot(
    rows: Sequence[Mapping[str, Any]],
    types: Sequence[str],
    path: Path,
    title: str,
    normal: str = "normal traces",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*types, "all"]
    fig, ax = plt.subplots(figsize=(10, 5.6))
    width = 0.8 / len(rows)
    for k, r in enumerate(rows):
        rates = [
            r["by_type"][t]["detected"] / r["by_type"][t]["incidents"] if t in r["by_type"] else 0
            for t in types
        ] + [r["detected"] / r["incidents"]]
        xs = np.arange(len(groups)) + (k - (len(rows) - 1) / 2) * width
        label = f"{r['method']}: {r['false_alerts_per_1000']} FA / 1,000 {normal}"
        bars = ax.bar(xs, rates, width, label=label)
        for b, rate in zip(bars, rates, strict=True):
            ax.text(
                b.get_x() + b.get_width() / 2, rate + 0.01, f"{rate:.0%}", ha="center", fontsize=7
            )
    counts = {t: rows[0]["by_type"][t]["incidents"] for t in types}
    ax.set_xticks(
        np.arange(len(groups)),
        [f"{t}\n({counts[t]})" for t in types] + [f"all\n({rows[0]['incidents']})"],
    )
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("incidents detected")
    ax.set_title(title, fontsize=10)
    # Below the axes: above the bars it would hide them.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- HDFS -----------------------------------------------------------------------------------


def hdfs_section(a: argparse.Namespace) -> dict[str, Any]:
    """quality_hdfs's recipe: `logad train` on data/hdfs, then the dev F1 of the bundle's
    default strategy at its own threshold (`logad evaluate`'s API)."""
    from bench.quality_hdfs import POPULATION, train_bundle
    from bench.quality_hdfs import parser as quality_parser
    from trainer.evaluate_run import evaluate_bundle
    from trainer.evaluate_settings import EvaluateSettings, PopulationSettings
    from trainer.scorer_settings import ScorerSettings

    work = a.out / "hdfs"
    recipe = quality_parser().parse_args(
        ["--data", str(a.hdfs_data), "--out", str(work), "--threads", str(a.threads),
         "--device", a.device, "--seed", str(a.seed)]
    )  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    bundle = work / "model"
    out(f"  logad train on {shown_path(a.hdfs_data / 'train.jsonl')} (quality_hdfs's recipe) ...")
    train_s = train_bundle(a.hdfs_data / "train.jsonl", bundle, recipe, end_marker=True)
    settings = EvaluateSettings(
        token_cache_dir=work / "token-cache",
        scoring=ScorerSettings(device=a.device),
        population=PopulationSettings(POPULATION.normals, POPULATION.abnormals),
    )
    t0 = time.perf_counter()
    report, _ = evaluate_bundle(
        settings,
        bundle,
        [a.hdfs_data / "dev_normal.jsonl"],
        [a.hdfs_data / "dev_abnormal.jsonl"],
        None,
        work / "report",
    )
    d = report.detection
    variants = {}
    for name, overrides in RULE_VARIANTS.items():
        out(f"  HDFS, {name} ...")
        v, _ = evaluate_bundle(
            dataclasses.replace(settings, **overrides),  # type: ignore[arg-type]
            bundle,
            [a.hdfs_data / "dev_normal.jsonl"],
            [a.hdfs_data / "dev_abnormal.jsonl"],
            [a.hdfs_data / "train.jsonl"],
            work / f"report-{name.replace(' ', '-')}",
        )
        vd = v.detection
        variants[name] = {
            "f1": round(vd.f1, 4),
            "precision": round(vd.precision, 4),
            "recall": round(vd.recall, 4),
            "auroc": round(vd.auroc, 4),
            "threshold": vd.threshold,
        }
    return {
        "f1": round(d.f1, 4),
        "precision": round(d.precision, 4),
        "recall": round(d.recall, 4),
        "fpr": round(d.fpr, 5),
        "auroc": round(d.auroc, 4),
        "strategy": report.name,
        "threshold": d.threshold,
        "threshold_source": report.threshold_source,
        "training_seconds": round(train_s, 1),
        "scoring_seconds": round(time.perf_counter() - t0, 1),
        "rules_off": variants,
    }


# --- main -----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help="a directory of rca_<day>/ and fault_free_<day>/ folders (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, default=WORK, help="work directory (default: %(default)s)")
    p.add_argument(
        "--results", type=Path, default=RESULTS_JSON, help="results JSON (default: %(default)s); "
        "the plot is written beside it, as .png",
    )  # fmt: skip
    p.add_argument(
        "--skip-hdfs",
        action="store_true",
        help="do not train and score HDFS (prints hdfs_f1=skipped)",
    )
    p.add_argument(
        "--hdfs-data",
        type=Path,
        default=ROOT / "data" / "hdfs",
        help="HDFS data for the F1 check (default: %(default)s)",
    )
    p.add_argument(
        "--fault-window-s",
        type=float,
        default=120.0,
        help="an incident lasts this long from its injection (default: %(default)s)",
    )
    p.add_argument(
        "--train-on",
        choices=TRAIN_ON,
        default=OUTSIDE_INCIDENTS,
        help="what logad trains on and the rules learn from (module doc; default: %(default)s)",
    )
    p.add_argument(
        "--guard-s",
        type=float,
        default=60.0,
        help="a trace this close to an incident's span, on any service, is neither trained on "
        "nor a held-out normal trace (default: %(default)s)",
    )
    p.add_argument(
        "--block-s",
        type=float,
        default=600.0,
        help="clock blocks that alternate between training and held-out normal traces "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=100,
        help="training epochs on the training traces (default: %(default)s: a few hundred "
        "traces fill a few batches, so far more epochs than HDFS's 60 to take some steps)",
    )
    p.add_argument(
        "--tokens-per-batch",
        type=int,
        default=4096,
        help="training batch budget (default: %(default)s, quality_hdfs's)",
    )
    p.add_argument(
        "--template-key",
        choices=(SERVICE_KEY, MESSAGE_KEY),
        default=SERVICE_KEY,
        help="what templates are mined from: the service and the message, or the message "
        "alone (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument(
        "--time-buckets",
        type=int,
        default=0,
        help="logad trains time-aware on the gaps between a trace's lines (`logad train "
        "--time-buckets`) and scores the fault-phase traces with theirs; 0: time-blind, as "
        "before. Not 0 needs --results elsewhere than the committed JSON (default: %(default)s)",
    )
    p.add_argument(
        "--val-covers-events",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="`logad train --val-covers-events`: an event only the validation slice holds has "
        "its first window trained on (default: off, as `logad train`)",
    )
    add_device_args(p, "where the models train and score")
    return p


def normal_desc(a: argparse.Namespace) -> str:
    """What the headline's normal traces are, per --train-on."""
    if a.train_on != FAULT_FREE:
        return (
            "held-out normal traces: fault-phase traces in odd blocks, out of every incident "
            "(guard included, any service), never trained on"
        )
    return "fault-phase traces in no incident (in time and on its service)"


RULE_VARIANTS: dict[str, dict[str, bool]] = {
    "known mixes in known steps": {"known_mixes": True, "known_pairs": True},
    "known mixes in any order": {"known_mixes": True, "known_pairs": False},
    "no known-mix exemption": {"known_mixes": False, "known_pairs": False},
    "no count ceilings": {"count_ceilings": False},
    "neither window rule": {"known_mixes": False, "known_pairs": False, "count_ceilings": False},
    "no known ends": {"known_ends": False},
}
"""logad's window rules each way, each re-calibrated on the training days (issue 23: the
rules must earn their place per dataset); the bundle's own choice is the headline row."""


BUDGET_VARIANTS: dict[str, dict[str, Any]] = {
    "budget 1 per 1,000 windows, POT": {"alert_budget": 1.0, "threshold_method": "pot"},
    "budget 10 per 1,000 windows, POT": {"alert_budget": 10.0, "threshold_method": "pot"},
}
"""logad's default strategy at thresholds from a false-alert budget (`logad evaluate
--alert-budget N --threshold-method pot`), re-calibrated on the training days: the target's
1 per 1,000 and a looser one. A trace is one window here but for the few past 510 lines."""


def judge_traces(
    scorer: Any, timed: Sequence[TimedSession], desc: str
) -> tuple[list[ScoredSession], Any]:
    """Every trace scored by `scorer` as `logad evaluate` scores it, judged at its threshold;
    and the run (its window results)."""
    from trainer.evaluate import run_windows
    from trainer.incident_sessions import judged_sessions
    from trainer.time_gaps import gaps_of

    def window_scores(batch: list[Any]) -> list[float]:
        # The events file's sessions carry their gaps (`TimedEvents`), windows too; a
        # time-blind bundle does not look, a time-aware one scores them as evaluate does.
        return [r.score for r in scorer.score_events(batch, None, [gaps_of(w) for w in batch])]

    run = run_windows(window_scores, [t.events for t in timed], desc=desc)
    return judged_sessions(timed, run.session_scores(float), scorer.threshold), run


def score_variant(
    a: argparse.Namespace,
    bundle: Path,
    days_dir: Path,
    timed: Sequence[TimedSession],
    overrides: Mapping[str, Any],
) -> tuple[list[ScoredSession], float]:
    """Every trace judged by the bundle with its strategy or threshold rule overridden, at the
    threshold `logad evaluate --calibrate-on` re-derives from the training days' validation
    slice."""
    from trainer.evaluate_run import load_scorer
    from trainer.evaluate_settings import EvaluateSettings
    from trainer.scorer_settings import ScorerSettings

    settings = EvaluateSettings(
        token_cache_dir=a.out / "token-cache",
        scoring=ScorerSettings(device=a.device),
        **overrides,  # type: ignore[arg-type]
    )
    scorer, _, _ = load_scorer(settings, bundle, [days_dir])
    judged, _ = judge_traces(scorer, timed, "rules off")
    return judged, scorer.threshold


def score_logad(
    a: argparse.Namespace, bundle: Path, events: Path, incidents_file: Path
) -> tuple[list[TimedSession], list[ScoredSession], dict[str, Any]]:
    """The bundle on every fault-phase trace, as `logad evaluate --incidents` scores them; that
    command's code is run too, and must count the same."""
    from schemas.bundle import read_bundle_templates
    from trainer.evaluate_run import evaluate_incidents, load_scorer
    from trainer.evaluate_settings import EvaluateSettings
    from trainer.incident_sessions import read_timed_sessions
    from trainer.mining.matcher import TemplateMatcher
    from trainer.scorer_settings import ScorerSettings

    settings = EvaluateSettings(
        token_cache_dir=a.out / "token-cache",
        fault_window_s=a.fault_window_s,
        scoring=ScorerSettings(device=a.device),
    )
    scorer, cal, source = load_scorer(settings, bundle, None)
    templates = read_bundle_templates(bundle)
    matcher = TemplateMatcher(templates) if templates is not None else None
    timed = read_timed_sessions([events], matcher)

    t0 = time.perf_counter()
    sessions, run = judge_traces(scorer, timed, "trainticket")
    scoring_s = time.perf_counter() - t0
    product, _, _ = evaluate_incidents(
        settings,
        incidents_file,
        bundle=bundle,
        session_files=[events],
        scores_files=[],
        calibrate_on=None,
        report_dir=a.out / "evaluate-report",
    )
    mine = incident_report(sessions, read_incidents(incidents_file, round(a.fault_window_s * 1000)))
    if (mine.detected, mine.false_alerts, mine.alerts) != (
        product.detected,
        product.false_alerts,
        product.alerts,
    ):
        raise SystemExit(
            "the bench and `logad evaluate --incidents` disagree: "
            f"{(mine.detected, mine.false_alerts, mine.alerts)} vs "
            f"{(product.detected, product.false_alerts, product.alerts)}"
        )
    info = {
        "threshold": scorer.threshold,
        "threshold_source": source,
        "calibration_windows": cal.n_windows,
        "strategy": scorer.strategy.to_dict(),
        "new_templates_in_fault_phase": None if matcher is None else matcher.new_templates,
        "scoring_seconds": round(scoring_s, 1),
        "windows": len(run.results),
        "same_as_logad_evaluate_incidents": True,
    }
    return timed, sessions, info


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.time_buckets and a.results.resolve() == RESULTS_JSON:
        # The committed figures are the time-blind model's: a time-aware run goes elsewhere.
        raise SystemExit("--time-buckets needs --results elsewhere than the committed JSON")
    import torch

    from bench.quality_hdfs import parser as quality_parser
    from bench.quality_hdfs import train_bundle
    from bench.raw_hdfs import write_days
    from schemas.bundle import verify_bundle
    from schemas.runtime.logs import configure_logging
    from schemas.templates import write_templates

    configure_logging("warning", None)
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    window_ms = round(a.fault_window_s * 1000)

    out(f"[1/5] reading {shown_path(a.data)} ...")
    data = load(a.data, window_ms)
    out(
        f"  {len(data.days)} day(s): {len(data.train_rows):,} fault-free lines, "
        f"{len(data.test_rows):,} fault-phase lines ({data.repeated_rows:,} repeated rows "
        f"dropped), {len(data.incidents)} injections"
    )

    guard_ms, block_ms = round(a.guard_s * 1000), round(a.block_s * 1000)
    services = trace_services(data.test_rows) if a.train_on == OFF_SERVICE else None
    roles = trace_roles(trace_spans(data.test_rows), data.incidents, guard_ms, block_ms, services)
    n_role = {r: sum(v == r for v in roles.values()) for r in (TRAIN, HELD_OUT, NEAR)}
    out(
        f"  fault-phase traces: {n_role[TRAIN]:,} in training blocks, {n_role[HELD_OUT]:,} in "
        f"held-out blocks (out of every incident, guard {a.guard_s:g} s, blocks of "
        f"{a.block_s:g} s), {n_role[NEAR]:,} near an incident"
    )
    train_rows = training_rows(data.train_rows, data.test_rows, roles, a.train_on)
    trained_from = (
        "fault-free traces"
        if a.train_on == FAULT_FREE
        else "fault-free and training-block fault-phase traces"
    )

    out(f"[2/5] mining templates on the lines of the {trained_from}; daily files and events ...")
    templates, ids = mine_training(train_rows, a.template_key)
    train_sessions = training_sessions(train_rows, ids, with_gaps=a.time_buckets > 0)
    days_dir = a.out / "days"
    write_days(days_dir, train_sessions)
    write_templates(days_dir / "templates.json", templates)
    events = a.out / "rca_events.jsonl.gz"
    write_events(events, data.test_rows, a.template_key)
    incidents_file = a.out / "incidents.jsonl"
    write_incidents(incidents_file, data.incidents)
    out(f"  {len(templates.templates)} templates from {len(train_sessions)} {trained_from}")

    out(f"[3/5] logad train on the {trained_from} ...")
    recipe = quality_parser().parse_args(
        ["--out", str(a.out), "--threads", str(a.threads), "--device", a.device,
         "--seed", str(a.seed), "--epochs", str(a.epochs),
         "--tokens-per-batch", str(a.tokens_per_batch)]
    )  # fmt: skip
    bundle = a.out / "model"
    covers = ["--val-covers-events", str(a.val_covers_events).lower()]
    train_s = train_bundle(
        days_dir, bundle, recipe, end_marker=True, time_buckets=a.time_buckets, extra=covers
    )
    metrics = verify_bundle(bundle).metrics
    out(f"  trained in {train_s:.0f} s ({metrics.get('steps')} steps)")

    out("[4/5] scoring the fault-phase traces: logad and the three rules ...")
    timed, logad_sessions, logad_info = score_logad(a, bundle, events, incidents_file)
    train_seqs = [s.events for s in train_sessions]
    test_seqs = [t.events for t in timed]
    errors = {r.trace_id for r in data.test_rows if r.level == "ERROR"}
    levels = trace_levels(data.test_rows)
    test_levels = [levels[t.session_id] for t in timed]
    rules: dict[str, Callable[[], list[bool]]] = {
        "unseen event": lambda: unseen_event_flags(train_seqs, test_seqs),
        "unseen event pair": lambda: unseen_pair_flags(train_seqs, test_seqs),
        "unseen pair at ERROR/WARN": lambda: unseen_alarm_pair_flags(
            train_seqs, test_seqs, test_levels
        ),
        "any ERROR line": lambda: [t.session_id in errors for t in timed],
    }
    judged = {LOGAD: logad_sessions} | {k: flagged(timed, f()) for k, f in rules.items()}
    trained, held_out = role_masks(timed, roles, a.train_on)
    # fault-free keeps its normal traces (in no incident on their service); outside-incidents
    # counts only held-out-block ones, never trained on.
    normal = held_out if a.train_on != FAULT_FREE else None
    rows = [
        method_row(name, judged[name], data.incidents, normal, trained, held_out)
        for name in METHODS
    ]
    types = sorted({i.type or "(no type)" for i in data.incidents})
    out(table(rows, types))
    out(
        f"  FA/1000: false alarms per 1,000 of {rows[0]['normal_traces']:,} {normal_desc(a)}; "
        f"held-out: per 1,000 of the {int(held_out.sum()):,} held-out-block traces; "
        f"{int(trained.sum()):,} trained fault-phase traces counted in neither"
    )
    if "held_out_aftermath" in rows[0]:
        am = rows[0]["held_out_aftermath"]
        other = am["other_false_alerts"]
        out(
            f"  logad's held-out false alarms: "
            f"{am['false_alerts_soon_after_injection_on_their_service']} within "
            f"{am['within_s']:g} s after an injection on a service they touch (at "
            f"{', '.join(f'{x:g}' for x in am['seconds_since_injection']) or '-'} s), "
            f"of {am['held_out_traces_soon_after_injection_on_their_service']} held-out traces "
            f"that soon; {other['false_alerts']} of the other {other['traces']} "
            f"({other['per_1000']} per 1,000)"
        )
    audit = label_audit.shared_error_templates(
        trace_lines(data.test_rows, timed),
        held_out,
        training_lines(train_rows, ids),
        {
            inc.id: idx
            for inc, idx in zip(
                data.incidents,
                incident_traces(logad_sessions, data.incidents, trained),
                strict=True,
            )
        },
        np.array([s.alerted for s in logad_sessions], np.bool_),
        [since_injection_s(s, data.incidents) for s in logad_sessions],
    )
    out(
        f"  labels: {audit['held_out_traces_with_an_incident_error_unseen_in_training']} of the "
        f"{audit['held_out_traces']} held-out traces log an ERROR template that an incident's "
        f"traces log and no training trace does; logad alerted on {audit['of_them_alerted']} "
        "of them "
        f"(of its {audit['held_out_alerted']} held-out false alarms)"
    )
    for t in audit["templates"]:
        incs = ", ".join(f"{i['id']} {i['traces_with_it']}/{i['traces']}" for i in t["incidents"])
        out(
            f"    {t['template']} in {t['held_out_traces']} held-out traces (at "
            f"{', '.join(f'{x:g}' for x in t['seconds_since_injection']) or '-'} s after an "
            f"injection on their service), {t['training_traces']} training traces; incidents: "
            f"{incs}: {t['example'][:100]}"
        )

    def variant_rows(variants: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        found = []
        for name, overrides in variants.items():
            judged_v, threshold_v = score_variant(a, bundle, days_dir, timed, overrides)
            row = method_row(f"logad, {name}", judged_v, data.incidents, normal, trained, held_out)
            found.append(row | {"overrides": overrides, "threshold": threshold_v})
        out(table([rows[0], *found], types))
        return found

    out("  logad's window rules each way, re-calibrated on the training days ...")
    rules_off = variant_rows(RULE_VARIANTS)
    out("  logad at thresholds from a false-alert budget, re-calibrated on the training days ...")
    budgets = variant_rows(BUDGET_VARIANTS)

    hdfs: dict[str, Any] | None = None
    if a.skip_hdfs:
        out("[5/5] HDFS: skipped (--skip-hdfs)")
    else:
        out("[5/5] HDFS dev F1 with quality_hdfs's recipe ...")
        hdfs = hdfs_section(a)
        out(f"  HDFS dev F1 {hdfs['f1']} (precision {hdfs['precision']}, recall {hdfs['recall']})")

    head = rows[0]
    results = results_dir() / RESULTS_JSON.name if a.results == RESULTS_JSON else a.results
    png = results.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(
        rows,
        types,
        png,
        f"TrainTicket (Nezha), {', '.join(d.name for d in data.days)}: incidents detected per "
        f"type\n(incident = {a.fault_window_s:g} s from injection on the injected service; "
        f"logad trained on {len(train_sessions)} {trained_from})",
        "held-out normal traces" if a.train_on != FAULT_FREE else "normal traces",
    )
    payload = report_header("quality_trainticket") | {
        "config": {
            "data": shown_path(a.data),
            "days": [d.name for d in data.days],
            "fault_window_s": a.fault_window_s,
            "incident": "from inject_time for fault_window_s, on the injected pod's service",
            "train_on": a.train_on,
            "trained_on": trained_from,
            "template_key": a.template_key,
            "guard_s": a.guard_s,
            "block_s": a.block_s,
            "split": "a fault-phase trace whose span overlaps no incident's [start - guard_s, "
            "end + guard_s] on any service is a training trace when its first line falls in an "
            "even block_s clock block (epoch-aligned), a held-out normal trace in an odd one; "
            "the rest are near an incident. Only the fault list's times choose them."
            + {
                OUTSIDE_INCIDENTS: "",
                OFF_SERVICE: " Off-service: a training-block trace near an incident is a "
                "training trace too when it touches none of those incidents' services.",
                FAULT_FREE: " (not trained on: --train-on fault-free; the held-out figure is "
                "reported for comparison)",
            }[a.train_on],
            "normal_trace": normal_desc(a),
            "false_alarm_denominator": rows[0]["normal_traces"],
            "alert_time": "a trace's last line",
            "preset": recipe.preset,
            "epochs": a.epochs,
            "lr": recipe.lr,
            "tokens_per_batch": a.tokens_per_batch,
            "warmup_steps": recipe.warmup_steps,
            "val_fraction": recipe.val_fraction,
            "threshold_quantile": recipe.threshold_quantile,
            "seed": a.seed,
            "time_buckets": a.time_buckets,
            "val_covers_events": a.val_covers_events,
            "threads": a.threads,
            "device": a.device,
        },
        "data": {
            "fault_free_lines": len(data.train_rows),
            "fault_phase_lines": len(data.test_rows),
            "repeated_rows_dropped": data.repeated_rows,
            "rows_with_glued_bytes": data.glued_rows,
            "fault_free_traces": len({r.trace_id for r in data.train_rows}),
            "training_traces": len(train_sessions),
            "fault_phase_traces_by_role": {
                "trained": int(trained.sum()),
                "held_out_normal": int(held_out.sum()),
                "near_an_incident": n_role[NEAR],
                "in_training_blocks": n_role[TRAIN],
            },
            "fault_phase_traces": len(timed),
            "incidents": len(data.incidents),
            "incidents_by_type": {t: head["by_type"][t]["incidents"] for t in types},
            "templates_mined": len(templates.templates),
        },
        "training": {
            "seconds": round(train_s, 1),
            "steps": metrics.get("steps"),
            "train_windows": metrics.get("train_windows"),
            "val_windows": metrics.get("val_windows"),
            "val_loss": metrics.get("val_loss"),
        },
        "logad": logad_info,
        "methods": rows,
        "logad_rules_off": rules_off,
        "logad_budgets": budgets,
        "label_audit": audit,
        "hdfs": hdfs if hdfs is not None else "skipped",
        "plot": shown_path(png),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    path = write_result(
        "quality_trainticket", payload, path=None if a.results == RESULTS_JSON else a.results
    )
    out(f"wrote {shown_path(path)} and {shown_path(png)}")
    hdfs_f1 = "skipped" if hdfs is None else f"{hdfs['f1']:.4f}"
    out(
        f"RESULT incidents_detected={head['detected']}/{head['incidents']} "
        f"false_alerts_per_1000={head['false_alerts_per_1000']} hdfs_f1={hdfs_f1}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
