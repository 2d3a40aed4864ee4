"""The token cache: keyed by content, reused across runs and vocabs, windows split like the
stream's, and the validation slice chosen by session hash."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from schemas import DataError, Session
from schemas.daily_files import daily_file_name, write_sessions
from schemas.vocab import CLS_ID, SEP_ID, UNK_ID, Vocab
from schemas.windows import MAX_EVENTS, split_points
from trainer.dataset import (
    DataSelection,
    build_vocab,
    cover_events,
    is_validation,
    load_training_data,
    pad_windows,
)
from trainer.token_cache import TokenCache, encode_sessions


def _day(d: Path, day: str, sessions: list[Session]) -> Path:
    p = d / daily_file_name(date.fromisoformat(day))
    write_sessions(p, sessions)
    return p


def _sessions(prefix: str, n: int, events: tuple[str, ...] = ("E1", "E2", "E3")) -> list[Session]:
    return [Session(f"{prefix}-{i}", events[: 1 + i % len(events)]) for i in range(n)]


def test_second_load_is_a_cache_hit_with_equal_arrays(tmp_path: Path) -> None:
    f = _day(tmp_path, "2026-01-01", _sessions("a", 50))
    c1 = TokenCache(tmp_path / "cache")
    a = c1.load(f)
    c1.save_memo()
    c2 = TokenCache(tmp_path / "cache")
    b = c2.load(f)
    assert (c1.misses, c2.misses, c2.hits) == (1, 0, 1)
    assert a.events == b.events
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.offsets, b.offsets)
    assert isinstance(b.codes, np.memmap)  # memory-mapped, not read into memory
    assert b.codes.dtype == np.uint16


def test_changed_file_is_retokenized_unchanged_days_are_not(tmp_path: Path) -> None:
    d1 = _day(tmp_path, "2026-01-01", _sessions("a", 20))
    d2 = _day(tmp_path, "2026-01-02", _sessions("b", 20))
    cache = TokenCache(tmp_path / "cache")
    k1, k2 = cache.load(d1).key, cache.load(d2).key
    cache.save_memo()
    write_sessions(d2, _sessions("b", 21))  # the day grew
    cache = TokenCache(tmp_path / "cache")
    assert cache.load(d1).key == k1
    new = cache.load(d2)
    assert new.key != k2 and new.n_sessions == 21
    assert (cache.hits, cache.misses) == (1, 1)


def test_same_content_elsewhere_shares_the_entry(tmp_path: Path) -> None:
    a = _day(tmp_path, "2026-01-01", _sessions("a", 10))
    (tmp_path / "copy").mkdir()
    b = tmp_path / "copy" / a.name
    b.write_bytes(a.read_bytes())
    cache = TokenCache(tmp_path / "cache")
    assert cache.load(a).key == cache.load(b).key
    assert (cache.hits, cache.misses) == (1, 1)


def test_long_sessions_split_like_the_stream() -> None:
    events = tuple(f"E{i % 7}" for i in range(1200))
    ft = encode_sessions([Session("long", events), Session("short", ("E1",))])
    expected = [b - a for a, b in split_points(1200, MAX_EVENTS)] + [1]
    assert ft.lengths.tolist() == expected == [510, 510, 180, 1]
    # All windows of a session share its hash, so they fall on the same side of the split.
    assert len(set(ft.session_hash[:3].tolist())) == 1


def test_cache_stays_valid_under_any_vocab(tmp_path: Path) -> None:
    f = _day(tmp_path, "2026-01-01", [Session("s1", ("X", "Y", "Z", "X"))] * 3)
    sel = DataSelection((f,))
    cache = TokenCache(tmp_path / "cache")
    v1 = Vocab.from_counts(Counter({"X": 3, "Y": 2, "Z": 1}))
    v2 = Vocab.from_counts(Counter({"Z": 9, "Q": 5}))  # different ids, X and Y unknown
    d1 = load_training_data(sel, cache, 0.001, 100, fixed_vocab=v1)
    d2 = load_training_data(sel, cache, 0.001, 100, fixed_vocab=v2)
    assert cache.misses == 1
    row1 = d1.store.window(0)
    row2 = d2.store.window(0)
    assert row1 == [CLS_ID, *v1.encode(["X", "Y", "Z", "X"]), SEP_ID]
    assert row2 == [CLS_ID, UNK_ID, UNK_ID, v2.id_of("Z"), UNK_ID, SEP_ID]


def test_vocab_is_built_from_training_windows_only(tmp_path: Path) -> None:
    sessions = [Session(f"s{i}", ("COMMON", f"ONLY{i}")) for i in range(400)]
    f = _day(tmp_path, "2026-01-01", sessions)
    data = load_training_data(DataSelection((f,)), TokenCache(tmp_path / "c"), 0.1, 10_000)
    is_val = is_validation(
        np.array([encode_sessions([sessions[i]]).session_hash[0] for i in range(400)]), 0.1
    )
    held_out = {f"ONLY{i}" for i in range(400) if is_val[i]}
    trained = {f"ONLY{i}" for i in range(400) if not is_val[i]}
    assert 20 < len(held_out) < 60  # about 10%
    assert len(data.val_idx) == len(held_out)
    assert held_out.isdisjoint(data.vocab.tokens)
    assert trained <= set(data.vocab.tokens)
    assert "COMMON" in data.vocab


def test_validation_split_is_stable_and_near_the_fraction() -> None:
    ft = encode_sessions([Session(f"blk_{i}", ("E1",)) for i in range(20_000)])
    a = is_validation(ft.session_hash, 0.02)
    assert 0.015 < a.mean() < 0.025
    assert np.array_equal(a, is_validation(ft.session_hash, 0.02))
    # Growing the fraction only adds sessions.
    assert (is_validation(ft.session_hash, 0.05) >= a).all()


def test_warm_start_vocab_keeps_old_ids() -> None:
    base = Vocab.from_counts(Counter({"A": 5, "B": 3}))
    grown = build_vocab(Counter({"B": 10, "C": 7, "D": 1}), 100, base)
    assert grown.tokens[: len(base)] == base.tokens
    assert grown.tokens[len(base) :] == ("C", "D")
    capped = build_vocab(Counter({"C": 7, "D": 1}), len(base) + 1, base)
    assert capped.tokens[len(base) :] == ("C",)  # the most frequent new event wins the room


def test_pad_windows_adds_cls_sep_and_pads(tmp_path: Path) -> None:
    f = _day(tmp_path, "2026-01-01", [Session("a", ("E1",) * 5), Session("b", ("E2",) * 2)])
    data = load_training_data(DataSelection((f,)), TokenCache(tmp_path / "c"), 0.001, 100)
    ids = pad_windows(data.store, np.array([0, 1]), 8)
    e1, e2 = data.vocab.id_of("E1"), data.vocab.id_of("E2")
    assert ids.shape == (2, 8)
    assert ids[0].tolist() == [CLS_ID, e1, e1, e1, e1, e1, SEP_ID, 0]
    assert ids[1].tolist() == [CLS_ID, e2, e2, SEP_ID, 0, 0, 0, 0]


def test_bad_line_and_empty_range_are_data_errors(tmp_path: Path) -> None:
    f = _day(tmp_path, "2026-01-01", _sessions("a", 3))
    with f.open("ab") as fh:
        fh.write(b'{"session_id": "x", "events": "not a list"}\n')
    with pytest.raises(DataError, match=r"preprocessed_logs_2026-01-01\.jsonl:4: bad session"):
        load_training_data(DataSelection((tmp_path,)), TokenCache(tmp_path / "c"), 0.02, 100)
    sel = DataSelection((tmp_path,), from_date=date(2030, 1, 1))
    with pytest.raises(DataError, match="no daily files in range"):
        load_training_data(sel, TokenCache(tmp_path / "c"), 0.02, 100)


def test_last_days_counts_back_from_the_newest_file(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"):
        _day(tmp_path, day, _sessions(day, 30))
    data = load_training_data(
        DataSelection((tmp_path,), last_days=2), TokenCache(tmp_path / "c"), 0.02, 100
    )
    assert (data.data_from, data.data_to) == ("2026-01-03", "2026-01-04")
    assert data.n_sessions == 60


def test_cover_events_trains_the_first_window_of_each_validation_only_event() -> None:
    sessions = [
        Session("a", ("A", "B")),
        Session("b", ("A", "NEW")),  # validation: NEW only here and in c
        Session("c", ("NEW", "A")),  # validation
        Session("d", ("B", "A")),  # validation, every event trained
    ]
    ft = encode_sessions(sessions)
    val = np.array([False, True, True, True])
    (moved,) = cover_events([ft], [val])
    assert moved.tolist() == [False, False, True, True]
    assert val.tolist() == [False, True, True, True]  # the input is left as it was
    # Nothing to move: the masks come back equal.
    (same,) = cover_events([ft], [np.array([False, False, False, True])])
    assert same.tolist() == [False, False, False, True]


def test_a_split_that_covers_events_leaves_none_out_of_the_vocab(tmp_path: Path) -> None:
    sessions = [Session(f"s{i}", ("COMMON", f"ONLY{i}")) for i in range(400)]
    f = _day(tmp_path, "2026-01-01", sessions)
    plain = load_training_data(DataSelection((f,)), TokenCache(tmp_path / "c"), 0.1, 10_000)
    covered = load_training_data(
        DataSelection((f,)), TokenCache(tmp_path / "c"), 0.1, 10_000, val_covers_events=True
    )
    every = {f"ONLY{i}" for i in range(400)}
    assert not every.issubset(plain.vocab.tokens)
    assert every.issubset(covered.vocab.tokens)
    # Each validation window held an event of its own, so each moved to training.
    assert len(covered.val_idx) == 0 < len(plain.val_idx)
