"""Windows list their events in (event time, offset) order, however the events arrived: the
sessionizer only sorts windows that arrived out of order, so both paths are checked here."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import LogEvent
from stream.serve.sessionizer import Sessionizer, SessionizerSettings

T0 = 1_700_000_000_000

# (ts delta, offset delta) per event of one session, in arrival order.
steps = st.lists(
    st.tuples(st.integers(-50, 100), st.sampled_from([1, 1, 1, 2, 0, -1])), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(steps, st.sampled_from([3, 7, 510]))
def test_window_events_follow_event_time_then_offset(moves: list[tuple[int, int]], n: int) -> None:
    sz = Sessionizer(SessionizerSettings(gap_ms=10**9, max_events=n))
    ts, off, arrived = T0, 10, []
    windows = []
    for i, (dt, doff) in enumerate(moves):
        ts, off = ts + dt, max(0, off + doff)
        eid = f"E{i}"
        arrived.append((ts, off, eid))
        windows += sz.add(LogEvent(ts, "svc", "s", eid), 0, off, now_ms=0)
    windows += sz.flush_all()
    # Split in arrival order every n events; each window sorted by (ts, offset, event id).
    expected = [sorted(arrived[i : i + n]) for i in range(0, len(arrived), n)]
    assert [w.events for w in windows] == [tuple(e[2] for e in chunk) for chunk in expected]
    for w, chunk in zip(windows, expected, strict=True):
        assert (w.first_ts, w.last_ts) == (chunk[0][0], chunk[-1][0])
        assert (w.first_offset, w.last_offset) == (
            min(c[1] for c in chunk),
            max(c[1] for c in chunk),
        )


def test_in_order_and_shuffled_arrival_give_the_same_window() -> None:
    events = [(T0 + t, o, f"E{o}") for t, o in [(0, 1), (5, 2), (5, 3), (9, 4)]]
    out = []
    for order in (events, [events[2], events[0], events[3], events[1]]):
        sz = Sessionizer(SessionizerSettings())
        for ts, off, eid in order:
            sz.add(LogEvent(ts, "svc", "s", eid), 0, off, now_ms=0)
        [w] = sz.flush_all()
        out.append((w.events, w.first_ts, w.last_ts, w.first_offset, w.last_offset))
    assert out[0] == out[1] == (("E1", "E2", "E3", "E4"), T0, T0 + 9, 1, 4)
