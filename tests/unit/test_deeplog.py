from __future__ import annotations

import numpy as np
import pytest

from schemas.vocab import PAD_ID, SEP_ID, Vocab
from trainer.deeplog import (
    DeepLogConfig,
    DeepLogScorer,
    next_event_pairs,
    train_deeplog,
    true_ranks,
)


def test_pairs_left_pad_and_predict_the_end() -> None:
    x, y, owner = next_event_pairs([[7, 8, 9], [5]], history=2, predict_end=True)
    assert y.tolist() == [7, 8, 9, SEP_ID, 5, SEP_ID]
    assert owner.tolist() == [0, 0, 0, 0, 1, 1]
    assert x.tolist() == [
        [PAD_ID, PAD_ID],
        [PAD_ID, 7],
        [7, 8],
        [8, 9],
        [PAD_ID, PAD_ID],
        [PAD_ID, 5],
    ]
    _, y2, _ = next_event_pairs([[7, 8, 9]], history=2, predict_end=False)
    assert y2.tolist() == [7, 8, 9]


def test_ranks_count_strictly_higher_classes() -> None:
    class Fixed:
        def __call__(self, history: object) -> object:
            import torch

            return torch.tensor([[0.1, 0.9, 0.5, 0.5]] * 3)

    ranks = true_ranks(Fixed(), np.zeros((3, 2), np.int64), np.array([1, 2, 0]))  # type: ignore[arg-type]
    assert ranks.tolist() == [0, 1, 3]


def test_config_validates() -> None:
    with pytest.raises(ValueError):
        DeepLogConfig(top_g=0)
    with pytest.raises(ValueError):
        DeepLogConfig(lr=0)


def test_learns_a_workflow_and_flags_deviations() -> None:
    normal = [["a", "b", "c", "d"]] * 60 + [["x", "y", "z"]] * 20
    vocab = Vocab.build(normal)
    windows = [np.asarray(vocab.encode(s), np.int64) for s in normal]
    cfg = DeepLogConfig(
        history=3, top_g=1, embed=8, hidden=16, layers=1, epochs=20, batch_size=64, lr=1e-2
    )
    scorer = DeepLogScorer(train_deeplog(windows, len(vocab), cfg), vocab, cfg)
    flagged = [
        s > scorer.paper_threshold
        for s in scorer.score_events(
            [["a", "b", "c", "d"], ["a", "c", "b", "d"], ["a", "b"], ["a", "b", "c", "q"]]
        )
    ]
    # In order: normal; swapped order; stopped early (the end is predicted); unseen event.
    assert flagged == [False, True, True, True]
