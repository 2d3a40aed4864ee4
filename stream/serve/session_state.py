"""The sessionizer's state: one record per open session and one per partition.

Plain slotted classes rather than dataclasses: the sessionizer touches them once per event,
and slots keep that cheap. The heaps hold entries that are checked when popped (lazy
invalidation) and compacted when stale entries pile up.
"""

from __future__ import annotations

import heapq
from operator import itemgetter

from schemas.windows import Window
from trainer.time_gaps import gaps_from_times

NEVER = 1 << 62
_EVENT_ID = itemgetter(2)
_TS = itemgetter(0)
_COMPACT_SLACK = 1024  # a heap may hold this many stale entries beyond 2x its live ones


class OpenSession:
    """One open session and the buffer of its current window.

    The buffer is three parallel lists (event ids, event times, offsets) in arrival order,
    rather than a tuple per event: no allocation per event, so the cyclic GC runs far less.
    `in_order` says whether arrival order is already (ts, offset) order, as it nearly
    always is; only a window that is not gets sorted when it is emitted.
    """

    __slots__ = (
        "alive",
        "buf",
        "buf_gen",
        "buf_off",
        "buf_ts",
        "heap_deadline",
        "heap_seq",
        "in_order",
        "index",
        "label",
        "last_off",
        "last_ts",
        "late",
        "max_off",
        "max_ts",
        "min_off",
        "min_ts",
        "partition",
        "session_id",
    )

    def __init__(self, partition: int, session_id: str, index: int, late: bool) -> None:
        self.partition = partition
        self.session_id = session_id
        self.index = index
        self.late = late
        self.alive = True
        self.buf: list[str] = []  # event ids, arrival order
        self.buf_ts: list[int] = []
        self.buf_off: list[int] = []
        self.in_order = True
        self.last_off = -NEVER  # offset of the last event appended
        self.buf_gen = 0
        self.min_ts = NEVER
        self.max_ts = -NEVER
        self.min_off = NEVER
        self.max_off = -NEVER
        self.label: int | None = None
        self.last_ts = -NEVER  # across windows: the gap is about the session, not the window
        self.heap_seq = -1
        self.heap_deadline = NEVER

    def take_window(self, ended: bool) -> Window:
        """The session's current window; the buffer starts empty for the next index. `ended`:
        the session is over (not just this window)."""
        buf = self.buf
        if self.in_order:
            events = tuple(buf)
            ts = self.buf_ts
        else:  # (ts, offset, event id) order, as sorting the triples would give
            triples = sorted(zip(self.buf_ts, self.buf_off, buf, strict=True))
            events = tuple(map(_EVENT_ID, triples))
            ts = list(map(_TS, triples))
        # Each event's time since the one before it (in that order): a time-aware model's
        # input. The window's first has none here, even when the session had events before.
        gaps = gaps_from_times(ts)
        w = Window.build(
            self.session_id,
            self.index,
            events,
            self.min_ts,
            self.max_ts,
            self.partition,
            self.min_off,
            self.max_off,
            self.late,
            self.label,
            ended,
            gaps,
        )
        # Emptied in place, not replaced: fewer allocations, fewer GC runs.
        buf.clear()
        self.buf_ts.clear()
        self.buf_off.clear()
        self.in_order = True
        self.index += 1
        self.min_ts = NEVER
        self.max_ts = -NEVER
        self.min_off = NEVER
        self.max_off = -NEVER
        self.last_off = -NEVER
        self.label = None
        return w


class PartitionState:
    __slots__ = ("expiry", "last_wall_ms", "offsets", "sessions", "watermark")

    def __init__(self, now_ms: int) -> None:
        self.sessions: dict[str, OpenSession] = {}
        self.watermark = -NEVER
        self.last_wall_ms = now_ms
        # (deadline, seq, session): valid while seq == session.heap_seq and session.alive.
        self.expiry: list[tuple[int, int, OpenSession]] = []
        # (min offset, seq, session, buf_gen): valid while that buffer is still open.
        self.offsets: list[tuple[int, int, OpenSession, int]] = []

    def push_expiry(self, s: OpenSession, deadline: int, seq: int) -> None:
        s.heap_seq = seq
        s.heap_deadline = deadline
        heap = self.expiry
        heapq.heappush(heap, (deadline, seq, s))
        if len(heap) > 2 * len(self.sessions) + _COMPACT_SLACK:
            self.expiry = [e for e in heap if e[2].alive and e[1] == e[2].heap_seq]
            heapq.heapify(self.expiry)

    def push_offset(self, s: OpenSession, seq: int) -> None:
        heap = self.offsets
        heapq.heappush(heap, (s.min_off, seq, s, s.buf_gen))
        if len(heap) > 2 * len(self.sessions) + _COMPACT_SLACK:
            self.offsets = [
                e
                for e in heap
                if e[2].alive and e[2].buf and e[3] == e[2].buf_gen and e[0] == e[2].min_off
            ]
            heapq.heapify(self.offsets)
