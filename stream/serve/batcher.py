"""Dynamic batching of windows for the scorer: token budget, wait limit, length buckets.

Pure: the caller passes the time in. A window of n events costs n + 2 tokens ([CLS], [SEP]).
Windows are grouped by length bucket so a batch pads little; a bucket's batch is emitted
when one more window would overflow `max_tokens` (counted as windows x padded length), or
when its oldest window has waited `max_wait_ms`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.windows import MAX_TOKENS, Window


def window_tokens(window: Window) -> int:
    return len(window.events) + 2


@dataclass(frozen=True)
class Batch:
    windows: tuple[Window, ...]
    bucket: int
    """Upper bound (tokens) of the length bucket the windows came from."""
    padded_tokens: int
    """len(windows) x the longest window's tokens: what the model actually computes."""
    oldest_ms: int
    """When the batch's first window was added."""

    @property
    def events(self) -> int:
        return sum(len(w.events) for w in self.windows)


@dataclass
class _Bucket:
    windows: list[Window] = field(default_factory=list)
    longest: int = 0
    since_ms: int = 0


class Batcher:
    def __init__(
        self,
        max_tokens: int,
        max_wait_ms: int,
        buckets: Sequence[int] = (32, 64, 128, 256, MAX_TOKENS),
    ) -> None:
        if max_tokens < MAX_TOKENS:
            raise ValueError(f"max_tokens must be at least {MAX_TOKENS}")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[-1] < MAX_TOKENS:
            raise ValueError(f"buckets must increase strictly and reach {MAX_TOKENS}")
        self.max_tokens = max_tokens
        self.max_wait_ms = max_wait_ms
        self.bounds = tuple(buckets)
        self._buckets = [_Bucket() for _ in self.bounds]
        self._size = 0

    def __len__(self) -> int:
        """Windows waiting in buckets."""
        return self._size

    def add(self, window: Window, now_ms: int) -> list[Batch]:
        """Queue a window; return the batches that became full (at most two)."""
        tokens = window_tokens(window)
        i = bisect.bisect_left(self.bounds, tokens)
        b = self._buckets[i]
        out: list[Batch] = []
        if b.windows and (len(b.windows) + 1) * max(b.longest, tokens) > self.max_tokens:
            out.append(self._take(i))
            b = self._buckets[i]
        if not b.windows:
            b.since_ms = now_ms
        b.windows.append(window)
        b.longest = max(b.longest, tokens)
        self._size += 1
        if len(b.windows) * b.longest >= self.max_tokens:
            out.append(self._take(i))
        return out

    def due(self, now_ms: int) -> list[Batch]:
        """Batches whose oldest window has waited max_wait_ms or more."""
        return [
            self._take(i)
            for i, b in enumerate(self._buckets)
            if b.windows and now_ms - b.since_ms >= self.max_wait_ms
        ]

    def next_deadline(self) -> int | None:
        """The time at which the next batch falls due, or None when empty."""
        starts = [b.since_ms for b in self._buckets if b.windows]
        return min(starts) + self.max_wait_ms if starts else None

    def flush(self) -> list[Batch]:
        """Every waiting window, in batches, now (shutdown and rebalance)."""
        return [self._take(i) for i, b in enumerate(self._buckets) if b.windows]

    def _take(self, i: int) -> Batch:
        b = self._buckets[i]
        batch = Batch(tuple(b.windows), self.bounds[i], len(b.windows) * b.longest, b.since_ms)
        self._size -= len(b.windows)
        self._buckets[i] = _Bucket()
        return batch
