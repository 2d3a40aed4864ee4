"""The session-end marker's one rule, applied alike by the trainer's tokenization and by the
scorer: a window of fewer than 510 events gets the marker appended."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, VOCAB, Calibration, new_version, write_manifest
from schemas.daily_files import write_sessions
from schemas.sessions import Session
from schemas.vocab import Vocab
from schemas.windows import MAX_EVENTS, Window
from trainer.dataset import DataSelection, load_training_data
from trainer.end_marker import END_EVENT
from trainer.model import bert_config, build_model, get_preset, save_model
from trainer.scoring import ScoringStrategy, WindowScorer, score_token_windows
from trainer.token_cache import FileTokens, TokenCache, encode_sessions

SESSIONS = [
    Session("long", tuple(["E1"] * 600)),  # a full window (split), then 90 events
    Session("full", tuple(["E2"] * MAX_EVENTS)),  # exactly 510: the marker would not fit
    Session("short", ("E1", "E2", "E3")),
]


def decoded(ft: FileTokens) -> list[list[str]]:
    events, codes, off = ft.events, np.asarray(ft.codes), ft.offsets
    return [[events[c] for c in codes[off[i] : off[i + 1]]] for i in range(len(off) - 1)]


def test_tokenization_marks_each_window_shorter_than_a_full_one() -> None:
    windows = decoded(encode_sessions(SESSIONS, end_marker=True))
    assert [len(w) for w in windows] == [MAX_EVENTS, 91, MAX_EVENTS, 4]
    assert [w[-1] for w in windows] == ["E1", END_EVENT, "E2", END_EVENT]
    assert sum(w.count(END_EVENT) for w in windows) == 2
    plain = decoded(encode_sessions(SESSIONS))
    assert [len(w) for w in plain] == [MAX_EVENTS, 90, MAX_EVENTS, 3]
    assert END_EVENT not in {e for w in plain for e in w}


def test_a_session_archived_as_cut_gets_no_marker() -> None:
    cut = Session("c", ("E1", "E2", "E3"), ended=False)
    whole = Session("w", ("E1", "E2", "E3"))
    assert decoded(encode_sessions([cut, whole], end_marker=True)) == [
        ["E1", "E2", "E3"],
        ["E1", "E2", "E3", END_EVENT],
    ]


def test_marked_and_plain_tokens_are_separate_cache_entries(tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    write_sessions(f, SESSIONS)
    marked = TokenCache(tmp_path / "c", end_marker=True)
    plain = TokenCache(tmp_path / "c")
    assert marked.entry_dir("k") != plain.entry_dir("k")
    data = load_training_data(DataSelection((f,)), marked, 0.01, 100)
    assert END_EVENT in data.vocab
    assert int(data.store.lengths.sum()) == 600 + 510 + 3 + 2
    assert END_EVENT not in load_training_data(DataSelection((f,)), plain, 0.01, 100).vocab
    assert marked.misses == plain.misses == 1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    vocab = Vocab.build([["E1", "E2", "E3", END_EVENT]])
    model = build_model(bert_config(get_preset("tiny"), len(vocab)))
    path = tmp_path_factory.mktemp("b") / "bundle"
    path.mkdir()
    save_model(model, path)
    vocab.save(path / VOCAB)
    strategy = ScoringStrategy(groups=3, n_surprising=600)
    cal = Calibration({"p50": 1.0}, 1.0, 0.999, 10, strategy.to_dict())
    (path / CALIBRATION).write_bytes(cal.to_json())
    write_manifest(path, new_version(), None, None, preset="tiny")
    return path


def test_scorer_marks_windows_like_the_trainer(bundle: Path) -> None:
    scorer = WindowScorer.from_bundle(bundle, "cpu")
    assert scorer.end_marker
    events = [("E1", "E2", "E3"), ("E2",) * MAX_EVENTS]
    windows = [Window.build("s", i, e, 1, 2, -1, 0, len(e) - 1) for i, e in enumerate(events)]
    scores = scorer.score_windows(windows, now_ms=5)
    # The same as scoring the tokens the trainer would have made of these windows.
    tokens = decoded(
        encode_sessions([Session(f"s{i}", e) for i, e in enumerate(events)], end_marker=True)
    )
    direct = score_token_windows(
        scorer.model,
        [scorer.vocab.encode(w) for w in tokens],
        scorer.strategy,
        torch.device("cpu"),
    )
    assert [s.score for s in scores] == [d.score for d in direct]
    assert [s.n_events for s in scores] == [3, MAX_EVENTS]
    # Every prediction is explained; the one after the last event is the marker.
    first = scores[0].surprising
    assert sorted(s.position for s in first) == [0, 1, 2, 3]
    assert {s.event_id for s in first if s.position == 3} == {END_EVENT}
    assert max(s.position for s in scores[1].surprising) == MAX_EVENTS - 1


def test_scorer_without_the_marker_in_its_vocab_adds_none() -> None:
    vocab = Vocab.build([["E1", "E2", "E3", "E4"]])
    model: BertForMaskedLM = build_model(bert_config(get_preset("tiny"), len(vocab)))
    scorer = WindowScorer(
        model, vocab, ScoringStrategy(n_surprising=10), 1.0, "v", torch.device("cpu")
    )
    assert not scorer.end_marker
    [r] = scorer.score_events([("E1", "E2")])
    assert r.nll.size == 2


def test_a_window_cut_while_its_session_goes_on_gets_no_marker(bundle: Path) -> None:
    scorer = WindowScorer.from_bundle(bundle, "cpu")
    events = ("E1", "E2", "E3")
    ended, cut = (Window.build("s", 0, events, 1, 2, -1, 0, 2, ended=e) for e in (True, False))
    s_ended, s_cut = scorer.score_windows([ended, cut], now_ms=5)
    assert sorted(s.position for s in s_ended.surprising) == [0, 1, 2, 3]  # 3: the marker
    assert sorted(s.position for s in s_cut.surprising) == [0, 1, 2]
    direct = score_token_windows(
        scorer.model, [scorer.vocab.encode(events)], scorer.strategy, torch.device("cpu")
    )
    assert s_cut.score == direct[0].score
