"""`logad train`: train the MLM on daily files and export a model bundle.

`--nproc N` (N > 1) re-runs this command under torchrun as N DDP processes
(`python -m torch.distributed.run --standalone --nproc-per-node N -m stream.cli.train train ...`).
Running `torchrun ... -m stream.cli.train train ...` directly works too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
import typing
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import structlog

from schemas.errors import ConfigError, LogadError
from schemas.runtime.console import err, out
from schemas.runtime.logs import configure_logging
from schemas.runtime.settings import build_settings, field_docs, settings_flags
from trainer.settings import TrainSettings

log = structlog.get_logger(__name__)

_ERROR_GRACE_S = 3.0
# Settings with their own, hand-written flags above the generated ones.
_PRIMARY = ("preset", "epochs")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _settings_flag(p: argparse.ArgumentParser, f: dataclasses.Field[Any], doc: str) -> None:
    tp = typing.get_type_hints(TrainSettings)[f.name]
    choices = typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else None
    default = f.default if f.default is not dataclasses.MISSING else None
    p.add_argument(
        "--" + f.name.replace("_", "-"),
        dest=f.name,
        default=None,  # None: not given, so the config file / LOGAD_* env value stands
        choices=choices,
        metavar=None if choices else f.name.upper(),
        help=f"{doc} (default: {default})".replace("%", "%%"),  # argparse formats help with %
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the masked language model on daily files and export a model bundle",
        description="Train the BERT masked language model over event ids on daily session "
        "files, checkpointing as it goes, then calibrate on the held-out validation slice and "
        "publish a model bundle (config.json, model.safetensors, vocab.json, calibration.json, "
        "manifest.json) at --out. Checkpoints, metrics.jsonl and loss.png go to the run "
        "directory, '<out>.run' unless --run-dir says otherwise. Settings come from defaults "
        "< --config < LOGAD_* environment < flags.",
    )
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
        "--config", type=Path, metavar="FILE", help="TOML or JSON file of settings (default: none)"
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
    docs = field_docs(TrainSettings)
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    for name in _PRIMARY:
        _settings_flag(p, fields[name], docs.get(name, ""))
    for name, f in fields.items():
        if name not in _PRIMARY:
            _settings_flag(p, f, docs.get(name, ""))
    p.set_defaults(func=run)


def _settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    return settings_flags(args, TrainSettings)


def run(args: argparse.Namespace) -> int:
    from trainer.distributed import check_nproc, under_torchrun

    settings = build_settings(TrainSettings, config_file=args.config, flags=_settings_flags(args))
    if args.last_days is not None and args.last_days < 1:
        raise ConfigError(f"--last-days must be >= 1, got {args.last_days}")
    if args.nproc > 1 and not under_torchrun():
        import torch

        check_nproc(args.nproc, settings.device, torch.cuda.device_count())
        return _launch_torchrun(args)
    check_nproc(args.nproc, settings.device, _gpu_count())
    return _train(settings, args)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _train(settings: TrainSettings, args: argparse.Namespace) -> int:
    # torch is imported here, not at module import, so `logad --help` stays fast.
    from trainer.dataset import DataSelection
    from trainer.train import TrainRequest, run_training

    request = TrainRequest(
        data=DataSelection(tuple(args.data), args.from_date, args.to_date, args.last_days),
        out=args.out,
        init_from=args.init_from,
        resume=args.resume,
    )
    outcome = run_training(settings, request)
    if outcome.manifest is not None:
        m = outcome.manifest
        out(f"bundle {m.version} written to {args.out}")
        out(f"  val loss {m.metrics.get('val_loss')}, steps {m.metrics.get('steps')}")
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
    for name, v in _settings_flags(args).items():
        if v is not None:
            argv += ["--" + name.replace("_", "-"), str(v)]
    return argv


def _launch_torchrun(args: argparse.Namespace) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    top: list[str] = ["--log-level", getattr(args, "log_level", "info")]
    log_json = getattr(args, "log_json", None)
    if log_json is not None:
        top.append("--log-json" if log_json else "--no-log-json")
    targs = get_args_parser().parse_args(
        [
            "--standalone",
            f"--nproc-per-node={args.nproc}",
            "--module",
            "stream.cli.train",
            *top,
            "train",
            *forward_argv(args),
        ]
    )
    # The workers must import this package even when it is not installed.
    root = str(Path(__file__).resolve().parents[2])
    env = {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    # One intra-op thread per process unless told otherwise (torchrun's default, minus its
    # banner); the elastic agent's own failure reports would bury rank 0's one-line error.
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "1")
    saved = {k: os.environ.get(k) for k in env}
    quiet = [logging.getLogger(n) for n in ("torch.distributed.run", "torch.distributed.elastic")]
    levels = [q.level for q in quiet]
    os.environ.update(env)
    if getattr(args, "log_level", "info") != "debug":
        for q in quiet:
            q.setLevel(logging.CRITICAL)
    log.info("launching_ddp", nproc=args.nproc)
    try:
        torchrun(targs)  # type: ignore[no-untyped-call]
    except ChildFailedError as e:
        # Rank 0 has printed the error line; a LogadError exits 2 on every rank.
        codes = [f.exitcode for f in e.failures.values()]
        return 2 if 2 in codes else 1
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for q, lvl in zip(quiet, levels, strict=True):
            q.setLevel(lvl)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """`python -m stream.cli.train train ...`: the entry point torchrun runs in each process."""
    parser = argparse.ArgumentParser(prog="python -m stream.cli.train")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    parser.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines (default: JSON unless stderr is a terminal)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    # Rank 0 alone logs; the others report errors only.
    configure_logging(args.log_level if rank == 0 else "error", args.log_json)
    try:
        rc: int = args.func(args)
        return rc
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
