"""`logad models`: each bundle of a registry with its latest decision (promoted by the gate
or by hand, refused, rolled back) and its reason, marking the one serving; and the last
retrain's outcome, which for a night with too little data (`skipped`) names no bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.errors import BundleError
from schemas.registry import history_stack, is_registry, list_bundles, rollback_target
from schemas.registry_history import decision_action, decision_version, read_decisions, read_moves

_METRICS = ("val_loss", "steps", "sessions")

HEADER = [" ", "version", "data", "decision", "metrics", "reason"]


def _metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def latest_decisions(registry: Path) -> dict[str, tuple[str, str]]:
    """Each version's latest decision and its reason, from the history and the records."""
    events: list[tuple[str, str, str, str]] = []  # time, version, decision, reason
    for m in read_moves(registry):
        if m.action == "promoted":
            events.append(
                (m.time, m.version, "promoted-by-hand" if m.by_hand else "promoted", m.reason)
            )
        else:
            events.append((m.time, m.version, "restored", m.reason))
            if m.previous:
                events.append((m.time, m.previous, "rolled-back", m.reason))
    for record in read_decisions(registry):
        version = decision_version(record)
        if version is not None and decision_action(record) == "refused":
            events.append(
                (str(record.get("time", "")), version, "refused", str(record.get("reason", "")))
            )
    latest: dict[str, tuple[str, str]] = {}
    for _, version, decision, reason in sorted(events, key=lambda e: e[0]):
        latest[version] = (decision, reason)
    return latest


def model_rows(registry: Path) -> list[list[str]]:
    """One row per bundle: marker (* serving, - where a rollback goes), version, data
    range, latest decision, metrics, reason."""
    if not registry.is_dir():
        raise BundleError(f"no such registry: {registry}")
    current = back = None
    if is_registry(registry):
        current = history_stack(registry)[-1]
        try:
            back = rollback_target(registry)
        except BundleError:
            back = None
    decisions = latest_decisions(registry)
    rows = []
    for b in list_bundles(registry):
        mark = "*" if b.version == current else "-" if b.version == back else " "
        metrics = " ".join(f"{k}={_metric(b.metrics[k])}" for k in _METRICS if k in b.metrics)
        decision, reason = decisions.get(b.version, ("-", ""))
        data = f"{b.data_from or '?'}..{b.data_to or '?'}"
        rows.append([mark, b.version, data, decision, metrics or "-", reason])
    return rows


def last_retrain(registry: Path) -> str | None:
    """One line on the newest retrain record (promoted, refused or skipped), or None."""
    runs = [r for r in read_decisions(registry) if r.get("by_hand") is False]
    if not runs:
        return None
    r = runs[-1]
    action = decision_action(r)
    version = decision_version(r)
    about = f" {version}" if version is not None else ""
    return f"last retrain {r.get('time', '?')}: {action}{about}: {r.get('reason', '')}"
