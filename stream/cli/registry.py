"""`logad promote BUNDLE --registry DIR`: make a bundle the registry's current model
(the registry's operations are in stream/jobs/registry.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.runtime.console import out
from schemas.signing import BundleKeySettings
from stream.cli.command import Subparsers, command_parser
from stream.jobs.registry import promote_by_hand


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="bundle directory, or a version already in the registry")
    p.add_argument(
        "--registry", type=Path, required=True, help="registry directory (created if missing)"
    )
    p.add_argument(
        "--move",
        action="store_true",
        help="move the bundle into the registry instead of copying it (default: copy)",
    )
    p.add_argument(
        "--reason",
        default="",
        metavar="TEXT",
        help="why, written to a decision record marked by hand; needed to promote a "
        "candidate the retrain gate refused (default: no record)",
    )


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "promote",
        help="make a model bundle the current model of a registry",
        description="Verify BUNDLE (every file against its sha256 in the manifest), copy it "
        "into the registry under its version unless it is already there, and point the "
        "registry's 'current' at it. BUNDLE may also be the version name of a bundle already "
        "in the registry, such as a candidate the retrain gate refused (kept for "
        "--keep-refused-days), which needs --reason. With a bundle key, the registry's copy "
        "is signed (a bundle already signed must verify under the key).",
        arguments=_arguments,
        settings=BundleKeySettings,
        run=run,
    )


def run(args: argparse.Namespace, settings: BundleKeySettings) -> int:
    key = settings.bundle_key
    bundle = Path(args.bundle)
    pointer = promote_by_hand(bundle, args.registry, move=args.move, key=key, reason=args.reason)
    previous = pointer.previous or "none"
    out(f"promoted {pointer.version} in {args.registry} (previous: {previous})")
    return 0
