"""Group a partitioned event stream into session windows. Pure: time is passed in, no Kafka.

Events are grouped by (partition, session_id): the message key is the session id, so a
session lives in one partition. A window closes when

- its session is inactive for `gap_ms` of event time, judged against the partition's
  watermark (the highest event time seen there, minus `allowed_lateness_ms`);
- it reaches `max_events` (the session goes on in a new window with the next index);
- it spans more than `max_duration_ms` of event time (likewise split, not ended);
- its partition has been quiet for `idle_timeout_ms` of wall-clock time (`advance`);
- the number of open sessions passes `max_open_sessions`: the least recently active one
  is flushed (emitted, never dropped);
- its partition is dropped (`flush_partitions`) or the process stops (`flush_all`).

A window closed by the gap or the idle flush is its session's last (`Window.ended`); the
others are cut while the session may go on, and the scorer gives them no end marker.

An event for a session that was closed, whose event time is within `gap_ms` of that
session's last event (so it would have joined had it arrived in time), opens a new window
marked `late`. An event further on than that simply starts the session's next window.
Closed sessions are remembered in a bounded LRU (`max_closed_sessions`).

Cost per event is amortized O(log n): expiry uses a per-partition heap of deadlines with
lazy invalidation, never a scan of the open sessions.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable

from schemas.events import LogEvent
from schemas.windows import Window
from stream.serve.session_state import NEVER, OpenSession, PartitionState

# Declared with the other settings sections (stream/serve/settings.py); importable here too.
from stream.serve.settings import SessionizerSettings as SessionizerSettings


class Sessionizer:
    def __init__(self, settings: SessionizerSettings) -> None:
        self.settings = settings
        self._gap = settings.gap_ms
        self._max_events = settings.max_events
        self._max_dur = settings.max_duration_ms
        self._lateness = settings.allowed_lateness_ms
        self._max_open = settings.max_open_sessions
        self._parts: dict[int, PartitionState] = {}
        self._lru: OrderedDict[OpenSession, None] = OrderedDict()  # least recently active first
        self._touch = self._lru.move_to_end
        self._closed: OrderedDict[tuple[int, str], tuple[int, int]] = OrderedDict()
        self._seq = 0
        self._open_events = 0

    # -- public API ---------------------------------------------------------------------

    @property
    def open_sessions(self) -> int:
        return len(self._lru)

    @property
    def open_events(self) -> int:
        return self._open_events

    def add(
        self,
        event: LogEvent,
        partition: int,
        offset: int,
        now_ms: int,
        label: int | None = None,
    ) -> list[Window]:
        """Add one event; return the windows this closed (in any session of the partition)."""
        out: list[Window] = []
        self.add_into(out, event, partition, offset, now_ms, label)
        return out

    def add_into(
        self,
        out: list[Window],
        event: LogEvent,
        partition: int,
        offset: int,
        now_ms: int,
        label: int | None = None,
    ) -> None:
        """`add`, appending the windows closed to `out`: no list per event (hot loops). A raw
        event needs its template id first (`trainer.mining.matcher.event_id_for`)."""
        if event.event_id is None:
            raise ValueError(f"raw event of session {event.session_id}: map it to an id first")
        self.add_fields(
            out, event.ts, event.session_id, event.event_id, partition, offset, now_ms, label
        )

    def add_fields(
        self,
        out: list[Window],
        ts: int,
        sid: str,
        event_id: str,
        partition: int,
        offset: int,
        now_ms: int,
        label: int | None = None,
    ) -> None:
        """`add_into` for an event given by the fields it uses (event time, session id,
        event id): no LogEvent per event (`logad serve` decodes straight to these)."""
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = PartitionState(now_ms)
        part.last_wall_ms = now_ms
        wm = ts - self._lateness
        if wm > part.watermark:
            part.watermark = wm
            # Expire before inserting, so an event that comes after its own session's gap
            # finds that session closed and starts the next window.
            if part.expiry and part.expiry[0][0] < wm:
                self._expire(part, out)

        s = part.sessions.get(sid)
        if s is None:
            s = self._open(part, partition, sid, ts)
            if len(self._lru) > self._max_open:
                # The least recently active; it may not be over, so not marked ended.
                self._close(next(iter(self._lru)), out, ended=False)
        else:
            self._touch(s)
        buf = s.buf
        if buf:
            # Would this event stretch the window past the duration limit?
            if ts >= s.max_ts:
                if ts - s.min_ts > self._max_dur:
                    out.append(self._emit(s, ended=False))
                    buf = s.buf
            elif ts < s.min_ts and s.max_ts - ts > self._max_dur:
                out.append(self._emit(s, ended=False))
                buf = s.buf
        self._open_events += 1
        if ts > s.last_ts:
            s.last_ts = ts  # the gap deadline only moves later: the heap entry stays valid
        if label is not None and (s.label is None or label > s.label):
            s.label = label

        if buf:
            buf.append(event_id)
            s.buf_ts.append(ts)
            s.buf_off.append(offset)
            if ts > s.max_ts:
                s.max_ts = ts
            elif ts < s.max_ts or offset < s.last_off:
                s.in_order = False  # an event before the previous one in (ts, offset)
                if ts < s.min_ts:
                    s.min_ts = ts
                    self._lower_deadline(part, s)
            elif offset == s.last_off:
                s.in_order = False  # a redelivered offset: let the sort order the tie
            s.last_off = offset
            if offset > s.max_off:
                s.max_off = offset
            elif offset < s.min_off:  # offsets normally only grow; stay correct if not
                s.min_off = offset
                self._push_offset(part, s)
            if len(buf) >= self._max_events:
                out.append(self._emit(s, ended=False))
        else:
            buf.append(event_id)
            s.buf_ts.append(ts)
            s.buf_off.append(offset)
            s.min_ts = s.max_ts = ts
            s.buf_gen += 1
            s.min_off = s.max_off = s.last_off = offset
            self._push_offset(part, s)
            self._lower_deadline(part, s)
            if self._max_events == 1:
                out.append(self._emit(s, ended=False))

    def advance(self, now_ms: int) -> list[Window]:
        """Periodic tick: close sessions whose gap passed their partition's watermark, and
        flush partitions that have been idle (wall clock) for `idle_timeout_ms`."""
        out: list[Window] = []
        idle = self.settings.idle_timeout_ms
        for part in self._parts.values():
            if part.sessions and now_ms - part.last_wall_ms >= idle:
                for s in list(part.sessions.values()):
                    self._close(s, out)
                part.expiry = []  # every entry is stale now
                part.offsets = []
            elif part.expiry and part.expiry[0][0] < part.watermark:
                self._expire(part, out)
        return out

    def flush_all(self, ended: bool = False) -> list[Window]:
        """Shutdown: emit every open window and forget all state. `ended`: whether the
        source is over, so the sessions are too (the end of a replayed file), or they may
        go on after a restart (serve)."""
        out = self.flush_partitions(list(self._parts), ended)
        self._closed.clear()
        return out

    def flush_partitions(self, partitions: Iterable[int], ended: bool = False) -> list[Window]:
        """Revoke: emit the open windows of these partitions and forget their state, so a
        later re-assignment (re-reading from the committed offset) starts clean."""
        out: list[Window] = []
        gone = set()
        for p in partitions:
            part = self._parts.pop(p, None)
            gone.add(p)
            if part is None:
                continue
            for s in part.sessions.values():
                if s.buf:
                    out.append(self._emit(s, ended))
                s.alive = False
                del self._lru[s]
        if gone and self._closed:
            for key in [k for k in self._closed if k[0] in gone]:
                del self._closed[key]
        return out

    def assign(self, partitions: Iterable[int], now_ms: int) -> None:
        """Newly assigned partitions: start their quiet clock now, so one that never gets an
        event counts as quiet after `idle_timeout_ms` (see `min_watermark`)."""
        for p in partitions:
            if p not in self._parts:
                self._parts[p] = PartitionState(now_ms)

    def min_watermark(self, partitions: Iterable[int], now_ms: int | None = None) -> int | None:
        """The lowest watermark over `partitions`; None when there are none, or when one
        has seen no event yet (its event time is unknown, so nothing can be said of it).

        With `now_ms`, a partition quiet (wall clock) for `idle_timeout_ms` is left out: its
        windows were flushed, and waiting on it would stall event time for every partition
        (one that never gets an event would block forever). When all are quiet, the lowest
        watermark any of them has seen."""
        lowest: int | None = None
        quiet_lowest: int | None = None
        idle = self.settings.idle_timeout_ms
        for p in partitions:
            part = self._parts.get(p)
            if part is not None and now_ms is not None and now_ms - part.last_wall_ms >= idle:
                if part.watermark != -NEVER and (
                    quiet_lowest is None or part.watermark < quiet_lowest
                ):
                    quiet_lowest = part.watermark
                continue
            if part is None or part.watermark == -NEVER:
                return None
            if lowest is None or part.watermark < lowest:
                lowest = part.watermark
        return lowest if lowest is not None else quiet_lowest

    def min_open_offset(self, partition: int) -> int | None:
        """The lowest offset still held by an open window of the partition (None if none)."""
        part = self._parts.get(partition)
        if part is None:
            return None
        heap = part.offsets
        while heap:
            off, _seq, s, gen = heap[0]
            if s.alive and s.buf and s.buf_gen == gen and s.min_off == off:
                return off
            heapq.heappop(heap)
        return None

    # -- internals ----------------------------------------------------------------------

    def _deadline(self, s: OpenSession) -> int:
        gap_deadline = s.last_ts + self._gap
        if s.buf:
            return min(gap_deadline, s.min_ts + self._max_dur)
        return gap_deadline

    def _lower_deadline(self, part: PartitionState, s: OpenSession) -> None:
        """Re-queue the session if its deadline dropped below its queued one (a new window,
        or an out-of-order event that moved the window start earlier)."""
        deadline = self._deadline(s)
        if deadline < s.heap_deadline:
            self._push_expiry(part, s, deadline)

    def _open(self, part: PartitionState, partition: int, sid: str, ts: int) -> OpenSession:
        index, late = 0, False
        closed = self._closed.pop((partition, sid), None)
        if closed is not None:
            closed_last_ts, index = closed
            late = ts - closed_last_ts <= self._gap
        s = OpenSession(partition, sid, index, late)
        part.sessions[sid] = s
        self._lru[s] = None
        return s

    def _emit(self, s: OpenSession, ended: bool) -> Window:
        self._open_events -= len(s.buf)
        return s.take_window(ended)

    def _push_expiry(self, part: PartitionState, s: OpenSession, deadline: int) -> None:
        self._seq += 1
        part.push_expiry(s, deadline, self._seq)

    def _push_offset(self, part: PartitionState, s: OpenSession) -> None:
        self._seq += 1
        part.push_offset(s, self._seq)

    def _close(self, s: OpenSession, out: list[Window], ended: bool = True) -> None:
        """End the session: emit what it holds and remember it, to spot late events."""
        if s.buf:
            out.append(self._emit(s, ended))
        s.alive = False
        part = self._parts[s.partition]
        del part.sessions[s.session_id]
        del self._lru[s]
        if self.settings.max_closed_sessions:
            key = (s.partition, s.session_id)
            self._closed[key] = (s.last_ts, s.index)  # new key: _open popped any old one
            if len(self._closed) > self.settings.max_closed_sessions:
                self._closed.popitem(last=False)

    def _expire(self, part: PartitionState, out: list[Window]) -> None:
        heap = part.expiry
        wm = part.watermark
        while heap and heap[0][0] < wm:
            _, seq, s = heapq.heappop(heap)
            if not s.alive or seq != s.heap_seq:
                continue  # stale: the session closed, or a newer entry replaced this one
            s.heap_deadline = NEVER
            if s.last_ts + self._gap < wm:
                self._close(s, out)
                continue
            if s.buf and s.min_ts + self._max_dur < wm:
                out.append(self._emit(s, ended=False))  # too long: split, the session goes on
            # Entries are pushed lazily (only when a deadline drops), so the real deadline
            # may be later than the popped one: re-queue at the real one.
            self._push_expiry(part, s, self._deadline(s))
