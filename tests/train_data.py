"""Small training inputs shared by the trainer tests: a slice of the HDFS training sessions
written as a daily file, CPU-sized settings, and an untrained `tiny` model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import BertForMaskedLM

from trainer.model import bert_config, build_model, get_preset
from trainer.settings import TrainSettings

HDFS = Path(__file__).resolve().parents[1] / "data" / "hdfs"


def hdfs_day(dst: Path, n: int, day: str = "2026-01-01", skip: int = 0) -> Path:
    """The first n sessions (after `skip`) of train.jsonl as one daily file in dst."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = (HDFS / "train.jsonl").read_bytes().splitlines(keepends=True)[skip : skip + n]
    path = dst / f"preprocessed_logs_{day}.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def tiny_settings(tmp: Path, **overrides: Any) -> TrainSettings:
    values: dict[str, Any] = {
        "preset": "tiny",
        "epochs": 2,
        "lr": 1e-3,
        "tokens_per_batch": 1024,
        "val_fraction": 0.1,
        "num_workers": 0,
        "device": "cpu",
        "token_cache_dir": tmp / "token-cache",
        "checkpoint_every_steps": 0,
        "log_every_steps": 5,
        "seed": 3,
        "cpu_threads": 1,
    }
    values.update(overrides)
    return TrainSettings(**values)


def cli_flags(tmp: Path) -> list[str]:
    """The same CPU-sized settings as `logad train` flags."""
    return [
        "--preset",
        "tiny",
        "--lr",
        "1e-3",
        "--tokens-per-batch",
        "1024",
        "--val-fraction",
        "0.1",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--token-cache-dir",
        str(tmp / "token-cache"),
        "--checkpoint-every-steps",
        "0",
        "--log-every-steps",
        "5",
        "--cpu-threads",
        "1",
    ]


def eval_tiny_model(vocab_size: int, seed: int = 0) -> BertForMaskedLM:
    """A randomly initialized `tiny` model in eval mode (the same weights for the same seed)."""
    import torch

    torch.manual_seed(seed)
    m = build_model(bert_config(get_preset("tiny"), vocab_size))
    m.train(False)
    return m
