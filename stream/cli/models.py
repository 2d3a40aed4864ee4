"""`logad models` (the registry's bundles) and `logad rollback` (back to the previous one)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import structlog

from schemas.errors import BundleError
from schemas.registry import is_registry, list_bundles, read_pointer, rollback
from schemas.runtime.console import out

log = structlog.get_logger(__name__)

_METRICS = ("val_loss", "steps", "sessions")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    m = subparsers.add_parser(
        "models",
        help="list the bundles of a model registry, marking the current one",
        description="List every bundle in a model registry: version, the days it was "
        "trained on, its training metrics, and which one is current (*) or previous (-).",
    )
    m.add_argument("--registry", type=Path, required=True, help="registry directory")
    m.set_defaults(func=run_models)
    r = subparsers.add_parser(
        "rollback",
        help="point a registry's current model back at the previous version",
        description="Replace the registry's 'current' pointer, atomically, with the version "
        "it pointed at before. A `logad serve` watching the registry hot-reloads it.",
    )
    r.add_argument("--registry", type=Path, required=True, help="registry directory")
    r.set_defaults(func=run_rollback)


def _metric(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_rows(registry: Path) -> list[list[str]]:
    """One row per bundle: marker, version, data range, metrics."""
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


def run_models(args: argparse.Namespace) -> int:
    registry: Path = args.registry
    if not registry.is_dir():
        raise BundleError(f"no such registry: {registry}")
    rows = model_rows(registry)
    if not rows:
        out(f"{registry} holds no bundles")
        return 0
    header = [" ", "version", "data", "metrics"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        out("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    registry: Path = args.registry
    before = read_pointer(registry).version
    pointer = rollback(registry)
    log.info("model_rolled_back", registry=str(registry), version=pointer.version, was=before)
    out(f"rolled back {registry}: current {pointer.version} (was {before})")
    return 0
