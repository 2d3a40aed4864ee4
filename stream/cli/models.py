"""`logad models` (the registry's bundles) and `logad rollback` (back to the previous one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.runtime.console import out
from schemas.signing import BundleKeySettings
from stream.cli.command import Subparsers, command_parser
from stream.jobs.registry import model_rows, roll_back


def _registry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", type=Path, required=True, help="registry directory")


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "models",
        help="list the bundles of a model registry, marking the current one",
        description="List every bundle in a model registry: version, the days it was "
        "trained on, its training metrics, and which one is current (*) or previous (-).",
        arguments=_registry,
        run=run_models,
    )
    command_parser(
        subparsers,
        "rollback",
        help="point a registry's current model back at the previous version",
        description="Replace the registry's 'current' pointer, atomically, with the version "
        "it pointed at before. A `logad serve` watching the registry hot-reloads it. With a "
        "bundle key, the previous bundle's signature must verify.",
        arguments=_registry,
        settings=BundleKeySettings,
        run=run_rollback,
    )


def run_models(args: argparse.Namespace, settings: None) -> int:
    rows = model_rows(args.registry)
    if not rows:
        out(f"{args.registry} holds no bundles")
        return 0
    header = [" ", "version", "data", "metrics"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        out("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    return 0


def run_rollback(args: argparse.Namespace, settings: BundleKeySettings) -> int:
    pointer, before = roll_back(args.registry, settings.bundle_key)
    out(f"rolled back {args.registry}: current {pointer.version} (was {before})")
    return 0
