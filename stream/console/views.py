"""The JSON the page polls, built from the store: pure functions of what the console holds
(no I/O), so each view is tested on its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from schemas.scores import Alert, SurprisingEvent
from stream.console.histogram import per_minute, score_histogram
from stream.console.metrics_watch import MetricsWatch
from stream.console.patterns import Group, Pattern, group_alerts
from stream.console.store import ScorePoint, Store

SHOWN_EVENTS = 3
"""Surprising events listed in an alert row (the session view shows all of them)."""
GROUP_ALERTS_SHOWN = 3
"""Alerts listed under a group (the newest)."""
END_EVENT = "<end>"
"""The id a surprising event at position n_events has: the session ended there."""


def event_view(s: SurprisingEvent, names: Mapping[str, str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "position": s.position,
        "event_id": s.event_id,
        "name": names.get(s.event_id),
        "nll": round(s.nll, 3),
        "expected": [
            {"event_id": e.event_id, "name": names.get(e.event_id), "prob": round(e.prob, 4)}
            for e in s.expected
        ],
    }
    if s.template is not None:
        d["new_template"] = s.template
    if s.reason_text is not None:
        d["reason"] = s.reason_text
    return d


def alert_row(a: Alert, names: Mapping[str, str]) -> dict[str, Any]:
    """An alert as a row: the most surprising events, in the order they happened."""
    top = sorted(sorted(a.surprising, key=lambda s: -s.nll)[:SHOWN_EVENTS], key=_position)
    return {
        "window_id": a.window_id,
        "session_id": a.session_id,
        "window_index": a.window_index,
        "scored_at": a.scored_at,
        "score": round(a.score, 3),
        "threshold": round(a.threshold, 3),
        "model_version": a.model_version,
        "n_events": a.n_events,
        "surprising": [event_view(s, names) for s in top],
    }


def _position(s: SurprisingEvent) -> int:
    return s.position


def new_templates(alerts: Iterable[Alert]) -> dict[str, str]:
    """Event id -> template text, of the templates new to the model that alerts name."""
    return {s.event_id: s.template for a in alerts for s in a.surprising if s.template}


def group_row(g: Group, names: Mapping[str, str], verdicts: Mapping[str, str]) -> dict[str, Any]:
    shown = g.open_alerts or g.alerts
    sessions = sorted({a.session_id for a in shown})
    new = new_templates(g.alerts)
    return {
        "key": g.key,
        "pattern": [
            {"event_id": e, "name": names.get(e) or new.get(e), "new": e in new and e not in names}
            for e in g.pattern
        ],
        "alerts": len(shown),
        "sessions": len(sessions),
        "acknowledged": g.hidden,
        "acked_alerts": len(g.alerts) - len(g.open_alerts),
        "first_ms": min(a.scored_at for a in shown),
        "last_ms": max(a.scored_at for a in shown),
        "max_score": round(max(a.score for a in shown), 3),
        "verdicts": _verdict_counts(sessions, verdicts),
        "latest": [alert_row(a, names) for a in shown[:GROUP_ALERTS_SHOWN]],
    }


def _verdict_counts(sessions: Iterable[str], verdicts: Mapping[str, str]) -> dict[str, int]:
    counts = {"anomalous": 0, "normal": 0}
    for sid in sessions:
        v = verdicts.get(sid)
        if v in counts:
            counts[v] += 1
    return counts


def alerts_view(
    alerts: Sequence[Alert],
    acks: Mapping[Pattern, int],
    names: Mapping[str, str],
    verdicts: Mapping[str, str],
    recent: int = 30,
) -> dict[str, Any]:
    """Open groups (newest first), how many are acknowledged and hidden, and the most
    recent alerts one by one (newest first)."""
    groups = group_alerts(alerts, acks)
    newest = sorted(alerts, key=lambda a: a.scored_at, reverse=True)[:recent]
    return {
        "total": len(alerts),
        "groups": [group_row(g, names, verdicts) for g in groups if not g.hidden],
        "acknowledged": [group_row(g, names, verdicts) for g in groups if g.hidden],
        "recent": [alert_row(a, names) for a in newest],
    }


def heat(nll: float | None, threshold: float) -> float:
    """0..1, how surprising an event is against the threshold (1: past it)."""
    if nll is None or threshold <= 0:
        return 0.0
    return max(0.0, min(1.0, nll / threshold))


def window_timeline(a: Alert, names: Mapping[str, str]) -> dict[str, Any]:
    """An alerted window's events in order, each with its NLL where the model explained it
    (its most surprising events; the others were less surprising than all of those), and
    the end of the session when that was surprising."""
    by_pos = {s.position: s for s in a.surprising}
    floor = min((s.nll for s in a.surprising), default=None)
    events = []
    for i, e in enumerate(a.events):
        s = by_pos.get(i)
        d: dict[str, Any] = {"position": i, "event_id": e, "name": names.get(e)}
        if s is not None:
            d.update(event_view(s, names))
            d["surprising"] = True
            d["heat"] = round(heat(s.nll, a.threshold), 3)
        else:
            d["surprising"] = False
            d["heat"] = 0.0
        events.append(d)
    end = by_pos.get(len(a.events))
    end_view = None
    if end is not None:
        end_view = {**event_view(end, names), "heat": round(heat(end.nll, a.threshold), 3)}
    return {
        **alert_row(a, names),
        "first_ts": a.first_ts,
        "last_ts": a.last_ts,
        "events": events,
        "end": end_view,
        "unexplained_below": None if floor is None else round(floor, 3),
    }


def session_view(
    session_id: str,
    alerts: Sequence[Alert],
    scores: Sequence[ScorePoint],
    names: Mapping[str, str],
    verdict: str | None,
) -> dict[str, Any]:
    """The session's alerted windows as timelines, and every scored window of it."""
    return {
        "session_id": session_id,
        "verdict": verdict,
        "found": bool(alerts or scores),
        "windows": [window_timeline(a, names) for a in alerts],
        "scores": [
            {
                "window_index": p.window_index,
                "scored_at": p.scored_at,
                "score": round(p.score, 3),
                "threshold": round(p.threshold, 3),
                "anomalous": p.anomalous,
                "model_version": p.model_version,
            }
            for p in scores
        ],
    }


def distribution_view(store: Store, now_ms: int) -> dict[str, Any]:
    """The score histogram of the window against the latest threshold, and alerts and
    scored windows per minute."""
    points = list(store.scores())
    threshold = points[-1].threshold if points else _alert_threshold(store)
    hist = score_histogram((p.score for p in points), threshold)
    minutes = max(1, round(store.window_ms / 60_000))
    t, alerts = per_minute((a.scored_at for a in store.alerts()), now_ms, minutes)
    _, windows = per_minute((p.scored_at for p in points), now_ms, minutes)
    return {
        "threshold": round(threshold, 3),
        "scores": len(points),
        "anomalous": sum(p.anomalous for p in points),
        "histogram": {
            "edges": [round(e, 4) for e in hist.edges],
            "below": hist.below,
            "above": hist.above,
        },
        "per_minute": {"t": t, "alerts": alerts, "windows": windows},
    }


def _alert_threshold(store: Store) -> float:
    alerts = store.alerts()
    return alerts[-1].threshold if alerts else 0.0


def pipeline_view(watch: MetricsWatch | None) -> dict[str, Any]:
    """serve's throughput, lag per partition, dead letters and model from its /metrics."""
    if watch is None:
        return {"configured": False}
    snap = watch.latest
    last = watch.history[-1][1] if watch.history else {}
    view: dict[str, Any] = {
        "configured": True,
        "url": watch.url,
        "error": watch.error,
        "scraped_at": None if snap is None else snap.at,
        "rates": last,
        "series": watch.series(),
    }
    if snap is not None:
        view.update(
            model_version=snap.model_version,
            threshold=snap.threshold,
            ready=snap.ready,
            backlog=snap.backlog,
            lag=snap.lag,
            lag_total=sum(snap.lag.values()),
            totals=snap.counters,
        )
    return view
