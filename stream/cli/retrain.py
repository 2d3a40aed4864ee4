"""`logad retrain`: train a candidate on the archive's last complete days, gate it against
the current model on the newest complete day, and promote it only if it passes."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.runtime.console import out
from schemas.runtime.settings import build_settings, settings_flags
from stream.jobs.retrain import RetrainSettings, run_retrain

# (flag, type, metavar) for each setting; help comes from the field's docstring below.
_FLAGS: dict[str, tuple[Any, str | None]] = {
    "archive_dir": (Path, "DIR"),
    "registry": (Path, "DIR"),
    "last_days": (int, "N"),
    "preset": (str, None),
    "epochs": (int, "N"),
    "nproc": (int, "N"),
    "margin": (float, "X"),
    "keep": (int, "N"),
    "lr": (float, "LR"),
    "tokens_per_batch": (int, "N"),
    "cpu_threads": (int, "N"),
    "device": (str, "DEV"),
    "seed": (int, "N"),
    "train_config": (Path, "FILE"),
    "eval_tokens_per_batch": (int, "N"),
}

_HELP = {
    "archive_dir": "directory of daily files written by `logad serve --archive-dir`",
    "registry": "model registry directory (bundles and the 'current' pointer)",
    "last_days": "complete days to train on, before the held-out newest complete day",
    "from_scratch": "train a fresh model instead of warm-starting from the current bundle",
    "preset": "model shape when training from scratch",
    "epochs": "passes over the training windows",
    "nproc": "DDP processes through torchrun, one per GPU (as `logad train --nproc`)",
    "margin": "promote when candidate false-alert rate <= current + margin",
    "keep": "bundles kept in the registry after a promotion (never current or previous)",
    "exclude_alerted": "leave out windows the stream alerted on when training",
    "lr": "peak learning rate (default: the trainer's)",
    "tokens_per_batch": "padded tokens per batch per rank (default: the trainer's)",
    "cpu_threads": "intra-op CPU threads for training (default: the trainer's)",
    "device": "training and evaluation device: auto, cpu, cuda, cuda:N",
    "seed": "training seed (default: the trainer's)",
    "train_config": "a `logad train` config file for every other training knob",
    "eval_tokens_per_batch": "token budget per scoring batch on the held-out day",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "retrain",
        help="nightly: train a candidate on the archive, gate it, promote it if it passes",
        description="Train a candidate model on the last complete days of the archive "
        "(warm-started from the registry's current bundle unless --from-scratch), score the "
        "newest complete day (held out) with the candidate and the current model, and promote "
        "the candidate only if its calibrated false-alert rate is no worse than the current "
        "one's plus --margin and, when the files carry labels, its F1 is no worse. A decision "
        "record is written to REGISTRY/decisions/. A lock file keeps two runs apart. Settings: "
        "defaults < --config < LOGAD_* environment < flags.",
    )
    defaults = {f.name: f.default for f in dataclasses.fields(RetrainSettings)}
    for name, (tp, metavar) in _FLAGS.items():
        kw: dict[str, Any] = {"type": tp, "metavar": metavar}
        if name == "preset":
            kw = {"choices": ["base", "small", "tiny"]}
        p.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            help=f"{_HELP[name]} (default: {defaults[name]})",
            **kw,
        )
    p.add_argument(
        "--from-scratch",
        dest="from_scratch",
        action="store_const",
        const=True,
        default=None,
        help=f"{_HELP['from_scratch']} (default: {defaults['from_scratch']})",
    )
    p.add_argument(
        "--exclude-alerted",
        dest="exclude_alerted",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{_HELP['exclude_alerted']} (default: {defaults['exclude_alerted']})",
    )
    p.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML or JSON file of settings (default: none)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = settings_flags(args, RetrainSettings)
    settings = build_settings(RetrainSettings, config_file=args.config, flags=flags)
    outcome = run_retrain(settings, datetime.now(UTC))
    rec = outcome.record
    out(outcome.decision.reason)
    cand = rec["candidate"]
    out(
        f"  candidate {cand['version']}: false-alert rate {cand['false_alert_rate']:.6f}"
        + (f", F1 {cand['f1']:.4f}" if cand["f1"] is not None else "")
    )
    if rec["current"] is not None:
        cur = rec["current"]
        out(
            f"  current   {cur['version']}: false-alert rate {cur['false_alert_rate']:.6f}"
            + (f", F1 {cur['f1']:.4f}" if cur["f1"] is not None else "")
        )
    out(f"  current model now {rec['current_after']}; record {outcome.record_path}")
    return 0
