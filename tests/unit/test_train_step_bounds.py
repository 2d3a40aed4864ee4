"""min_steps and max_steps: a run trains `epochs` passes, raised to min_steps (more passes)
or cut at max_steps (mid-pass), and the schedule spans exactly the steps taken."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.train_data import hdfs_day, tiny_settings
from trainer.dataset import DataSelection
from trainer.loop import planned_steps
from trainer.settings import TrainSettings
from trainer.train import TrainRequest, run_training


def test_planned_steps() -> None:
    s = TrainSettings(epochs=2)
    assert planned_steps(7, s) == 14
    assert planned_steps(7, TrainSettings(epochs=2, min_steps=30)) == 30
    assert planned_steps(7, TrainSettings(epochs=2, max_steps=10)) == 10
    assert planned_steps(7, TrainSettings(epochs=1, min_steps=5, max_steps=6)) == 6
    with pytest.raises(ValueError, match="min_steps 9 exceeds max_steps 3"):
        TrainSettings(min_steps=9, max_steps=3)


def _lrs(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_bytes().splitlines()
    return [r["lr"] for r in map(orjson.loads, lines) if "lr" in r]


@pytest.mark.slow
def test_min_steps_adds_passes_and_max_steps_cuts_one(tmp_path: Path) -> None:
    data = DataSelection((hdfs_day(tmp_path / "data", 60),))
    one = tiny_settings(tmp_path, epochs=1, tokens_per_batch=512, log_every_steps=1)
    base = run_training(one, TrainRequest(data, tmp_path / "one"))
    per_pass = base.state.global_step
    assert per_pass >= 3

    more = tiny_settings(
        tmp_path, epochs=1, tokens_per_batch=512, log_every_steps=1, min_steps=2 * per_pass + 1
    )
    longer = run_training(more, TrainRequest(data, tmp_path / "more"))
    assert longer.state.global_step == 2 * per_pass + 1 and longer.state.epoch == 3
    assert longer.manifest is not None and longer.manifest.metrics["steps"] == 2 * per_pass + 1

    fewer = tiny_settings(tmp_path, epochs=3, tokens_per_batch=512, log_every_steps=1, max_steps=2)
    cut = run_training(fewer, TrainRequest(data, tmp_path / "fewer"))
    assert cut.state.global_step == 2 and cut.manifest is not None
    assert cut.manifest.metrics["val_loss"] is not None  # evaluated at the cut
    # The cosine schedule ends at the last step taken, not at three whole passes.
    lrs = _lrs(tmp_path / "fewer.run")
    # (Over three whole passes the second step's factor would be near 1, not one half.)
    assert len(lrs) == 2 and lrs[1] == pytest.approx(lrs[0] / 2)
