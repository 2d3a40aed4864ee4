"""`logad train` fails with one clear line: no data in range, a bad file (with its line
number), a config typo, --nproc beyond the GPUs, an existing --out; a NaN loss stops the run
before the optimizer step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from schemas import ConfigError
from stream.cli.train import main
from tests.train_data import cli_flags, hdfs_day
from trainer.collate import make_batch
from trainer.dataset import WindowStore
from trainer.distributed import Dist, check_nproc
from trainer.loop import MaskedLM, NonFiniteLossError, train_step
from trainer.masking import MaskSpec
from trainer.model import bert_config, build_model, get_preset


def _train(tmp: Path, *extra: str) -> list[str]:
    return ["--log-level", "error", "train", *cli_flags(tmp), *extra]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("logad: error: ")
    return err[0]


def test_no_data_in_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hdfs_day(tmp_path / "days", 20, day="2026-01-05")
    rc = main(
        _train(
            tmp_path,
            "--data",
            str(tmp_path / "days"),
            "--out",
            str(tmp_path / "m"),
            "--from-date",
            "2026-02-01",
        )
    )
    assert rc == 2
    assert "no daily files in range" in _one_error_line(capsys)


def test_bad_file_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = hdfs_day(tmp_path / "days", 5)
    with day.open("ab") as fh:
        fh.write(b'{"session_id": "blk_x", "events": 7}\n')
    rc = main(_train(tmp_path, "--data", str(day), "--out", str(tmp_path / "m")))
    assert rc == 2
    assert f"{day}:6: bad session" in _one_error_line(capsys)


def test_config_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = hdfs_day(tmp_path / "days", 5)
    cfg = tmp_path / "train.toml"
    cfg.write_text("epochs = 1\nwarmup_step = 10\n")
    rc = main(
        _train(tmp_path, "--data", str(day), "--out", str(tmp_path / "m"), "--config", str(cfg))
    )
    assert rc == 2
    line = _one_error_line(capsys)
    assert "unknown setting 'warmup_step'" in line and "did you mean 'warmup_steps'" in line


def test_bad_flag_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = hdfs_day(tmp_path / "days", 5)
    rc = main(
        _train(tmp_path, "--data", str(day), "--out", str(tmp_path / "m"), "--mask-prob", "1.5")
    )
    assert rc == 2
    assert "mask_prob must be in (0, 1)" in _one_error_line(capsys)


def test_nproc_beyond_gpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="--nproc 4 is more than the 2 GPU"):
        check_nproc(4, "auto", 2)
    with pytest.raises(ConfigError, match="--nproc 2 is more than the 1 GPU"):
        check_nproc(2, "cuda", 1)
    check_nproc(2, "auto", 2)
    check_nproc(4, "auto", 0)  # no GPU: CPU processes with gloo
    check_nproc(4, "cpu", 8)
    # Through the CLI, on this machine without a GPU.
    day = hdfs_day(tmp_path / "days", 5)
    rc = main(
        _train(
            tmp_path,
            "--data",
            str(day),
            "--out",
            str(tmp_path / "m"),
            "--nproc",
            "2",
            "--device",
            "cuda",
        )
    )
    assert rc == 2
    assert "--nproc 2 is more than the 0 GPU(s) present" in _one_error_line(capsys)


def test_existing_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = hdfs_day(tmp_path / "days", 5)
    (tmp_path / "m").mkdir()
    rc = main(_train(tmp_path, "--data", str(day), "--out", str(tmp_path / "m")))
    assert rc == 2
    assert "already exists" in _one_error_line(capsys)


def test_non_finite_loss_stops_before_the_step() -> None:
    torch.manual_seed(0)
    model = build_model(bert_config(get_preset("tiny"), 30))
    with torch.no_grad():
        model.cls.predictions.bias.fill_(float("nan"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = LambdaLR(opt, lambda _: 1.0)
    lengths = torch.tensor([10, 6]).numpy()
    store = WindowStore(
        torch.arange(16).remainder(25).add(5).numpy(), torch.tensor([0, 10]).numpy(), lengths
    )
    batch = make_batch(
        store, torch.tensor([0, 1]).numpy(), 1, 30, MaskSpec(), torch.Generator().manual_seed(0)
    )
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        train_step(MaskedLM(model), opt, sched, batch, Dist(0, 1, 0, torch.device("cpu")), 1.0)
    after = model.state_dict()
    for k, v in after.items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, equal_nan=True)
    assert not opt.state  # the optimizer never stepped
