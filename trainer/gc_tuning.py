"""Garbage-collector settings for scoring-heavy processes (serve, replay, evaluate).

Once torch, transformers and the model are loaded, the cyclic GC's full runs re-scan hundreds
of thousands of their objects, though none of them will ever be garbage, while the per-event
and per-window records these processes allocate are freed by reference counting anyway.
Freezing what is loaded, and running young collections less often, removes that cost
(docs/performance.md has the measured effect on replay and on a serve drain).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_THRESHOLD_0 = 50_000
"""Allocations between young collections (CPython's default is 700)."""


def tune_gc() -> tuple[int, int, int]:
    """Freeze everything alive now out of the cyclic GC's sight and collect the young
    generation less often. Call it once the model is loaded. Returns the thresholds to
    restore."""
    old: tuple[int, int, int] = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD_0, old[1], old[2])
    return old


def restore_gc(thresholds: tuple[int, int, int]) -> None:
    """Undo `tune_gc` (extensions that count their objects at interpreter exit would
    report frozen ones as leaked)."""
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@contextlib.contextmanager
def tuned_gc() -> Iterator[None]:
    """`tune_gc` for the duration of the block."""
    old = tune_gc()
    try:
        yield
    finally:
        restore_gc(old)
