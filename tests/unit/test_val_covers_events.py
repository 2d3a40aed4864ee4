"""`logad train` trains on the first window of each event only the validation slice holds,
records it, and `logad evaluate --calibrate-on` re-derives the same slice."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from schemas.daily_files import daily_file_name, write_sessions
from schemas.sessions import Session
from schemas.vocab import Vocab
from stream.cli import main
from tests.train_data import tiny_settings
from trainer.checkpoint import read_vocab
from trainer.dataset import DataSelection, is_validation
from trainer.token_cache import session_hash
from trainer.train import TrainRequest, run_training

VAL_FRACTION = 0.2


def _validation_ids(n: int) -> list[str]:
    """`n` session ids the trainer's hash split puts in the validation slice."""
    ids = (f"rare-{i}" for i in range(10_000))
    picked = [
        s for s in ids if is_validation(np.array([session_hash(s)], np.uint64), VAL_FRACTION)[0]
    ]
    return picked[:n]


def _day(tmp: Path) -> Path:
    shapes = [("A", "B", "C", "A", "B"), ("B", "C")]
    common = [Session(f"s{i}", shapes[i % 2]) for i in range(200)]
    rare = [Session(sid, ("A", "RARE", "B")) for sid in _validation_ids(2)]
    day = tmp / "days"
    day.mkdir()
    write_sessions(day / daily_file_name(date(2026, 1, 1)), [*common, *rare])
    return day


def _train(tmp: Path, name: str, day: Path, covers: bool) -> Path:
    s = tiny_settings(
        tmp, epochs=1, min_steps=4, tokens_per_batch=1024, val_fraction=VAL_FRACTION,
        val_covers_events=covers,
    )  # fmt: skip
    out = tmp / name
    assert run_training(s, TrainRequest(DataSelection((day,)), out)).manifest is not None
    return out


def _vocab(bundle: Path) -> Vocab:
    return read_vocab(bundle)


def _metrics(bundle: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = orjson.loads((bundle / "manifest.json").read_bytes())["metrics"]
    return metrics


def test_an_event_only_validation_holds_is_trained_on_and_the_slice_re_derives(
    tmp_path: Path,
) -> None:
    day = _day(tmp_path)
    plain = _train(tmp_path, "plain", day, covers=False)
    covered = _train(tmp_path, "covered", day, covers=True)
    assert "RARE" not in _vocab(plain).tokens
    assert "RARE" in _vocab(covered).tokens
    assert _metrics(covered)["val_covers_events"] is True
    # One of the two rare windows moved to training, the other stays held out.
    assert _metrics(covered)["val_windows"] == _metrics(plain)["val_windows"] - 1

    normal = tmp_path / "normal.jsonl"
    write_sessions(normal, [Session("n", ("A", "B", "C"))])
    abnormal = tmp_path / "abnormal.jsonl"
    write_sessions(abnormal, [Session("x", ("C", "C", "C", "A"))])
    for bundle in (plain, covered):
        report = tmp_path / f"report-{bundle.name}"
        argv = ["evaluate", "--model", str(bundle), "--normal", str(normal)]
        argv += ["--abnormal", str(abnormal), "--report", str(report), "--device", "cpu"]
        argv += ["--groups", "2", "--calibrate-on", str(day), "--val-fraction", "0.2"]
        argv += ["--token-cache-dir", str(tmp_path / "token-cache")]
        # The slice is re-derived with the bundle's own split, else its size would differ
        # from the manifest's and evaluate would refuse it.
        assert main(["--log-level", "warning", *argv]) == 0
        r = orjson.loads((report / "report.json").read_bytes())
        assert "re-calibrated" in r["threshold_source"]
