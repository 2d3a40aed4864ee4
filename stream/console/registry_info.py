"""The registry panel: which model serves, every move of the `current` pointer, and the
decision records (retrain gates, hand promotions, rollbacks), newest first."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from schemas.errors import LogadError
from schemas.registry import is_registry, read_pointer
from schemas.registry_history import decision_action, decision_version, read_decisions, read_moves

SHOWN = 20
"""Moves and decisions shown (the newest)."""


def registry_view(registry: Path, shown: int = SHOWN) -> dict[str, Any]:
    """JSON for the panel; `error` says what is wrong with a registry that cannot be read."""
    view: dict[str, Any] = {"path": str(registry), "current": None, "moves": [], "decisions": []}
    if not is_registry(registry):
        view["error"] = f"{registry} is not a registry (no 'current' pointer)"
        return view
    try:
        pointer = read_pointer(registry)
    except LogadError as e:
        view["error"] = str(e)
        return view
    view["current"] = {
        "version": pointer.version,
        "previous": pointer.previous,
        "updated_at": pointer.updated_at,
    }
    view["moves"] = [asdict(m) for m in reversed(read_moves(registry)[-shown:])]
    view["decisions"] = [
        {
            "time": str(r.get("time", "")),
            "version": decision_version(r),
            "action": decision_action(r),
            "by_hand": bool(r.get("by_hand", False)),
            "reason": str(r.get("reason", "")),
            "record": r,
        }
        for r in reversed(read_decisions(registry)[-shown:])
    ]
    return view
