"""Batcher: token budget, wait limit and length buckets, with time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.windows import Window
from stream.serve.batcher import Batcher


def win(n_events: int, i: int = 0) -> Window:
    return Window.build(f"s{i}", 0, tuple(["E1"] * n_events), 0, 1, 0, i, i)


def test_waits_until_max_wait_then_emits() -> None:
    b = Batcher(max_tokens=4096, max_wait_ms=50)
    assert b.add(win(10), now_ms=1000) == []
    assert b.next_deadline() == 1050
    assert b.due(1049) == []
    (batch,) = b.due(1050)
    assert len(batch.windows) == 1
    assert batch.oldest_ms == 1000
    assert len(b) == 0
    assert b.next_deadline() is None


def test_full_bucket_is_emitted_at_once() -> None:
    # 30 events = 32 tokens; 4096 / 32 = 128 windows fill a batch exactly.
    b = Batcher(max_tokens=4096, max_wait_ms=10_000)
    out = []
    for i in range(128):
        out += b.add(win(30, i), now_ms=0)
    assert len(out) == 1
    assert len(out[0].windows) == 128
    assert out[0].padded_tokens == 4096
    assert len(b) == 0


def test_overflowing_window_pushes_out_the_previous_batch() -> None:
    b = Batcher(max_tokens=1024, max_wait_ms=10_000)
    assert b.add(win(300, 1), 0) == []  # 302 tokens, bucket 512
    assert b.add(win(300, 2), 0) == []  # 2 x 302 = 604
    (batch,) = b.add(win(400, 3), 0)  # 3 x 402 > 1024: the first two go
    assert [w.session_id for w in batch.windows] == ["s1", "s2"]
    assert len(b) == 1


def test_lengths_go_to_separate_buckets() -> None:
    b = Batcher(max_tokens=4096, max_wait_ms=5)
    b.add(win(5, 1), 0)  # 7 tokens -> bucket 32
    b.add(win(100, 2), 0)  # 102 tokens -> bucket 128
    b.add(win(6, 3), 0)
    batches = b.flush()
    assert sorted((bt.bucket, len(bt.windows)) for bt in batches) == [(32, 2), (128, 1)]
    assert len(b) == 0


def test_max_size_window_is_a_batch_of_its_own_when_budget_is_one_window() -> None:
    b = Batcher(max_tokens=512, max_wait_ms=10_000)
    (batch,) = b.add(win(510), 0)
    assert batch.padded_tokens == 512


def test_rejects_budget_below_one_full_window() -> None:
    with pytest.raises(ValueError):
        Batcher(max_tokens=511, max_wait_ms=1)
    with pytest.raises(ValueError):
        Batcher(max_tokens=4096, max_wait_ms=1, buckets=(64, 32, 512))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 510), min_size=1, max_size=200),
    st.sampled_from([512, 1024, 4096, 16384]),
)
def test_every_window_comes_out_once_and_batches_respect_the_budget(
    lengths: list[int], budget: int
) -> None:
    b = Batcher(max_tokens=budget, max_wait_ms=20)
    batches = []
    for i, n in enumerate(lengths):
        batches += b.add(win(n, i), now_ms=i)
        batches += b.due(i)
    batches += b.flush()
    seen = [w.session_id for bt in batches for w in bt.windows]
    assert sorted(seen) == sorted(f"s{i}" for i in range(len(lengths)))
    for bt in batches:
        assert bt.padded_tokens <= budget
        assert all(len(w.events) + 2 <= bt.bucket for w in bt.windows)
