"""Sessionizer unit tests, with explicit event and wall-clock times."""

from __future__ import annotations

import tracemalloc
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import LogEvent
from schemas.windows import Window, make_window_id
from stream.serve.sessionizer import Sessionizer, SessionizerSettings

T0 = 1_700_000_000_000


def ev(ts: int, sid: str, eid: str = "E1") -> LogEvent:
    return LogEvent(ts=T0 + ts, service="svc", session_id=sid, event_id=eid)


def make(**kw: int) -> Sessionizer:
    return Sessionizer(SessionizerSettings(**kw))


def test_gap_closes_a_session_when_the_watermark_passes_it() -> None:
    sz = make(gap_ms=30_000)
    assert sz.add(ev(0, "a", "A1"), 0, 10, now_ms=0) == []
    assert sz.add(ev(1_000, "a", "A2"), 0, 11, now_ms=0) == []
    # Exactly at the gap the session is still open ...
    assert sz.add(ev(31_000, "b"), 0, 12, now_ms=0) == []
    # ... one millisecond past it, it closes.
    [w] = sz.add(ev(31_001, "b"), 0, 13, now_ms=0)
    assert (w.session_id, w.index, w.events) == ("a", 0, ("A1", "A2"))
    assert (w.first_ts, w.last_ts) == (T0, T0 + 1_000)
    assert (w.partition, w.first_offset, w.last_offset, w.late) == (0, 10, 11, False)
    assert sz.open_sessions == 1 and sz.open_events == 2


def test_the_watermark_is_per_partition() -> None:
    sz = make(gap_ms=30_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    assert sz.add(ev(100_000, "b"), 1, 0, now_ms=0) == []  # another partition's time
    assert sz.advance(now_ms=0) == []
    [w] = sz.add(ev(100_000, "c"), 0, 1, now_ms=0)
    assert w.session_id == "a"


def test_min_watermark_is_the_lowest_partition_and_unknown_until_each_has_events() -> None:
    sz = make(gap_ms=30_000, allowed_lateness_ms=500)
    assert sz.min_watermark([]) is None
    sz.add(ev(10_000, "a"), 0, 0, now_ms=0)
    assert sz.min_watermark([0]) == T0 + 9_500
    assert sz.min_watermark([0, 1]) is None  # partition 1 has seen nothing yet
    sz.add(ev(4_000, "b"), 1, 0, now_ms=0)
    assert sz.min_watermark([0, 1]) == T0 + 3_500
    sz.add(ev(2_000, "b"), 1, 1, now_ms=0)  # out of order: the watermark never goes back
    assert sz.min_watermark([1]) == T0 + 3_500
    sz.flush_partitions([1])
    assert sz.min_watermark([0, 1]) is None and sz.min_watermark([0]) == T0 + 9_500


def test_a_quiet_partition_does_not_hold_the_watermark_back() -> None:
    sz = make(gap_ms=30_000, idle_timeout_ms=1_000)
    sz.assign([0, 1, 2], now_ms=0)
    sz.add(ev(10_000, "a"), 0, 0, now_ms=0)
    sz.add(ev(4_000, "b"), 1, 0, now_ms=0)
    # Partition 2 has no event yet: unknown until it has been quiet for the idle timeout.
    assert sz.min_watermark([0, 1, 2], now_ms=999) is None
    assert sz.min_watermark([0, 1, 2], now_ms=1_000) == T0 + 4_000
    sz.add(ev(20_000, "a"), 0, 1, now_ms=1_500)
    # Partition 1 went quiet at 1_000 (its sessions flushed by advance): left out.
    assert sz.min_watermark([0, 1, 2], now_ms=2_000) == T0 + 20_000
    assert sz.min_watermark([0, 1, 2]) is None  # without a clock, as before
    # All quiet: the lowest watermark any of them has seen.
    assert sz.min_watermark([0, 1, 2], now_ms=10_000) == T0 + 4_000


def test_an_event_after_its_own_gap_starts_the_next_window_not_a_late_one() -> None:
    sz = make(gap_ms=30_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    [w0] = sz.add(ev(40_000, "a"), 0, 1, now_ms=0)
    assert (w0.index, w0.last_offset) == (0, 0)
    [w1] = sz.flush_all()
    assert (w1.session_id, w1.index, w1.first_offset, w1.late) == ("a", 1, 1, False)


def test_510_events_split_into_two_windows_with_consecutive_indices() -> None:
    sz = make()
    emitted: list[Window] = []
    for i in range(511):
        emitted += sz.add(ev(i, "long", f"E{i}"), 3, 1_000 + i, now_ms=0)
    [w0] = emitted  # emitted the moment it reached 510, without waiting for the gap
    assert (w0.index, len(w0.events), w0.first_offset, w0.last_offset) == (0, 510, 1_000, 1_509)
    assert (w0.first_ts, w0.last_ts) == (T0, T0 + 509)
    assert w0.events[0] == "E0" and w0.events[-1] == "E509"
    [w1] = sz.flush_all()
    assert (w1.index, w1.events, w1.first_offset, w1.last_offset) == (1, ("E510",), 1_510, 1_510)
    assert not w1.late


def test_duration_limit_splits_a_window_on_add() -> None:
    sz = make(gap_ms=30_000, max_duration_ms=10_000)
    for i, t in enumerate((0, 5_000, 9_000, 10_000)):
        assert sz.add(ev(t, "a"), 0, i, now_ms=0) == []
    [w0] = sz.add(ev(10_001, "a"), 0, 4, now_ms=0)  # would span 10_001 ms
    assert (w0.index, w0.first_offset, w0.last_offset) == (0, 0, 3)
    assert w0.last_ts - w0.first_ts == 10_000
    [w1] = sz.flush_all()
    assert (w1.index, w1.first_offset, w1.late) == (1, 4, False)


def test_duration_limit_closes_a_window_as_the_watermark_passes_it() -> None:
    sz = make(gap_ms=30_000, max_duration_ms=10_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    sz.add(ev(9_000, "a"), 0, 1, now_ms=0)
    # The session is still within its gap, but its window is now older than the limit.
    [w0] = sz.add(ev(10_001, "b"), 0, 2, now_ms=0)
    assert (w0.session_id, w0.index, w0.last_offset) == ("a", 0, 1)
    sz.add(ev(12_000, "a"), 0, 3, now_ms=0)  # the session goes on in window 1
    ws = {w.session_id: w for w in sz.flush_all()}
    assert (ws["a"].index, ws["a"].first_offset, ws["a"].late) == (1, 3, False)


def test_late_event_for_a_closed_session_opens_a_late_window() -> None:
    sz = make(gap_ms=30_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    sz.add(ev(5_000, "a"), 0, 1, now_ms=0)
    [w0] = sz.add(ev(60_000, "b"), 0, 2, now_ms=0)
    assert (w0.session_id, w0.late) == ("a", False)
    # Event time 6 s: it belonged to "a", but "a" was already emitted.
    sz.add(ev(6_000, "a", "LATE"), 0, 3, now_ms=0)
    # A late window is held until the watermark moves (so late events arrive together) ...
    sz.add(ev(6_500, "a", "LATE2"), 0, 4, now_ms=0)
    [w1] = sz.add(ev(60_001, "b"), 0, 5, now_ms=0)
    assert (w1.session_id, w1.index, w1.events, w1.late) == ("a", 1, ("LATE", "LATE2"), True)
    assert (w1.first_offset, w1.last_offset) == (3, 4)


def test_allowed_lateness_lets_out_of_order_events_join() -> None:
    strict = make(gap_ms=1_000)
    lenient = make(gap_ms=1_000, allowed_lateness_ms=5_000)
    out: dict[int, list[Window]] = {}
    for lateness, sz in ((0, strict), (5_000, lenient)):
        out[lateness] = sz.add(ev(0, "a"), 0, 0, now_ms=0)
        out[lateness] += sz.add(ev(4_000, "b"), 0, 1, now_ms=0)  # a skewed producer runs ahead
        out[lateness] += sz.add(ev(500, "a"), 0, 2, now_ms=0)
        out[lateness] += sz.flush_all()
    assert sorted((w.session_id, len(w.events), w.late) for w in out[0]) == [
        ("a", 1, False),
        ("a", 1, True),
        ("b", 1, False),
    ]
    assert sorted((w.session_id, len(w.events), w.late) for w in out[5_000]) == [
        ("a", 2, False),
        ("b", 1, False),
    ]


def test_open_session_bound_flushes_the_least_recently_active() -> None:
    sz = make(max_open_sessions=3)
    sz.add(ev(0, "s1"), 0, 0, now_ms=0)
    sz.add(ev(1, "s2"), 0, 1, now_ms=0)
    sz.add(ev(2, "s3"), 0, 2, now_ms=0)
    sz.add(ev(3, "s1"), 0, 3, now_ms=0)  # s1 active again: s2 is now the oldest
    [w] = sz.add(ev(4, "s4"), 0, 4, now_ms=0)
    assert (w.session_id, w.first_offset) == ("s2", 1)  # emitted, not dropped
    assert sz.open_sessions == 3
    assert {w.session_id for w in sz.flush_all()} == {"s1", "s3", "s4"}


def test_memory_stays_flat_under_a_flood_of_unique_sessions() -> None:
    sz = make(max_open_sessions=200, max_closed_sessions=300)
    emitted = 0

    def flood(start: int, n: int) -> None:
        nonlocal emitted
        for i in range(start, start + n):
            emitted += len(sz.add(ev(i // 10, f"u{i}"), i % 2, i, now_ms=0))
            assert sz.open_sessions <= 200

    flood(0, 5_000)  # warm up: every structure reaches its bound
    tracemalloc.start()
    flood(5_000, 2_000)
    before = tracemalloc.get_traced_memory()[0]
    flood(7_000, 10_000)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # Remembering every closed session grows ~3 MB here (measured); bounded state stays
    # within a few tens of kB as the heaps breathe between compactions.
    assert after - before < 1_000_000, f"grew {after - before} bytes over 10k new sessions"
    assert emitted == 17_000 - 200  # every flushed session was emitted
    assert sz.open_sessions == 200 and sz.open_events == 200


def test_idle_timeout_flushes_quiet_partitions_only() -> None:
    sz = make(idle_timeout_ms=60_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=1_000)
    sz.add(ev(0, "b"), 1, 0, now_ms=50_000)
    assert sz.advance(now_ms=60_999) == []
    [w] = sz.advance(now_ms=61_000)
    assert w.partition == 0 and w.session_id == "a"
    [w] = sz.advance(now_ms=110_000)
    assert w.partition == 1
    assert sz.open_sessions == 0 and sz.advance(now_ms=500_000) == []


def test_advance_emits_a_held_late_window_without_new_events() -> None:
    sz = make(gap_ms=1_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    [w0] = sz.add(ev(2_000, "b"), 0, 1, now_ms=0)
    assert w0.session_id == "a"
    sz.add(ev(100, "a", "LATE"), 0, 2, now_ms=0)
    [w1] = sz.advance(now_ms=1)
    assert (w1.session_id, w1.events, w1.late) == ("a", ("LATE",), True)
    assert sz.advance(now_ms=2) == [] and sz.open_sessions == 1


def test_flush_partitions_only_touches_those_partitions() -> None:
    sz = make()
    for p in range(3):
        sz.add(ev(0, f"s{p}"), p, 7, now_ms=0)
    ws = sz.flush_partitions([0, 2, 9])
    assert sorted(w.partition for w in ws) == [0, 2]
    assert sz.open_sessions == 1
    assert sz.min_open_offset(0) is None and sz.min_open_offset(1) == 7
    # A re-assigned partition starts clean: a re-read event is not treated as late.
    [w] = sz.add(ev(0, "s0"), 0, 7, now_ms=0) + sz.flush_partitions([0])
    assert (w.index, w.late, w.window_id) == (0, False, ws[0].window_id)


def test_min_open_offset_tracks_the_lowest_held_offset() -> None:
    sz = make(gap_ms=1_000, max_events=2)
    assert sz.min_open_offset(0) is None
    sz.add(ev(0, "a"), 0, 5, now_ms=0)
    sz.add(ev(10, "b"), 0, 6, now_ms=0)
    sz.add(ev(20, "b"), 0, 8, now_ms=0)  # b reaches max_events: emitted
    assert sz.min_open_offset(0) == 5
    sz.add(ev(30, "c"), 0, 9, now_ms=0)
    sz.add(ev(1_005, "c"), 0, 10, now_ms=0)  # a's gap passes
    assert sz.min_open_offset(0) is None  # c's window (9, 10) was full and emitted
    sz.add(ev(1_010, "d"), 0, 11, now_ms=0)
    assert sz.min_open_offset(0) == 11
    assert sz.min_open_offset(1) is None


def test_offsets_that_go_backwards_still_give_the_true_minimum() -> None:
    sz = make()
    sz.add(ev(0, "a"), 0, 20, now_ms=0)
    sz.add(ev(1, "b"), 0, 18, now_ms=0)
    sz.add(ev(2, "a"), 0, 15, now_ms=0)  # e.g. a producer retry re-ordered the log
    assert sz.min_open_offset(0) == 15
    ws = {w.session_id: w for w in sz.flush_all()}
    assert (ws["a"].first_offset, ws["a"].last_offset) == (15, 20)


def test_events_are_ordered_by_event_time_then_offset() -> None:
    sz = make()
    sz.add(ev(300, "a", "C"), 0, 1, now_ms=0)
    sz.add(ev(100, "a", "A"), 0, 2, now_ms=0)
    sz.add(ev(200, "a", "B2"), 0, 4, now_ms=0)
    sz.add(ev(200, "a", "B1"), 0, 3, now_ms=0)
    [w] = sz.flush_all()
    assert w.events == ("A", "B1", "B2", "C")
    assert (w.first_ts, w.last_ts, w.first_offset, w.last_offset) == (T0 + 100, T0 + 300, 1, 4)


def test_window_id_is_deterministic() -> None:
    runs = []
    for _ in range(2):
        sz = make(max_events=3)
        out: list[Window] = []
        for i in range(7):
            out += sz.add(ev(i, "s"), 4, 100 + i, now_ms=i)
        runs.append(out + sz.flush_all())
    assert [w.window_id for w in runs[0]] == [w.window_id for w in runs[1]]
    assert len({w.window_id for w in runs[0]}) == 3
    w = runs[0][1]
    assert w.window_id == make_window_id("s", 4, 103, 105)


def test_label_is_the_max_over_the_window_events() -> None:
    sz = make(max_events=3)
    sz.add(ev(0, "a"), 0, 0, now_ms=0, label=0)
    sz.add(ev(1, "a"), 0, 1, now_ms=0, label=1)
    [w0] = sz.add(ev(2, "a"), 0, 2, now_ms=0, label=0)
    sz.add(ev(3, "a"), 0, 3, now_ms=0)
    sz.add(ev(0, "b"), 0, 4, now_ms=0, label=0)
    ws = {w.session_id: w for w in sz.flush_all()}
    assert (w0.label, ws["a"].label, ws["b"].label) == (1, None, 0)


@pytest.mark.parametrize(
    "kw",
    [
        {"gap_ms": 0},
        {"max_events": 511},
        {"max_events": 0},
        {"max_open_sessions": 0},
        {"allowed_lateness_ms": -1},
        {"idle_timeout_ms": -5},
    ],
)
def test_bad_settings_are_refused(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        SessionizerSettings(**kw)


# One step: an event (partition, session, ts delta) or a periodic tick.
_step = st.one_of(
    st.tuples(st.integers(0, 2), st.integers(0, 7), st.integers(-400, 1_500)),
    st.just(None),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(_step, max_size=120),
    gap=st.integers(100, 2_000),
    max_events=st.integers(1, 5),
    max_dur=st.integers(50, 5_000),
    max_open=st.integers(1, 6),
    lateness=st.integers(0, 500),
)
def test_every_event_lands_in_exactly_one_window(
    steps: list[tuple[int, int, int] | None],
    gap: int,
    max_events: int,
    max_dur: int,
    max_open: int,
    lateness: int,
) -> None:
    sz = make(
        gap_ms=gap,
        max_events=max_events,
        max_duration_ms=max_dur,
        max_open_sessions=max_open,
        allowed_lateness_ms=lateness,
        idle_timeout_ms=3_000,
        max_closed_sessions=4,
    )
    ts = 10_000
    now = 0
    offsets = [0, 0, 0]
    added: dict[str, tuple[int, int, int, str]] = {}  # event id -> (ts, partition, offset, sid)
    out: list[Window] = []
    for step in steps:
        now += 700
        if step is None:
            out += sz.advance(now)
            continue
        p, s, dt = step
        ts = max(0, ts + dt)
        eid = f"e{len(added)}"
        sid = f"p{p}s{s}"
        added[eid] = (ts, p, offsets[p], sid)
        out += sz.add(ev(ts, sid, eid), p, offsets[p], now)
        offsets[p] += 1
        assert sz.open_sessions <= max_open
        out_ids = {e for w in out for e in w.events}
        for q in range(3):
            pending = [a[2] for e, a in added.items() if a[1] == q and e not in out_ids]
            assert sz.min_open_offset(q) == (min(pending) if pending else None)
    out += sz.flush_all()
    assert sz.open_sessions == 0 and sz.open_events == 0

    seen = Counter(e for w in out for e in w.events)
    assert seen == Counter(added.keys())  # no loss, no duplication
    for w in out:
        assert 1 <= len(w.events) <= max_events
        info = [added[e] for e in w.events]
        assert all(i[3] == w.session_id and i[1] == w.partition for i in info)
        assert [(i[0], i[2]) for i in info] == sorted((i[0], i[2]) for i in info)
        assert w.first_offset == min(i[2] for i in info)
        assert w.last_offset == max(i[2] for i in info)
        assert (w.first_ts, w.last_ts) == (T0 + info[0][0], T0 + info[-1][0])
        assert w.last_ts - w.first_ts <= max_dur
    assert len({w.window_id for w in out}) == len(out)


def test_windows_cut_by_size_or_duration_are_not_marked_ended() -> None:
    sz = make(gap_ms=30_000, max_events=3, max_duration_ms=60_000)
    out: list[Window] = []
    for i in range(3):
        out += sz.add(ev(i, "size"), 0, i, now_ms=0)
    for i, ts in enumerate((0, 20_000, 40_000, 60_001)):  # never a 30 s silence
        out += sz.add(ev(ts, "dur"), 0, 3 + i, now_ms=0)
    assert [(w.session_id, len(w.events), w.ended) for w in out] == [
        ("size", 3, False),
        ("dur", 3, False),
    ]


def test_the_gap_ends_a_session_and_the_open_bound_does_not() -> None:
    sz = make(gap_ms=30_000, max_open_sessions=1)
    [evicted] = sz.add(ev(1, "b"), 0, 1, now_ms=0) + sz.add(ev(0, "a"), 0, 0, now_ms=0)
    assert (evicted.session_id, evicted.ended) == ("b", False)
    [gone] = sz.add(ev(40_000, "c"), 0, 2, now_ms=0)
    assert (gone.session_id, gone.ended) == ("a", True)


def test_a_shutdown_or_revoke_cuts_and_the_end_of_a_file_ends() -> None:
    sz = make(gap_ms=30_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    sz.add(ev(0, "b"), 1, 0, now_ms=0)
    assert [w.ended for w in sz.flush_partitions([1])] == [False]
    assert [w.ended for w in sz.flush_all()] == [False]
    sz.add(ev(0, "c"), 0, 1, now_ms=0)
    assert [w.ended for w in sz.flush_all(ended=True)] == [True]


def test_an_idle_flush_ends_the_quiet_partitions_sessions() -> None:
    sz = make(gap_ms=30_000, idle_timeout_ms=1_000)
    sz.add(ev(0, "a"), 0, 0, now_ms=0)
    [w] = sz.advance(now_ms=1_000)
    assert w.ended


def test_ended_survives_the_window_round_trip() -> None:
    w = Window.build("s", 0, ("A",), T0, T0, 0, 1, 1, ended=False)
    assert Window.decode(w.encode()) == w
    assert Window.decode(Window.build("s", 0, ("A",), T0, T0, 0, 1, 1).encode()).ended
