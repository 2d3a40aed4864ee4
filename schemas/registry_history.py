"""A registry's history: every move of its `current` pointer (history.jsonl, appended) and
the decision records (decisions/*.json, one per retrain gate, hand promotion or rollback).

The history is what `rollback` walks back through. Replaying its moves gives the serving
stack: a promotion pushes its version, a rollback to a version on the stack pops
everything above it. A plain rollback goes to the version below the current one, so a
second rollback goes further back and never returns to the version just rolled back from.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson

HISTORY = "history.jsonl"
DECISIONS = "decisions"

Action = Literal["promoted", "rolled_back"]


@dataclass(frozen=True)
class Move:
    """One move of the `current` pointer."""

    time: str
    action: Action
    version: str
    previous: str | None
    by_hand: bool
    reason: str


def append_move(registry: Path, move: Move) -> None:
    with (registry / HISTORY).open("ab") as fh:
        fh.write(orjson.dumps(asdict(move)) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_moves(registry: Path) -> list[Move]:
    """The pointer's moves, oldest first (a torn or foreign line is skipped)."""
    try:
        lines = (registry / HISTORY).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    moves = []
    for line in lines:
        try:
            obj = orjson.loads(line)
            moves.append(Move(**obj))
        except (orjson.JSONDecodeError, TypeError):
            continue
    return moves


def serving_stack(moves: list[Move], current: str | None, previous: str | None) -> list[str]:
    """The versions that served, oldest first, ending with `current` (a registry older than
    its history starts from its pointer's previous and current version)."""
    stack: list[str] = []
    for m in moves:
        if not stack and m.previous:
            stack.append(m.previous)
        if m.action == "rolled_back" and m.version in stack:
            del stack[len(stack) - stack[::-1].index(m.version) :]
        elif not stack or stack[-1] != m.version:
            stack.append(m.version)
    if not moves and previous:
        stack.append(previous)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def write_decision(registry: Path, now: datetime, record: dict[str, Any]) -> Path:
    """Write a decision record under REGISTRY/decisions/, named by `now` (atomically)."""
    d = registry / DECISIONS
    d.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    path = d / f"{stamp}.json"
    tmp = d / f".{stamp}.tmp"
    tmp.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
    return path


def read_decisions(registry: Path) -> list[dict[str, Any]]:
    """The decision records, oldest first (an unreadable one is skipped)."""
    out = []
    for p in sorted((registry / DECISIONS).glob("*.json")):
        try:
            obj = orjson.loads(p.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def decision_version(record: dict[str, Any]) -> str | None:
    """The version a decision record is about (a retrain's candidate, else its version)."""
    cand = record.get("candidate")
    if isinstance(cand, dict):
        return str(cand.get("version"))
    v = record.get("version")
    return str(v) if v is not None else None


def decision_action(record: dict[str, Any]) -> str:
    """promoted, refused or rolled_back (records from before `action` existed: promoted
    or refused)."""
    action = record.get("action")
    if isinstance(action, str):
        return action
    return "promoted" if record.get("promoted") else "refused"
