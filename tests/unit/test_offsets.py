"""OffsetTracker: commits stay behind every offset whose result is not yet acknowledged."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.serve.offsets import (
    DoneWindow,
    OffsetTracker,
    decode_metadata,
    encode_metadata,
    session_key,
)


def none(_p: int) -> int | None:
    return None


def commits(
    t: OffsetTracker,
    open_min: Callable[[int], int | None] = none,
    partitions: list[int] | None = None,
) -> dict[int, int]:
    return {p: off for p, (off, _meta) in t.to_commit(open_min, partitions).items()}


def test_nothing_consumed_commits_nothing() -> None:
    t = OffsetTracker()
    t.assign([0, 1])
    assert commits(t) == {}
    assert t.safe_offset(0, None) is None


def test_all_done_commits_next_offset() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(10, 15):
        t.consumed(0, off)
    assert commits(t) == {0: 15}


def test_open_window_holds_commit() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(5):
        t.consumed(0, off)
    assert commits(t, lambda p: 2) == {0: 2}


def test_in_flight_window_holds_commit_until_released() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(6):
        t.consumed(0, off)
    t.hold(0, 1)  # window spanning offsets 1..4, sent but not acked
    t.hold(0, 3)
    assert t.to_commit(none) == {0: (1, "")}  # no straddlers: empty metadata
    t.committed({0: (1, "")})
    t.release(0, 3)
    assert commits(t) == {}  # still 1: no progress, nothing new to commit
    t.release(0, 1)
    assert commits(t) == {0: 6}


def test_min_of_open_and_in_flight() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(100):
        t.consumed(0, off)
    t.hold(0, 40)
    assert commits(t, lambda p: 30) == {0: 30}
    assert commits(t, lambda p: 50) == {0: 40}


def test_dlq_offset_counts_done_only_after_ack() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(3):
        t.consumed(0, off)
    t.hold(0, 1)  # bad message, DLQ send in flight
    assert commits(t) == {0: 1}
    t.release(0, 1)
    assert commits(t) == {0: 3}


def test_duplicate_holds_on_same_offset_need_both_releases() -> None:
    t = OffsetTracker()
    t.assign([0])
    t.consumed(0, 0)
    t.hold(0, 0)
    t.hold(0, 0)
    t.release(0, 0)
    assert commits(t) == {0: 0}
    t.release(0, 0)
    assert commits(t) == {0: 1}


def test_release_without_hold_raises() -> None:
    t = OffsetTracker()
    t.assign([0])
    with pytest.raises(ValueError):
        t.release(0, 5)


def test_commit_never_moves_backwards() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(10):
        t.consumed(0, off)
    t.committed({0: (10, "")})
    t.hold(0, 9)  # cannot happen in practice; the tracker must still not go back
    assert commits(t) == {}
    assert t.last_committed(0) == 10


def test_partitions_are_independent_and_filterable() -> None:
    t = OffsetTracker()
    t.assign([0, 1, 2])
    t.consumed(0, 4)
    t.consumed(1, 7)
    t.hold(1, 7)
    opens = {2: None, 0: 2, 1: None}
    assert commits(t, opens.get) == {0: 2, 1: 7}
    assert commits(t, opens.get, [1, 9]) == {1: 7}
    assert t.in_flight() == 1
    assert t.in_flight([0, 2]) == 0


def test_revoke_forgets_and_late_release_is_ignored() -> None:
    t = OffsetTracker()
    t.assign([0, 1])
    t.consumed(0, 3)
    t.hold(0, 3)
    t.revoke([0])
    assert t.assigned == frozenset({1})
    t.release(0, 3)  # the ack arrived after the revoke: nothing to do
    assert commits(t) == {}
    t.assign([0])  # reassigned: a fresh start from the group's committed offset
    assert t.next_offset(0) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=40), st.integers(0, 2**31))
def test_commit_is_exactly_the_lowest_unfinished_offset(sizes: list[int], seed: int) -> None:
    """Model check: consecutive offsets grouped into windows that finish in random order.
    The commit must always equal the lowest offset whose window is unfinished."""
    rng = random.Random(seed)
    windows = []
    off = 0
    for n in sizes:
        windows.append(list(range(off, off + n)))
        off += n
    t = OffsetTracker()
    t.assign([0])
    for w in windows:
        for o in w:
            t.consumed(0, o)
        t.hold(0, w[0])
    order = list(range(len(windows)))
    rng.shuffle(order)
    done: set[int] = set()
    for i in order:
        t.release(0, windows[i][0])
        done.add(i)
        unfinished = [windows[j][0] for j in range(len(windows)) if j not in done]
        want = min(unfinished) if unfinished else off
        assert t.safe_offset(0, None) == want


def test_commit_metadata_lists_scored_windows_the_commit_cuts_through() -> None:
    t = OffsetTracker()
    t.assign([0])
    for off in range(10):
        t.consumed(0, off)
    # Session a: offsets 0, 2, 5 (scored). Session b: 1, 3 (scored). Session c: 4, 6 (open).
    t.hold(0, 0)
    t.finished(0, 0, 5, "a")
    t.hold(0, 1)
    t.finished(0, 1, 3, "b")
    (off, meta) = t.to_commit(lambda p: 4)[0]
    assert off == 4
    skip = decode_metadata(off, meta)
    assert skip == {session_key("a"): 5}  # b ends below the commit: not re-read at all
    t.committed({0: (off, meta)})

    # A new owner takes up the partition at that commit and skips a's tail only.
    u = OffsetTracker()
    u.assign([0])
    assert u.restore(0, off, meta) == 1
    assert u.already_scored(0, "a", 5)
    assert not u.already_scored(0, "a", 6)
    assert not u.already_scored(0, "c", 4)
    for o in range(4, 8):
        u.consumed(0, o)
    # The skip entry is carried into the next commit while it still straddles it...
    (off2, meta2) = u.to_commit(lambda p: 5)[0]
    assert decode_metadata(off2, meta2) == {session_key("a"): 5}
    u.committed({0: (off2, meta2)})
    # ...and dropped once the commit passes it.
    (off3, meta3) = u.to_commit(none)[0]
    assert (off3, meta3) == (8, "")
    u.committed({0: (off3, meta3)})
    assert not u.already_scored(0, "a", 5)


def test_commit_metadata_respects_its_size_limit() -> None:
    wins = [DoneWindow(0, 100 + i, session_key(f"s{i}")) for i in range(1000)]
    meta = encode_metadata(50, wins, max_bytes=4096)
    assert len(meta) <= 4096
    kept = decode_metadata(50, meta)
    assert 200 < len(kept) < 1000
    assert encode_metadata(50, wins, max_bytes=0) == ""
    assert decode_metadata(50, "something else") == {}
    assert decode_metadata(50, "logad1:!!!") == {}


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31))
def test_restart_at_any_commit_re_forms_only_whole_windows(seed: int) -> None:
    """Model check of the at-least-once contract with interleaved sessions: crash after any
    commit, restart from it, skipping what its metadata says; every event lands in a window
    that either was never acknowledged or is re-formed whole (no fragments)."""
    rng = random.Random(seed)
    n_sessions = rng.randint(1, 12)
    stream = [rng.randrange(n_sessions) for _ in range(rng.randint(1, 60))]
    windows: dict[int, list[int]] = {}
    for off, sid in enumerate(stream):
        windows.setdefault(sid, []).append(off)
    t = OffsetTracker()
    t.assign([0])
    acked: set[int] = set()
    commit: tuple[int, str] | None = None
    opened = set(windows)
    for off, _sid in enumerate(stream):
        t.consumed(0, off)
        for sid in list(opened):  # close some sessions whose last event has passed
            if windows[sid][-1] <= off and rng.random() < 0.5:
                opened.discard(sid)
                t.hold(0, windows[sid][0])
                if rng.random() < 0.7:
                    t.finished(0, windows[sid][0], windows[sid][-1], str(sid))
                    acked.add(sid)

        def open_min(_p: int, off: int = off) -> int | None:
            firsts = [windows[s][0] for s in opened if windows[s][0] <= off]
            return min(firsts) if firsts else None

        c = t.to_commit(open_min)
        if c:
            t.committed(c)
            commit = c[0]
    if commit is None:
        return
    start, meta = commit
    u = OffsetTracker()
    u.assign([0])
    u.restore(0, start, meta)
    re_read: dict[int, list[int]] = {}
    for off in range(start, len(stream)):
        sid = stream[off]
        if not u.already_scored(0, str(sid), off):
            re_read.setdefault(sid, []).append(off)
    for sid, offs in windows.items():
        below = [o for o in offs if o < start]
        if not below:
            assert re_read[sid] == offs  # wholly re-read: re-formed identically
            continue
        # A session cut by the commit was acknowledged, and none of it is re-read.
        assert sid in acked
        assert sid not in re_read
