"""Count ceilings: with `count_ceilings`, an occurrence of an event beyond the most any
training window held of it scores like [UNK]; events whose count a validation window
exceeded get no ceiling; the ceilings travel in calibration.json."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, Calibration
from schemas.errors import BundleError
from schemas.vocab import UNK_ID, Vocab
from tests.train_data import eval_tiny_model
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.known_mixes import KnownMixes, ceiling_limits, count_ceilings, past_ceiling
from trainer.recalibrate import write_recalibrated_bundle
from trainer.scoring import ScoringStrategy, WindowScorer, score_token_windows

CPU = torch.device("cpu")
VOCAB_SIZE = 12
MAX = ScoringStrategy(groups=3)
MAX_CEIL = ScoringStrategy(groups=3, count_ceilings=True)


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return eval_tiny_model(VOCAB_SIZE)


def naive_past(windows: list[list[int]], ceilings: dict[int, int]) -> list[bool]:
    out: list[bool] = []
    for w in windows:
        seen: Counter[int] = Counter()
        for t in w:
            seen[t] += 1
            out.append(t in ceilings and seen[t] > ceilings[t])
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(4, 9), max_size=12), max_size=5),
    st.dictionaries(st.integers(4, 9), st.integers(0, 3)),
)
def test_past_ceiling_marks_the_occurrences_beyond_each_ceiling(
    windows: list[list[int]], ceilings: dict[int, int]
) -> None:
    ids = np.array([t for w in windows for t in w], dtype=np.int64)
    window_of = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
    got = past_ceiling(ids, window_of, ceiling_limits(ceilings.items()))
    assert got.tolist() == naive_past(windows, ceilings)


def test_ceilings_come_from_training_and_validation_drops_long_tails() -> None:
    train = [[5, 5, 6, 7], [5, 7, 7, UNK_ID, UNK_ID]]
    # 7 is held three times in a validation window: its count has a long tail, no ceiling.
    validation = [[5, 5], [7, 7, 7], [8]]
    assert count_ceilings(train, validation, support=1) == ((5, 2), (6, 1))
    assert count_ceilings(train, [], support=1) == ((5, 2), (6, 1), (7, 2))
    assert count_ceilings([], validation) == ()
    with pytest.raises(ValueError, match="support"):
        count_ceilings(train, [], support=0)


def test_a_ceiling_needs_support_windows() -> None:
    # 5: held 3, 2, 2, 1 times; 6: twice only; 7: in every window once.
    train = [[5, 5, 5, 6, 7], [5, 5, 6, 7], [5, 5, 7], [5, 7]]
    assert count_ceilings(train, [], support=1) == ((5, 3), (6, 1), (7, 1))
    assert count_ceilings(train, [], support=2) == ((5, 2), (6, 1), (7, 1))
    # Fewer than 3 windows held 6: ceiling 0, any occurrence is past it.
    assert count_ceilings(train, [], support=3) == ((5, 2), (6, 0), (7, 1))
    assert count_ceilings(train, [], support=4) == ((5, 1), (6, 0), (7, 1))
    assert count_ceilings(train, [], support=5) == ((5, 0), (6, 0), (7, 0))
    # ... unless a validation window holds it: then it has no ceiling at all.
    assert count_ceilings(train, [[6]], support=3) == ((5, 2), (7, 1))
    ids = np.array([6, 5, 5, 5], dtype=np.int64)
    limits = ceiling_limits(count_ceilings(train, [], support=3))
    past = past_ceiling(ids, np.zeros(4, dtype=np.int64), limits)
    assert past.tolist() == [True, False, False, True]


def test_an_event_past_its_ceiling_scores_like_unk(model: BertForMaskedLM) -> None:
    known = KnownMixes.of([(5, 1, 6, 1)], ceilings=[(5, 1), (6, 2)])
    windows = [[5, 6, 6, 7], [5, 6, 5, 7, 5], [6, 6, 6]]
    plain = score_token_windows(model, windows, MAX, CPU, known=known)
    capped = score_token_windows(model, windows, MAX_CEIL, CPU, known=known)
    assert [r.past_ceiling for r in plain] == [(), (2, 4), (2,)]  # reported without the flag
    assert [r.past_ceiling for r in capped] == [(), (2, 4), (2,)]
    unk = MAX.unk_nll
    assert capped[0].score == plain[0].score < unk  # within its ceilings: exactly as before
    assert capped[1].score == capped[2].score == pytest.approx(unk)
    assert plain[1].score < unk
    np.testing.assert_allclose(capped[1].nll[[0, 1, 3]], plain[1].nll[[0, 1, 3]])
    assert capped[1].surprising[0].position in (2, 4)  # the explanation names the excess
    assert capped[1].surprising[0].reason == "past_count_ceiling"
    assert all(s.reason is None for s in plain[1].surprising)
    # Without ceilings to look up, nothing is reported.
    assert score_token_windows(model, windows, MAX, CPU)[1].past_ceiling == ()


def test_count_ceilings_need_ceilings(model: BertForMaskedLM) -> None:
    with pytest.raises(ValueError, match="count ceilings"):
        score_token_windows(model, [[5]], MAX_CEIL, CPU, known=KnownMixes.of([(5, 1)]))
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    with pytest.raises(BundleError, match="count ceilings"):
        WindowScorer(model, vocab, MAX_CEIL, 1.0, "v1", CPU, known=KnownMixes.of([(5, 1)]))
    # An empty list is a recorded answer (every count had a long tail): nothing is capped.
    scorer = WindowScorer(model, vocab, MAX_CEIL, 1.0, "v1", CPU, known=KnownMixes.of([], [], []))
    assert scorer.score_events([["E0", "E0"]], ended=[False])[0].past_ceiling == ()


def test_calibration_round_trips_count_ceilings() -> None:
    known = KnownMixes.of([(5, 2)], [(5, 5)], [(5, 2), (9, 0)])
    cal = calibrate([1.0, 2.0], 0.5, strategy=MAX_CEIL, known=known)
    back = Calibration.from_json(cal.to_json())
    assert back == cal and back.count_ceilings == ((5, 2), (9, 0))
    old_file = b'{"quantiles": {}, "threshold": 1, "threshold_quantile": 0.5, "n_windows": 2}'
    assert Calibration.from_json(old_file).count_ceilings is None
    assert calibrate([1.0], strategy=MAX).count_ceilings is None
    for bad in ("[[5, -1]]", "[[5]]", "[[-1, 2]]", "[[5, true]]", "[5]"):
        with pytest.raises(BundleError, match="count_ceilings"):
            Calibration.from_json(old_file[:-1] + f', "count_ceilings": {bad}}}'.encode())


def test_recalibrated_bundle_keeps_the_ceilings(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    src = tmp_path / "src"
    known = KnownMixes.of([(5, 1, 6, 1)], [(5, 6)], [(5, 1), (6, 1)])
    export_bundle(
        src, model, vocab, calibrate([1.0, 2.0], 0.5, strategy=MAX, known=known),
        data_from=None, data_to=None, preset="tiny", parent_version=None, metrics={},
    )  # fmt: skip
    write_recalibrated_bundle(src, tmp_path / "dst", calibrate([3.0], 0.5, strategy=MAX_CEIL))
    cal = Calibration.from_json((tmp_path / "dst" / CALIBRATION).read_bytes())
    assert cal.count_ceilings == ((5, 1), (6, 1)) and cal.strategy["count_ceilings"] is True
    served = WindowScorer.from_bundle(tmp_path / "dst", device="cpu")
    got = served.score_events([["E0", "E0"], ["E0", "E1"]], ended=[False, False])
    assert got[0].past_ceiling == (1,) and got[0].score == pytest.approx(MAX.unk_nll)
    assert got[1].past_ceiling == () and got[1].score < MAX.unk_nll
