"""Time gaps as the model sees them: a log-scale bucket per token, fed as BERT's token type.

A time-aware model (`time_buckets` N > 0) is built with `type_vocab_size` N, and every token
gets a bucket as its `token_type_ids`:

- bucket 0: no gap known: [CLS], [SEP], the session-end marker, padding, a window's first
  event, and every event when the data carries no times;
- event i > 0 of a window whose gap (ms since the session's previous event) is g:
  1 + min(N - 2, floor(log2(1 + g))).

So 0 ms is bucket 1, 1 ms bucket 2, 2-3 ms bucket 3, ... and every gap of 2^(N-2) - 1 ms or
more shares the last bucket. The rule is split in two so the token cache can store a
gap's *level* (1 + floor(log2(1 + g)), 0 unknown), which does not depend on N: the bucket
is then min(level, N - 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import sub

import numpy as np
import numpy.typing as npt

from schemas.bundle import MAX_TIME_BUCKETS as MAX_TIME_BUCKETS

_POWERS = np.array([1 << k for k in range(63)], dtype=np.int64)


def gaps_from_times(times: Sequence[int]) -> tuple[int, ...]:
    """A session's or window's `gaps_ms` from its events' times (ms, in order): the first
    0, then each event's time since the one before."""
    if not times:
        return ()
    gaps = (0, *map(sub, times[1:], times[:-1]))
    if min(gaps) < 0:
        raise ValueError("event times must be in order to give gaps")
    return gaps


def gap_level(gap_ms: int) -> int:
    """1 + floor(log2(1 + gap_ms)), exact for any non-negative int."""
    if gap_ms < 0:
        raise ValueError(f"a gap must be >= 0 ms, got {gap_ms}")
    return (gap_ms + 1).bit_length()


def gap_bucket(gap_ms: int, n_buckets: int) -> int:
    """The token type of an event (not a window's first) whose gap is `gap_ms`."""
    check_buckets(n_buckets)
    return min(n_buckets - 1, gap_level(gap_ms))


def check_buckets(n_buckets: int) -> None:
    if not 2 <= n_buckets <= MAX_TIME_BUCKETS:
        raise ValueError(f"time buckets must be in [2, {MAX_TIME_BUCKETS}], got {n_buckets}")


def gap_levels(
    gaps_ms: Sequence[int] | npt.NDArray[np.integer] | None, n_events: int
) -> npt.NDArray[np.uint8]:
    """Per event of a window, its gap level (`gap_level`; 0 for the first event, and for
    every event when `gaps_ms` is None)."""
    out = np.zeros(n_events, dtype=np.uint8)
    if gaps_ms is None or n_events <= 1:
        return out
    g = np.asarray(gaps_ms, dtype=np.int64).reshape(-1)
    if g.size != n_events:
        raise ValueError(f"{g.size} gaps for {n_events} events")
    if (g < 0).any():
        raise ValueError("gaps must be >= 0 ms")
    # bit_length(1 + g) = how many powers of two are <= 1 + g: exact, unlike float log2.
    out[1:] = np.searchsorted(_POWERS, g[1:] + 1, side="right")
    return out


def levels_to_buckets(levels: npt.NDArray[np.integer], n_buckets: int) -> npt.NDArray[np.int64]:
    """Token types from stored gap levels."""
    check_buckets(n_buckets)
    return np.minimum(np.asarray(levels, dtype=np.int64), n_buckets - 1)


def window_buckets(
    gaps_ms: Sequence[int] | npt.NDArray[np.integer] | None, n_events: int, n_buckets: int
) -> npt.NDArray[np.int64]:
    """Per event of a window (no [CLS]/[SEP]), its token type. Positions past the gaps
    given (the session-end marker the scorer appends) get bucket 0."""
    n_gaps = n_events if gaps_ms is None else len(gaps_ms)
    if n_gaps > n_events:
        raise ValueError(f"{n_gaps} gaps for {n_events} events")
    out = np.zeros(n_events, dtype=np.int64)
    out[:n_gaps] = levels_to_buckets(gap_levels(gaps_ms, n_gaps), n_buckets)
    return out


class TimedEvents(tuple[str, ...]):
    """A session's or window's event ids that also carry their gaps (`gaps_ms`, the first
    0; None: unknown). Everywhere else a plain tuple of event ids: `logad evaluate` passes
    sessions through code that only sees events, and its scorer reads the gaps back
    (`gaps_of`)."""

    gaps_ms: tuple[int, ...] | None

    def __new__(cls, events: Iterable[str], gaps_ms: tuple[int, ...] | None) -> TimedEvents:
        self = super().__new__(cls, events)
        if gaps_ms is not None and len(gaps_ms) != len(self):
            raise ValueError(f"{len(gaps_ms)} gaps for {len(self)} events")
        self.gaps_ms = gaps_ms
        return self

    def __getnewargs__(self) -> tuple[tuple[str, ...], tuple[int, ...] | None]:  # type: ignore[override]
        return (tuple(self), self.gaps_ms)

    def window(self, a: int, b: int) -> TimedEvents:
        """Events [a, b) as a window: its first event starts without a gap."""
        gaps = None if self.gaps_ms is None or b <= a else (0, *self.gaps_ms[a + 1 : b])
        return TimedEvents(self[a:b], gaps)


def gaps_of(events: Sequence[str]) -> tuple[int, ...] | None:
    """The gaps a `TimedEvents` carries; None for any other sequence."""
    return events.gaps_ms if isinstance(events, TimedEvents) else None
