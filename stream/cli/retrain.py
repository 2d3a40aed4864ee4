"""`logad retrain`: train a candidate on the archive's last complete days, gate it against
the current model on the newest complete day, and promote it only if it passes
(the job is stream/jobs/retrain.py)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from schemas.runtime.console import out
from stream.cli.command import Subparsers, command_parser
from stream.jobs.retrain import RetrainSettings, run_retrain


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "retrain",
        help="nightly: train a candidate on the archive, gate it, promote it if it passes",
        description="Train a candidate model on the last complete days of the archive "
        "(warm-started from the registry's current bundle unless --from-scratch), score the "
        "newest complete day (held out) with the candidate and the current model, and promote "
        "the candidate only if its calibrated false-alert rate is no worse than the current "
        "one's plus --margin and, when the files carry labels, its F1 is no worse. A decision "
        "record is written to REGISTRY/decisions/. A lock file keeps two runs apart. Settings: "
        "defaults < --config < LOGAD_* environment < flags.",
        settings=RetrainSettings,
        metavars={
            "archive_dir": "DIR",
            "registry": "DIR",
            "train_config": "FILE",
            "feedback": "FILE",
        },
        run=run,
    )


def _model_line(label: str, figures: dict[str, Any]) -> str:
    f1 = f", F1 {figures['f1']:.4f}" if figures["f1"] is not None else ""
    rate = figures["false_alert_rate"]
    return f"  {label} {figures['version']}: false-alert rate {rate:.6f}{f1}"


def run(args: argparse.Namespace, settings: RetrainSettings) -> int:
    outcome = run_retrain(settings, datetime.now(UTC))
    rec = outcome.record
    out(outcome.decision.reason)
    out(_model_line("candidate", rec["candidate"]))
    if rec["current"] is not None:
        out(_model_line("current  ", rec["current"]))
    out(f"  current model now {rec['current_after']}; record {outcome.record_path}")
    version = rec["candidate"]["version"]
    if not rec["promoted"] and version not in rec["pruned"]:
        days = settings.gate.keep_refused_days
        out(
            f"  candidate {version} kept {days:g} days; to serve it anyway: logad promote "
            f"{version} --registry {settings.registry} --reason TEXT"
        )
    return 0
