"""Time gaps: the bucket rule, its vectorized form, and gaps_ms in Session and Window lines."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import DecodeError
from schemas.sessions import Session
from schemas.windows import Window
from trainer.time_gaps import (
    MAX_TIME_BUCKETS,
    gap_bucket,
    gap_level,
    gap_levels,
    levels_to_buckets,
    window_buckets,
)


@given(st.integers(0, 1 << 62), st.integers(2, MAX_TIME_BUCKETS))
def test_bucket_is_one_plus_capped_log2(gap: int, n: int) -> None:
    b = gap_bucket(gap, n)
    assert 1 <= b <= n - 1
    # The rule as written, with exact integer log2.
    assert b == 1 + min(n - 2, (1 + gap).bit_length() - 1)
    if gap < (1 << 50):  # within float precision, the float formula agrees
        assert b == 1 + min(n - 2, math.floor(math.log2(1 + gap)))


def test_bucket_edges() -> None:
    assert [gap_bucket(g, 16) for g in (0, 1, 2, 3, 4, 7, 8)] == [1, 2, 2, 3, 3, 4, 4]
    assert gap_bucket(10, 16) == 4  # 10 ms: floor(log2 11) = 3
    assert gap_bucket(60_000, 16) == 15  # a minute is past 2^14 ms: the last bucket
    assert gap_bucket(60_000, 32) == 16
    with pytest.raises(ValueError, match="time buckets"):
        gap_bucket(1, 1)
    with pytest.raises(ValueError, match=">= 0"):
        gap_level(-1)


@given(st.lists(st.integers(0, 1 << 40), min_size=1, max_size=40), st.integers(2, 40))
def test_vectorized_matches_the_scalar_rule(gaps: list[int], n: int) -> None:
    gaps[0] = 0
    buckets = window_buckets(gaps, len(gaps), n)
    assert buckets[0] == 0  # a window's first event: no gap known
    assert buckets[1:].tolist() == [gap_bucket(g, n) for g in gaps[1:]]
    assert levels_to_buckets(gap_levels(gaps, len(gaps)), n).tolist() == buckets.tolist()


def test_unknown_gaps_and_the_end_marker_are_bucket_zero() -> None:
    assert window_buckets(None, 4, 8).tolist() == [0, 0, 0, 0]
    # A marker appended after three timed events gets no gap.
    assert window_buckets([0, 5, 5000], 4, 8).tolist() == [0, 3, 7, 0]
    with pytest.raises(ValueError, match="gaps for"):
        window_buckets([0, 1, 2], 2, 8)


def test_session_gaps_round_trip_and_stay_out_when_unknown() -> None:
    s = Session("s1", ("A", "B", "C"), start_ts=10, end_ts=30, gaps_ms=(0, 5, 15))
    line = s.encode()
    assert orjson.loads(line)["gaps_ms"] == [0, 5, 15]
    assert Session.decode(line) == s
    plain = Session("s1", ("A", "B"))
    assert "gaps_ms" not in orjson.loads(plain.encode())
    assert Session.decode(plain.encode()).gaps_ms is None


def test_window_gaps_round_trip_and_stay_out_when_unknown() -> None:
    w = Window.build("s", 0, ("A", "B"), 1, 9, 0, 3, 4, gaps_ms=(0, 8))
    assert Window.decode(w.encode()) == w
    assert orjson.loads(w.encode())["gaps_ms"] == [0, 8]
    plain = Window.build("s", 0, ("A", "B"), 1, 9, 0, 3, 4)
    assert "gaps_ms" not in orjson.loads(plain.encode())
    assert Window.decode(plain.encode()).gaps_ms is None


@pytest.mark.parametrize(
    ("gaps", "message"),
    [
        ([0, 1], "2 gaps for 3 events"),
        ([1, 1, 1], "first gap must be 0"),
        ([0, -1, 1], "out of range"),
        ([0, 1.5, 1], "must be an integer"),
        ("0,1,2", "must be a list"),
    ],
)
def test_bad_gaps_are_refused_with_the_field_named(gaps: object, message: str) -> None:
    line = {"session_id": "s", "events": ["A", "B", "C"], "gaps_ms": gaps}
    with pytest.raises(DecodeError, match=message) as e:
        Session.from_dict(line)
    assert "gaps_ms" in str(e.value)
    w = Window.build("s", 0, ("A", "B", "C"), 1, 9, 0, 3, 5).to_dict()
    with pytest.raises(DecodeError, match=message):
        Window.from_dict({**w, "gaps_ms": gaps})
    with pytest.raises(DecodeError, match="gaps"):
        Session("s", ("A",), gaps_ms=(0, 1))


def test_levels_are_small_enough_for_uint8() -> None:
    assert gap_levels([0, (1 << 62)], 2).dtype == np.uint8
    assert int(gap_levels([0, (1 << 62)], 2)[1]) == 63
