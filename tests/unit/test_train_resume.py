"""A run killed after epoch 1 (or mid-epoch) and resumed ends with the same weights as an
uninterrupted run, on CPU with a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from schemas import ConfigError
from schemas.bundle import WEIGHTS
from tests.train_data import hdfs_day, tiny_settings
from trainer.dataset import DataSelection
from trainer.loop import TrainState
from trainer.train import TrainRequest, run_training


def _weights(bundle: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(bundle / WEIGHTS))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.slow
def test_resume_after_epoch_and_mid_epoch_matches_uninterrupted(tmp_path: Path) -> None:
    data = DataSelection((hdfs_day(tmp_path / "data", 130),))
    s = tiny_settings(tmp_path, checkpoint_every_steps=2, tokens_per_batch=512)

    whole = run_training(s, TrainRequest(data, tmp_path / "whole"))
    assert whole.manifest is not None and whole.state.epoch == 2
    per_epoch = whole.state.global_step // 2
    assert per_epoch >= 4  # several steps per epoch, so the mid-epoch case is real

    # Killed right after epoch 1's checkpoint.
    halted = run_training(
        s, TrainRequest(data, tmp_path / "a"), halt=lambda st: st == TrainState(1, 0, per_epoch)
    )
    assert halted.manifest is None and not (tmp_path / "a").exists()
    resumed = run_training(s, TrainRequest(data, tmp_path / "a", resume=True))
    assert resumed.state == whole.state
    assert _max_diff(_weights(tmp_path / "whole"), _weights(tmp_path / "a")) <= 1e-6

    # Killed in epoch 2, one step after a mid-epoch checkpoint: that step is redone.
    ckpt_step = next(c for c in range(per_epoch + 1, 2 * per_epoch - 1) if c % 2 == 0)
    run_training(
        s, TrainRequest(data, tmp_path / "b"), halt=lambda st: st.global_step == ckpt_step + 1
    )
    latest = sorted((tmp_path / "b.run" / "checkpoints").iterdir())[-1]
    assert latest.name == f"step-{ckpt_step:09d}"
    run_training(s, TrainRequest(data, tmp_path / "b", resume=True))
    assert _max_diff(_weights(tmp_path / "whole"), _weights(tmp_path / "b")) <= 1e-6


@pytest.mark.slow
def test_resume_guards(tmp_path: Path) -> None:
    day = hdfs_day(tmp_path / "data", 60)
    data = DataSelection((day,))
    s = tiny_settings(tmp_path, epochs=2, tokens_per_batch=512, val_fraction=0.2)
    run_training(s, TrainRequest(data, tmp_path / "m"), halt=lambda st: st.epoch == 1)
    ckpt = next((tmp_path / "m.run" / "checkpoints").iterdir())
    # Everything a resume needs, and no pickle.
    assert {p.name for p in ckpt.iterdir()} == {
        "config.json",
        "model.safetensors",
        "vocab.json",
        "optimizer.safetensors",
        "optimizer.json",
        "scheduler.json",
        "rng-rank0.safetensors",
        "rng-rank0.json",
        "meta.json",
    }
    # A fresh run must not silently mix with an earlier run's checkpoints.
    with pytest.raises(ConfigError, match="pass --resume"):
        run_training(s, TrainRequest(data, tmp_path / "m"))
    # Resuming on different data is refused.
    hdfs_day(tmp_path / "data", 60, skip=60)
    with pytest.raises(ConfigError, match="data changed"):
        run_training(s, TrainRequest(data, tmp_path / "m", resume=True))
