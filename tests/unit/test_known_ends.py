"""Known ends: with `known_ends`, the session-end marker right after an event that no
training window ended with scores like [UNK]; the rule needs no new bundle data (the known
pairs hold the endings) and is written to calibration.json only when on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, Calibration
from schemas.vocab import UNK_ID, Vocab
from tests.train_data import eval_tiny_model
from trainer.calibration import calibrate
from trainer.end_marker import END_EVENT
from trainer.export import export_bundle
from trainer.known_mixes import KnownMixes, ending_pairs, unseen_ends
from trainer.scoring import ScoringStrategy, WindowScorer, score_token_windows

CPU = torch.device("cpu")
VOCAB_SIZE = 12
END = 9
MAX = ScoringStrategy(groups=3)
ENDS = ScoringStrategy(groups=3, known_ends=True)


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return eval_tiny_model(VOCAB_SIZE)


def naive(windows: list[list[int]], ending: set[int], end_id: int) -> list[bool]:
    out: list[bool] = []
    for w in windows:
        out.extend(
            i > 0 and t == end_id and w[i - 1] not in ending | {UNK_ID} for i, t in enumerate(w)
        )
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([UNK_ID, *range(4, 11)]), max_size=8), max_size=5),
    st.sets(st.integers(4, 10)),
)
def test_unseen_ends_marks_the_markers_after_an_event_no_window_ended_with(
    windows: list[list[int]], ending: set[int]
) -> None:
    ids = np.array([t for w in windows for t in w], dtype=np.int64)
    window_of = np.repeat(np.arange(len(windows)), [len(w) for w in windows])
    known = KnownMixes.of([(4, 1)], [(t, END) for t in ending] + [(END, 4)], end_id=END)
    assert known is not None
    got = unseen_ends(ids, window_of, known.ending, END)
    assert got.tolist() == naive(windows, ending, END)


def test_the_endings_come_from_the_known_pairs_into_the_marker() -> None:
    known = KnownMixes.of([(5, 1)], [(5, END), (6, 7), (END, 6)], end_id=END)
    assert known is not None
    assert np.flatnonzero(known.ending).tolist() == [5]
    without = KnownMixes.of([(5, 1)], [(5, END)])
    assert without is not None and without.ending.size == 0


def test_ending_pairs_are_the_last_event_before_a_marker() -> None:
    windows = [[5, 6, END], [6, END], [END], [5, 7], np.array([7, 7, END])]
    assert ending_pairs(windows, END) == {(6, END), (7, END)}
    assert ending_pairs([], END) == set()


def test_a_marker_where_no_session_ended_scores_like_unk(model: BertForMaskedLM) -> None:
    known = KnownMixes.of([(5, 1, 6, 1, END, 1)], [(5, 6), (6, END)], end_id=END)
    windows = [[5, 6, END], [6, 5, END], [6, 5]]
    plain = score_token_windows(model, windows, MAX, CPU, known=known)
    ruled = score_token_windows(model, windows, ENDS, CPU, known=known)
    unk = MAX.unk_nll
    assert ruled[0].score == plain[0].score < unk  # ended where training ended: as before
    assert plain[1].score < unk
    assert ruled[1].score == pytest.approx(unk)
    assert ruled[1].surprising[0].position == 2  # the explanation names the end
    assert ruled[1].surprising[0].reason == "unseen_end"  # and the rule that scored it
    assert all(s.reason is None for s in plain[1].surprising)
    np.testing.assert_allclose(ruled[1].nll[:2], plain[1].nll[:2])
    assert ruled[2].score == plain[2].score  # no marker, nothing to judge
    with pytest.raises(ValueError, match="unseen session ends"):
        score_token_windows(model, windows, ENDS, CPU)


def test_the_strategy_records_the_rule_only_when_on() -> None:
    assert "known_ends" not in MAX.to_dict()
    assert ENDS.to_dict()["known_ends"] is True
    assert ScoringStrategy.from_dict(ENDS.to_dict()) == ENDS
    assert ScoringStrategy.from_dict(MAX.to_dict()) == MAX


def test_a_served_bundle_applies_the_rule(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([["E0", "E1", "E2", "E3", "E4", "E5", END_EVENT]])
    e0, e1, end = (vocab.id_of(x) for x in ("E0", "E1", END_EVENT))
    known = KnownMixes.of([(e0, 1, e1, 1, end, 1)], [(e0, e1), (e1, end)])
    export_bundle(
        tmp_path / "b", model, vocab, calibrate([1.0, 2.0], 0.5, strategy=ENDS, known=known),
        data_from=None, data_to=None, preset="tiny", parent_version=None, metrics={},
    )  # fmt: skip
    cal = Calibration.from_json((tmp_path / "b" / CALIBRATION).read_bytes())
    assert cal.strategy["known_ends"] is True
    served = WindowScorer.from_bundle(tmp_path / "b", device="cpu")
    got = served.score_events([["E0", "E1"], ["E1", "E0"], ["E1", "E0"]], ended=[True, True, False])
    assert got[0].score < MAX.unk_nll
    assert got[1].score == pytest.approx(MAX.unk_nll)  # ended after E0: never seen
    assert got[2].score < MAX.unk_nll  # cut mid-session: no marker
