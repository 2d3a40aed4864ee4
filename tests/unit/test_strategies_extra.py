from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, Calibration, verify_bundle
from schemas.errors import BundleError
from schemas.vocab import UNK_ID, Vocab
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.model import bert_config, build_model, get_preset
from trainer.recalibrate import write_recalibrated_bundle
from trainer.scoring import FIRST_EVENT_ID, ScoringStrategy
from trainer.strategies_extra import event_rank, score_rank_windows, window_max_rank


def test_event_rank_counts_strictly_better_events() -> None:
    # Columns 0..4 are specials and never compete; events are columns 5, 6, 7.
    logp = torch.tensor([[9.0, 9, 9, 9, 9, 0.1, 0.7, 0.7], [0, 0, 0, 0, 0, 0.5, 0.2, 0.9]])
    assert event_rank(logp, torch.tensor([6, 6])).tolist() == [0, 2]
    assert event_rank(logp, torch.tensor([5, 7])).tolist() == [2, 0]


def test_window_max_rank_puts_unknown_last() -> None:
    assert window_max_rank([0, 3, 1], [5, 6, 7], 10) == 3.0
    assert window_max_rank([0, 3, 1], [5, UNK_ID, 7], 10) == 10.0
    assert window_max_rank([], [], 10) == 0.0


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    torch.manual_seed(0)
    return build_model(bert_config(get_preset("tiny"), 12))


def test_rank_scoring_predicts_every_event(model: BertForMaskedLM) -> None:
    windows = [[5, 6, 7, 8, 9, 10, 11, 5], [UNK_ID, 6], [], [7]]
    res = score_rank_windows(model, windows, groups=3, device=torch.device("cpu"))
    n_events = 12 - FIRST_EVENT_ID
    assert [r.rank.size for r in res] == [8, 2, 0, 1]
    assert all(((r.rank >= 0) & (r.rank <= n_events)).all() for r in res)
    assert res[1].rank[0] == n_events and res[1].score == n_events  # [UNK] ranks last
    assert res[2].score == 0.0
    assert [r.score for r in res] == [float(r.rank.max()) if r.rank.size else 0.0 for r in res]


def test_rank_scoring_is_batch_independent(model: BertForMaskedLM) -> None:
    rng = np.random.default_rng(1)
    windows = [rng.integers(5, 12, int(n)).tolist() for n in rng.integers(1, 40, 12)]
    a = score_rank_windows(model, windows, 6, torch.device("cpu"), max_batch_tokens=64)
    b = score_rank_windows(model, windows, 6, torch.device("cpu"), max_batch_tokens=100_000)
    assert [x.rank.tolist() for x in a] == [x.rank.tolist() for x in b]


def test_recalibrated_bundle_is_a_verified_child(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    src = tmp_path / "src"
    m = export_bundle(
        src, model, vocab, calibrate([1.0, 2.0], 0.5, strategy=ScoringStrategy()),
        data_from=None, data_to=None, preset="tiny", parent_version=None,
        metrics={"val_windows": 2},
    )  # fmt: skip
    new_cal = calibrate([3.0, 4.0, 5.0], 0.5, strategy=ScoringStrategy(aggregate="max"))
    dst = tmp_path / "dst"
    child = write_recalibrated_bundle(src, dst, new_cal)
    assert verify_bundle(dst).version == child.version != m.version
    assert child.parent_version == m.version and child.metrics["val_windows"] == 2
    cal = Calibration.from_json((dst / CALIBRATION).read_bytes())
    assert cal.strategy["aggregate"] == "max" and cal.threshold == 4.0
    assert (dst / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    with pytest.raises(BundleError):
        write_recalibrated_bundle(src, dst, new_cal)
