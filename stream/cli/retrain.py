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
        description="Train a candidate model on the last days of the archive that count "
        "(complete, with at least --min-sessions sessions), warm-started from the registry's "
        "current bundle unless --from-scratch, for a number of optimizer steps sized from the "
        "data (--epochs passes, at least --min-steps, at most --max-steps). Score the newest "
        "day that counts (held out) with the candidate and the current model, and promote the "
        "candidate only if no criterion fails: its false-alert rate within the --confidence "
        "upper bound of the current one's (plus --margin), its share of the windows the "
        "current model alerted on (and --feedback confirmed) at least --kept-fraction of the "
        "current one's, its validation loss at most the current one's times (1 + "
        "--loss-tolerance), and with labels its F1 no lower. With too little data nothing is "
        "trained: a 'skipped' record, exit 0. A decision record is written to "
        "REGISTRY/decisions/. A lock file keeps two runs apart. Settings: "
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


def _model_line(label: str, f: dict[str, Any]) -> str:
    parts = [f"false alerts {f['false_alerts']} of {f['normal_windows']}"]
    if f["watched"]:
        parts.append(f"alerted kept {f['kept']} of {f['watched']}")
    if f["quieted"]:
        parts.append(f"quiets {f['quieted']} of the stream's alerts")
    if f["val_loss"] is not None:
        parts.append(f"val loss {f['val_loss']:.4f}")
    if f["f1"] is not None:
        parts.append(f"F1 {f['f1']:.4f}")
    return f"  {label} {f['version']}: {', '.join(parts)}"


def run(args: argparse.Namespace, settings: RetrainSettings) -> int:
    outcome = run_retrain(settings, datetime.now(UTC))
    rec = outcome.record
    if rec["action"] == "skipped":  # too little data is a quiet night, not a failure
        out(f"skipped, nothing trained: {outcome.decision.reason}")
        current = rec["current_after"] or "none yet"
        out(f"  current model still {current}; record {outcome.record_path}")
        return 0
    out(outcome.decision.reason)
    t = rec["training"]
    out(
        f"  trained {t['steps']} steps (lr {t['lr'] if t['lr'] is not None else 'default'}, "
        f"warm-up {t['warmup_steps']}) on {', '.join(rec['train_days'])}; held out "
        f"{rec['holdout_day']}; labelled: {str(rec['labelled']).lower()}"
    )
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
