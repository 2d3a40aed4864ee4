"""The "maxrank" aggregate of the shared scoring function: a window scores the largest rank
of its true events among the model's event predictions, [UNK] ranking last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, Calibration, verify_bundle
from schemas.errors import BundleError
from schemas.vocab import CLS_ID, MASK_ID, SEP_ID, UNK_ID, Vocab
from tests.train_data import eval_tiny_model
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.recalibrate import write_recalibrated_bundle
from trainer.scoring import (
    FIRST_EVENT_ID,
    ScoringStrategy,
    aggregate,
    event_rank,
    score_token_windows,
    window_max_rank,
)

CPU = torch.device("cpu")
VOCAB_SIZE = 12
N_EVENT_TOKENS = VOCAB_SIZE - FIRST_EVENT_ID
MAXRANK = ScoringStrategy(groups=3, aggregate="maxrank", n_surprising=20)


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return eval_tiny_model(VOCAB_SIZE)


def test_event_rank_counts_strictly_better_events() -> None:
    # Columns 0..4 are specials and never compete; events are columns 5, 6, 7.
    logp = torch.tensor([[9.0, 9, 9, 9, 9, 0.1, 0.7, 0.7], [0, 0, 0, 0, 0, 0.5, 0.2, 0.9]])
    assert event_rank(logp, torch.tensor([6, 6])).tolist() == [0, 2]
    assert event_rank(logp, torch.tensor([5, 7])).tolist() == [2, 0]


def test_window_max_rank_puts_unknown_last_and_ignores_unpredicted() -> None:
    assert window_max_rank(np.array([0, 3, 1]), np.array([5, 6, 7]), 10) == 3.0
    assert window_max_rank(np.array([0, 3, 1]), np.array([5, UNK_ID, 7]), 10) == 10.0
    assert window_max_rank(np.array([0, -1, 1]), np.array([5, 6, 7]), 10) == 1.0
    assert window_max_rank(np.zeros(0, np.int64), np.zeros(0, np.int64), 10) == 0.0


def test_maxrank_is_not_an_nll_aggregate() -> None:
    assert ScoringStrategy.from_dict({"aggregate": "maxrank"}).aggregate == "maxrank"
    with pytest.raises(ValueError, match="maxrank"):
        aggregate(np.ones(3, np.float32), ScoringStrategy(aggregate="maxrank"))


def direct_max_rank(model: BertForMaskedLM, window: list[int], groups: int) -> float:
    """One unbatched pass per mask group over the full LM head: the rank by hand."""
    worst = 0
    for g in range(groups):
        ids = torch.tensor([[CLS_ID, *window, SEP_ID]])
        positions = list(range(g, len(window), groups))
        for p in positions:
            ids[0, p + 1] = MASK_ID
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0].float()
        for p in positions:
            if window[p] == UNK_ID:
                worst = max(worst, N_EVENT_TOKENS)
                continue
            row = logits[p + 1, FIRST_EVENT_ID:]
            worst = max(worst, int((row > logits[p + 1, window[p]]).sum()))
    return float(worst)


def test_maxrank_score_equals_a_direct_computation(model: BertForMaskedLM) -> None:
    rng = np.random.default_rng(1)
    windows = [rng.integers(5, VOCAB_SIZE, int(n)).tolist() for n in (1, 4, 9, 17)]
    results = score_token_windows(model, windows, MAXRANK, CPU, max_batch_tokens=64)
    assert [r.score for r in results] == [direct_max_rank(model, w, 3) for w in windows]
    assert all(0 <= r.score < N_EVENT_TOKENS for r in results)
    # The NLLs (and so the explanations) are those of the same passes under "max".
    plain = ScoringStrategy(groups=3, aggregate="max", n_surprising=20)
    as_max = score_token_windows(model, windows, plain, CPU)
    for a, b in zip(results, as_max, strict=True):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)
        assert [s.position for s in a.surprising] == [s.position for s in b.surprising]


def test_maxrank_ranks_unknown_last_and_is_batch_independent(model: BertForMaskedLM) -> None:
    rng = np.random.default_rng(2)
    windows = [rng.integers(5, VOCAB_SIZE, int(n)).tolist() for n in rng.integers(1, 40, 12)]
    windows += [[UNK_ID, 6], [], [7, 8, UNK_ID]]
    a = score_token_windows(model, windows, MAXRANK, CPU, max_batch_tokens=64)
    b = score_token_windows(model, windows, MAXRANK, CPU, max_batch_tokens=100_000)
    assert [x.score for x in a] == [x.score for x in b]
    assert a[-3].score == a[-1].score == N_EVENT_TOKENS
    assert a[-2].score == 0.0


def test_recalibrated_bundle_is_a_verified_child(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    src = tmp_path / "src"
    m = export_bundle(
        src, model, vocab, calibrate([1.0, 2.0], 0.5, strategy=ScoringStrategy()),
        data_from=None, data_to=None, preset="tiny", parent_version=None,
        metrics={"val_windows": 2},
    )  # fmt: skip
    new_cal = calibrate([3.0, 4.0, 5.0], 0.5, strategy=MAXRANK)
    dst = tmp_path / "dst"
    child = write_recalibrated_bundle(src, dst, new_cal)
    assert verify_bundle(dst).version == child.version != m.version
    assert child.parent_version == m.version and child.metrics["val_windows"] == 2
    cal = Calibration.from_json((dst / CALIBRATION).read_bytes())
    assert cal.strategy["aggregate"] == "maxrank" and cal.threshold == 4.0
    assert (dst / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    with pytest.raises(BundleError):
        write_recalibrated_bundle(src, dst, new_cal)
