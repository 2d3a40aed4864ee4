"""`logad models` (the registry's bundles and decisions) and `logad rollback` (back through
the promotion history)."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.runtime.console import out
from schemas.signing import BundleKeySettings
from stream.cli.command import Subparsers, command_parser
from stream.jobs.registry import roll_back
from stream.jobs.registry_view import HEADER, last_retrain, model_rows


def _registry(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", type=Path, required=True, help="registry directory")


def _rollback(p: argparse.ArgumentParser) -> None:
    _registry(p)
    p.add_argument(
        "--to",
        metavar="VERSION",
        help="the version to serve (default: the one that served before the current one "
        "in the promotion history; a second rollback goes further back)",
    )
    p.add_argument("--reason", default="", metavar="TEXT", help="why, for the decision record")


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "models",
        help="list a model registry's bundles, their decisions, and which one serves",
        description="List every bundle in a model registry: version, the days it was "
        "trained on, its latest decision (promoted by the gate, promoted-by-hand, refused, "
        "rolled-back, restored) with its reason, its training metrics, and which one serves "
        "(*) or a plain rollback would go to (-); then the last retrain's outcome (promoted, "
        "refused, or skipped for too little data). Refused candidates are kept for "
        "retrain's --keep-refused-days.",
        arguments=_registry,
        run=run_models,
    )
    command_parser(
        subparsers,
        "rollback",
        help="point a registry's current model back through its promotion history",
        description="Replace the registry's 'current' pointer, atomically, with --to VERSION "
        "or the version that served before the current one in the promotion history "
        "(REGISTRY/history.jsonl). Each plain rollback goes one step further back, never to "
        "the version just rolled back from. A decision record is written. A `logad serve` "
        "watching the registry hot-reloads it. With a bundle key, the bundle's signature "
        "must verify.",
        arguments=_rollback,
        settings=BundleKeySettings,
        run=run_rollback,
    )


def run_models(args: argparse.Namespace, settings: None) -> int:
    rows = model_rows(args.registry)
    if not rows:
        out(f"{args.registry} holds no bundles")
    else:
        table = [HEADER, *rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(HEADER) - 1)]
        for r in table:
            cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)]
            out("  ".join([*cells, r[-1]]).rstrip())
    if (line := last_retrain(args.registry)) is not None:
        out(line)
    return 0


def run_rollback(args: argparse.Namespace, settings: BundleKeySettings) -> int:
    pointer, before = roll_back(args.registry, settings.bundle_key, to=args.to, reason=args.reason)
    out(f"rolled back {args.registry}: current {pointer.version} (was {before})")
    return 0
