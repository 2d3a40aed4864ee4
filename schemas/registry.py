"""Model registry: a directory of bundles (one sub-directory per version) plus a `current`
pointer file, replaced atomically, so a reader never sees a half-written pointer.

    registry/
      v20261128T010000Z-ab12cd/   a bundle
      v20261129T010000Z-ef34ab/   a bundle
      current                      {"version": ..., "previous": ..., "updated_at": ...}
      history.jsonl                every move of `current` (schemas/registry_history.py)
      decisions/                   decision records: retrain gates, hand promotions, rollbacks
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from schemas.bundle import MANIFEST, BundleManifest, verify_bundle
from schemas.errors import BundleError
from schemas.registry_history import Action, Move, append_move, read_moves, serving_stack
from schemas.runtime.secret import Secret

POINTER = "current"


@dataclass(frozen=True)
class Pointer:
    version: str
    previous: str | None
    updated_at: str


def is_registry(path: Path) -> bool:
    return path.is_dir() and (path / POINTER).is_file()


def read_pointer(registry: Path) -> Pointer:
    try:
        obj = orjson.loads((registry / POINTER).read_bytes())
        return Pointer(str(obj["version"]), obj.get("previous"), str(obj.get("updated_at", "")))
    except FileNotFoundError:
        raise BundleError(f"{registry} has no current model (no '{POINTER}' pointer)") from None
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise BundleError(f"{registry}/{POINTER} is unreadable: {e}") from None


def current_bundle_dir(registry: Path) -> Path:
    return registry / read_pointer(registry).version


def resolve_model(path: Path) -> Path:
    """A bundle directory as given, or the current bundle of a registry directory."""
    if (path / MANIFEST).is_file():
        return path
    if is_registry(path):
        return current_bundle_dir(path)
    raise BundleError(f"{path} is neither a model bundle nor a registry with a current model")


def _write_pointer(registry: Path, pointer: Pointer) -> None:
    tmp = registry / f".{POINTER}.tmp"
    tmp.write_bytes(orjson.dumps(pointer.__dict__))
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, registry / POINTER)


def promote(
    registry: Path,
    version: str,
    key: Secret | None = None,
    *,
    action: Action = "promoted",
    by_hand: bool = True,
    reason: str = "",
) -> Pointer:
    """Point `current` at `version` (which must verify, and with `key` carry a signature
    that verifies), remembering the one before, and append the move to the history."""
    verify_bundle(registry / version, key)
    previous = read_pointer(registry).version if is_registry(registry) else None
    if previous == version:
        return read_pointer(registry)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    pointer = Pointer(version, previous, now)
    append_move(registry, Move(now, action, version, previous, by_hand, reason))
    _write_pointer(registry, pointer)
    return pointer


def history_stack(registry: Path) -> list[str]:
    """The versions that served, oldest first, the current one last."""
    pointer = read_pointer(registry)
    return serving_stack(read_moves(registry), pointer.version, pointer.previous)


def rollback_target(registry: Path) -> str:
    """The version that served before the current one, still in the registry."""
    stack = history_stack(registry)
    current = stack.pop()
    for version in reversed(stack):
        if version != current and (registry / version / MANIFEST).is_file():
            return version
    raise BundleError(
        f"no earlier version in {registry}'s promotion history to roll back to "
        f"(current: {current}); name one with --to VERSION"
    )


def rollback(
    registry: Path, key: Secret | None = None, *, to: str | None = None, reason: str = ""
) -> Pointer:
    """Point `current` back at `to`, or at the version that served before the current one."""
    target = to if to is not None else rollback_target(registry)
    if not (registry / target / MANIFEST).is_file():
        raise BundleError(f"no bundle {target} in {registry}")
    return promote(registry, target, key, action="rolled_back", reason=reason)


def list_bundles(registry: Path) -> list[BundleManifest]:
    out = []
    for d in sorted(registry.iterdir()):
        m = d / MANIFEST
        if d.is_dir() and m.is_file():
            out.append(BundleManifest.from_json(m.read_bytes()))
    return out


def prune(registry: Path, keep: int, *, aside: Collection[str] = ()) -> list[str]:
    """Remove the oldest bundles beyond `keep`, never the current or previous one; the
    versions `aside` (refused candidates, kept for their own while) are not counted."""
    pointer = read_pointer(registry) if is_registry(registry) else None
    protected = {pointer.version, pointer.previous} if pointer else set()
    versions = [m.version for m in list_bundles(registry) if m.version not in aside]
    removable = [v for v in versions if v not in protected]
    excess = len(versions) - keep
    removed = []
    for v in removable[: max(0, excess)]:
        shutil.rmtree(registry / v)
        removed.append(v)
    return removed
