"""`logad train`: train the MLM on daily files and export a model bundle.

`--nproc N` (N > 1) re-runs this command under torchrun as N DDP processes
(`python -m torch.distributed.run --standalone --nproc-per-node N -m stream.cli.train train ...`,
see stream/jobs/train.py). Running `torchrun ... -m stream.cli.train train ...` directly
works too: `main` here is each rank's entry point.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from schemas.errors import ConfigError, LogadError
from schemas.runtime.console import err, out
from schemas.runtime.settings import leaves
from schemas.runtime.settings_flags import settings_flags
from stream.cli.command import Subparsers, add_logging_flags, command_parser, execute
from stream.jobs.train import check_processes, launch_workers, launches_workers, train_here
from trainer.settings import TrainSettings

_ERROR_GRACE_S = 3.0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        nargs="+",
        type=Path,
        required=True,
        metavar="DIR_OR_FILE",
        help="directories of preprocessed_logs_YYYY-MM-DD.jsonl files, or session files",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="MODEL_DIR",
        help="the bundle directory to create (must not exist)",
    )
    p.add_argument(
        "--from-date",
        type=_iso_date,
        metavar="D",
        help="first day to train on, YYYY-MM-DD (default: the oldest file)",
    )
    rng = p.add_mutually_exclusive_group()
    rng.add_argument(
        "--to-date",
        type=_iso_date,
        metavar="D",
        help="last day to train on, YYYY-MM-DD (default: the newest file)",
    )
    rng.add_argument(
        "--last-days",
        type=int,
        metavar="N",
        help="train on the N days ending with the newest daily file (default: all)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        metavar="BUNDLE_DIR",
        help="warm-start from this bundle's model, extending its vocab with new "
        "events (default: train from scratch)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in the run directory "
        "(default: off; without a checkpoint the run starts afresh)",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="DDP processes, launched through torchrun; at most the GPU count on GPU (default: 1)",
    )


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "train",
        help="train the masked language model on daily files and export a model bundle",
        description="Train the BERT masked language model over event ids on daily session "
        "files, checkpointing as it goes, then calibrate on the held-out validation slice and "
        "publish a model bundle (config.json, model.safetensors, vocab.json, calibration.json, "
        "manifest.json, and templates.json when the days come from 'logad parse': see "
        "--templates) at --out. Checkpoints, metrics.jsonl and loss.png go to the run "
        "directory, '<out>.run' unless --run-dir says otherwise. Settings come from defaults "
        "< --config < LOGAD_* environment < flags.",
        arguments=_arguments,
        settings=TrainSettings,
        metavars={"feedback": "FILE"},
        run=run,
    )


def run(args: argparse.Namespace, settings: TrainSettings) -> int:
    if args.last_days is not None and args.last_days < 1:
        raise ConfigError(f"--last-days must be >= 1, got {args.last_days}")
    check_processes(args.nproc, settings)
    if launches_workers(args.nproc):
        return launch_workers(args.nproc, forward_argv(args))
    # torch is imported here, not at module import, so `logad --help` stays fast.
    from trainer.dataset import DataSelection
    from trainer.train import TrainRequest

    request = TrainRequest(
        data=DataSelection(tuple(args.data), args.from_date, args.to_date, args.last_days),
        out=args.out,
        init_from=args.init_from,
        resume=args.resume,
    )
    outcome = train_here(settings, request)
    if outcome.manifest is not None:
        m = outcome.manifest
        out(f"bundle {m.version} written to {args.out}")
        loss = m.metrics.get("val_loss")
        shown = f"{loss:.4f}" if isinstance(loss, int | float) else loss
        out(f"  val loss {shown}, steps {m.metrics.get('steps')}")
        out(f"  run directory (checkpoints, metrics.jsonl, loss.png): {outcome.run_dir}")
    return 0


def forward_argv(args: argparse.Namespace) -> list[str]:
    """The `train` arguments again, minus --nproc, for the processes torchrun starts."""
    argv: list[str] = ["--data", *map(str, args.data), "--out", str(args.out)]
    for name in ("from_date", "to_date", "last_days", "config", "init_from"):
        v = getattr(args, name)
        if v is not None:
            argv += ["--" + name.replace("_", "-"), str(v)]
    if args.resume:
        argv.append("--resume")
    known = leaves(TrainSettings)
    for name, v in settings_flags(args, TrainSettings).items():
        if v is not None:
            argv += [known[name].flag, str(v)]
    return argv


def build_parser() -> argparse.ArgumentParser:
    """`python -m stream.cli.train train ...`: the entry point torchrun runs in each process."""
    parser = argparse.ArgumentParser(prog="python -m stream.cli.train")
    add_logging_flags(parser)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    try:
        # Rank 0 alone logs; the others report errors only.
        return execute(args, log_level=None if rank == 0 else "error")
    except LogadError as e:
        if rank == 0:
            err(f"logad: error: {e}")
        else:
            # torchrun stops all ranks once one exits: give rank 0 time to print the error.
            time.sleep(_ERROR_GRACE_S)
        return 2
    except KeyboardInterrupt:
        if rank == 0:
            err("logad: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
