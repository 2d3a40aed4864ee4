"""`logad train` as a job: in this process, or as N DDP processes launched through torchrun.

Each torchrun worker runs `python -m stream.cli.train train ARGS`: the arguments of the
`train` subcommand, so every rank builds the same settings from them. `logad train --nproc`
and `logad retrain` launch the workers here; torch is imported only when training starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from schemas.runtime.logs import logging_file, logging_settings

if TYPE_CHECKING:
    from trainer.settings import TrainSettings
    from trainer.train import TrainOutcome, TrainRequest

log = structlog.get_logger(__name__)

WORKER_MODULE = "stream.cli.train"
"""The module torchrun runs in each worker process (`python -m stream.cli.train train ...`)."""


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def launches_workers(nproc: int) -> bool:
    """Whether `nproc` asks for torchrun workers (not already one of them)."""
    from trainer.distributed import under_torchrun

    return nproc > 1 and not under_torchrun()


def check_processes(nproc: int, settings: TrainSettings) -> None:
    """`nproc` must be >= 1, and at most the GPU count when training on GPU."""
    from trainer.distributed import check_nproc

    check_nproc(nproc, settings.device, gpu_count())


def train_here(settings: TrainSettings, request: TrainRequest) -> TrainOutcome:
    """Train in this process (one rank of a torchrun job, or the only one)."""
    from trainer.train import run_training

    return run_training(settings, request)


def launch_workers(nproc: int, train_argv: Sequence[str]) -> int:
    """Run `nproc` workers of `train TRAIN_ARGV` through torchrun, logging as this process
    does; the exit code: 0, 2 when a rank stopped on a user error (rank 0 printed it), else 1."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    level, json = logging_settings()
    top = ["--log-level", level, "--log-json" if json else "--no-log-json"]
    if (file := logging_file()) is not None:
        top += ["--log-file", str(file)]
    targs = get_args_parser().parse_args(
        [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--module",
            WORKER_MODULE,
            *top,
            "train",
            *train_argv,
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
    if level != "debug":
        for q in quiet:
            q.setLevel(logging.CRITICAL)
    log.info("launching_ddp", nproc=nproc)
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
