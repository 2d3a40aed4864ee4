"""The model registry's operations: add a bundle, promote it, roll back, list the bundles.

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
from pathlib import Path
from typing import Any

import structlog

from schemas.bundle import publish_dir, sign_bundle, verify_bundle
from schemas.errors import BundleError
from schemas.registry import Pointer, is_registry, list_bundles, promote, read_pointer, rollback
from schemas.runtime.secret import Secret
from schemas.signing import is_signed

log = structlog.get_logger(__name__)

_METRICS = ("val_loss", "steps", "sessions")


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
    bundle: Path, registry: Path, *, move: bool = False, key: Secret | None = None
) -> Pointer:
    """Add `bundle` (a directory, or a version already in the registry) and make it current;
    with a `key`, signed."""
    version = add_to_registry(bundle, registry, move=move, key=key)
    pointer = promote(registry, version, key)
    log.info("model_promoted", registry=str(registry), version=version, previous=pointer.previous)
    return pointer


def roll_back(registry: Path, key: Secret | None = None) -> tuple[Pointer, str]:
    """Point `current` back at the previous version (which must verify, signed with a
    `key`); return the new pointer and the old current version."""
    before = read_pointer(registry).version
    pointer = rollback(registry, key)
    log.info("model_rolled_back", registry=str(registry), version=pointer.version, was=before)
    return pointer, before


def _metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_rows(registry: Path) -> list[list[str]]:
    """One row per bundle: marker (* current, - previous), version, data range, metrics."""
    if not registry.is_dir():
        raise BundleError(f"no such registry: {registry}")
    pointer = read_pointer(registry) if is_registry(registry) else None
    rows = []
    for b in list_bundles(registry):
        mark = " "
        if pointer and b.version == pointer.version:
            mark = "*"
        elif pointer and b.version == pointer.previous:
            mark = "-"
        metrics = " ".join(f"{k}={_metric(b.metrics[k])}" for k in _METRICS if k in b.metrics)
        rows.append([mark, b.version, f"{b.data_from or '?'}..{b.data_to or '?'}", metrics])
    return rows
