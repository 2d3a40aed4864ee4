"""`logad promote BUNDLE --registry DIR`: make a bundle the registry's current model.

A bundle outside the registry is copied (or, with --move, moved) in first, under its
manifest version, through a temporary directory renamed into place, so a `logad serve`
watching the registry never sees half a bundle. The `current` pointer is then replaced
atomically; a serve process watching it hot-reloads the new model.
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from pathlib import Path

import structlog

from schemas.bundle import publish_dir, verify_bundle
from schemas.errors import BundleError
from schemas.registry import promote
from schemas.runtime.console import out

log = structlog.get_logger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "promote",
        help="make a model bundle the current model of a registry",
        description="Verify BUNDLE (every file against its sha256 in the manifest), copy it "
        "into the registry under its version unless it is already there, and point the "
        "registry's 'current' at it. BUNDLE may also be the version name of a bundle already "
        "in the registry.",
    )
    parser.add_argument("bundle", help="bundle directory, or a version already in the registry")
    parser.add_argument(
        "--registry", type=Path, required=True, help="registry directory (created if missing)"
    )
    parser.add_argument(
        "--move",
        action="store_true",
        help="move the bundle into the registry instead of copying it (default: copy)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry: Path = args.registry
    version = add_to_registry(Path(args.bundle), registry, move=args.move)
    pointer = promote(registry, version)
    log.info("model_promoted", registry=str(registry), version=version, previous=pointer.previous)
    out(f"promoted {version} in {registry} (previous: {pointer.previous or 'none'})")
    return 0


def add_to_registry(bundle: Path, registry: Path, *, move: bool = False) -> str:
    """Place `bundle` in `registry` under its version if it is not there; return the version."""
    in_registry = registry / bundle.name
    if not bundle.exists() and in_registry.is_dir():
        bundle = in_registry  # a version name
    if not bundle.is_dir():
        raise BundleError(f"no such bundle: {bundle}")
    version = verify_bundle(bundle).version
    target = registry / version
    if target.exists():
        if target.resolve() != bundle.resolve():
            if verify_bundle(target).files != verify_bundle(bundle).files:
                raise BundleError(f"{target} already holds a different bundle {version}")
            log.info("bundle_already_in_registry", version=version)
        return version
    registry.mkdir(parents=True, exist_ok=True)
    tmp = registry / f".{version}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if move:
            shutil.move(bundle, tmp)
        else:
            shutil.copytree(bundle, tmp)
        verify_bundle(tmp)
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
