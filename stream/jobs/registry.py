"""The model registry's operations: add a bundle, promote it (by hand, past the gate's
refusal, with a reason), roll back through the history, remove old refused candidates.

A bundle outside the registry is copied (or moved) in first, under its manifest version,
through a temporary directory renamed into place, so a `logad serve` watching the registry
never sees half a bundle. The `current` pointer is then replaced atomically; a serve
process watching it hot-reloads the new model.

With a bundle key (schemas/signing.py), the registry signs what it takes in: an unsigned
bundle is signed (promoting it is the operator vouching for it), a signed one must verify
under the key, or it is refused.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from schemas.bundle import publish_dir, sign_bundle, verify_bundle
from schemas.errors import BundleError, ConfigError
from schemas.registry import (
    Pointer,
    history_stack,
    is_registry,
    promote,
    read_pointer,
    rollback,
)
from schemas.registry_history import (
    decision_action,
    decision_version,
    read_decisions,
    read_moves,
    write_decision,
)
from schemas.runtime.secret import Secret
from schemas.signing import is_signed

log = structlog.get_logger(__name__)


def add_to_registry(
    bundle: Path, registry: Path, *, move: bool = False, key: Secret | None = None
) -> str:
    """Place `bundle` in `registry` under its version if it is not there (signed, with a
    `key`); return the version."""
    in_registry = registry / bundle.name
    if not bundle.exists() and in_registry.is_dir():
        bundle = in_registry  # a version name
    if not bundle.is_dir():
        raise BundleError(f"no such bundle: {bundle}")
    version = verify_bundle(bundle, key if key and is_signed(bundle) else None).version
    target = registry / version
    if target.exists():
        if target.resolve() != bundle.resolve():
            if verify_bundle(target).files != verify_bundle(bundle).files:
                raise BundleError(f"{target} already holds a different bundle {version}")
            log.info("bundle_already_in_registry", version=version)
        if key is not None:
            _vouch(target, key)
        return version
    registry.mkdir(parents=True, exist_ok=True)
    tmp = registry / f".{version}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if move:
            shutil.move(bundle, tmp)
        else:
            shutil.copytree(bundle, tmp)
        if key is not None:
            _vouch(tmp, key)
        verify_bundle(tmp, key)
        publish_dir(tmp, target)
    except BaseException:
        if tmp.exists():
            if move:
                shutil.move(tmp, bundle)  # give the user's bundle back where it was
            else:
                shutil.rmtree(tmp)
        raise
    log.info("bundle_added_to_registry", version=version, registry=str(registry), moved=move)
    return version


def _vouch(bundle: Path, key: Secret) -> None:
    """Sign an unsigned bundle; a signed one must verify under `key`."""
    if is_signed(bundle):
        verify_bundle(bundle, key)
        return
    sign_bundle(bundle, key)
    log.info("bundle_signed", bundle=str(bundle))


def promote_bundle(
    bundle: Path,
    registry: Path,
    *,
    move: bool = False,
    key: Secret | None = None,
    by_hand: bool = True,
    reason: str = "",
) -> Pointer:
    """Add `bundle` (a directory, or a version already in the registry) and make it current;
    with a `key`, signed."""
    version = add_to_registry(bundle, registry, move=move, key=key)
    pointer = promote(registry, version, key, by_hand=by_hand, reason=reason)
    log.info(
        "model_promoted",
        registry=str(registry),
        version=version,
        previous=pointer.previous,
        by_hand=by_hand,
        reason=reason,
    )
    return pointer


def refusal(registry: Path, version: str) -> dict[str, Any] | None:
    """The gate's decision record refusing `version`, if its last decision is a refusal."""
    last = None
    for record in read_decisions(registry):
        if decision_version(record) == version:
            last = record
    return last if last is not None and decision_action(last) == "refused" else None


def promote_by_hand(
    bundle: Path,
    registry: Path,
    *,
    move: bool = False,
    key: Secret | None = None,
    reason: str = "",
) -> Pointer:
    """`logad promote`: a candidate the gate refused needs a `reason`; with one, the
    promotion gets a decision record saying it was by hand."""
    own = registry / bundle.name
    in_registry = own.is_dir() and (not bundle.exists() or bundle.resolve() == own.resolve())
    refused = refusal(registry, bundle.name) if in_registry else None
    if refused is not None and not reason:
        raise ConfigError(
            f"{bundle.name} was refused by the gate ({refused.get('reason')}); "
            "promote it by hand with --reason TEXT"
        )
    pointer = promote_bundle(bundle, registry, move=move, key=key, reason=reason)
    if reason:
        _by_hand(
            registry,
            "promoted",
            version=pointer.version,
            previous=pointer.previous,
            reason=reason,
            overrides_refusal=refused is not None,
        )
    return pointer


def _by_hand(registry: Path, action: str, **fields: object) -> None:
    """Record an operator's move of `current` as a decision."""
    now = datetime.now(UTC)
    record = {"time": now.isoformat(timespec="seconds"), "action": action, "by_hand": True}
    write_decision(registry, now, {**record, **fields})


def roll_back(
    registry: Path, key: Secret | None = None, *, to: str | None = None, reason: str = ""
) -> tuple[Pointer, str]:
    """Point `current` back at `to`, or at the version that served before it (which must
    verify, signed with a `key`); record the decision; return the new pointer and the old
    current version."""
    before = read_pointer(registry).version
    pointer = rollback(registry, key, to=to, reason=reason)
    if pointer.version != before:
        fields = {"version": pointer.version, "from": before, "reason": reason}
        _by_hand(registry, "rolled_back", **fields)
    log.info("model_rolled_back", registry=str(registry), version=pointer.version, was=before)
    return pointer, before


def prune_refused(registry: Path, now: datetime, keep_days: float) -> list[str]:
    """Remove refused candidates refused more than `keep_days` ago (never one that has
    served since, promoted by hand)."""
    served = set(history_stack(registry)) if is_registry(registry) else set()
    served |= {m.version for m in read_moves(registry)}
    removed = []
    for version, when in refused_versions(registry).items():
        if version in served or not (registry / version).is_dir():
            continue
        if now - when >= timedelta(days=keep_days):
            shutil.rmtree(registry / version)
            removed.append(version)
            log.info("refused_candidate_removed", version=version, refused_at=when.isoformat())
    return removed


def refused_versions(registry: Path) -> dict[str, datetime]:
    """Each version whose last decision is a refusal, with its time."""
    last: dict[str, tuple[str, datetime]] = {}
    for record in read_decisions(registry):
        version = decision_version(record)
        try:
            when = datetime.fromisoformat(str(record.get("time")))
        except ValueError:
            continue
        if version is not None:
            last[version] = (decision_action(record), when)
    return {v: when for v, (action, when) in last.items() if action == "refused"}
