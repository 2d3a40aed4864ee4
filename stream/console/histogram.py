"""The score distribution against the threshold, and counts per minute: the numbers the
page's charts draw (uPlot draws them; nothing here draws)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Histogram:
    """Bins of equal width, one of whose edges is the threshold: each bin is wholly below
    (or at) the threshold or wholly above it. The last bin also holds every larger score."""

    edges: list[float]
    """len(counts) + 1 edges, increasing from 0."""
    below: list[int]
    """Per bin, the scores at or below the threshold (0 in bins above it)."""
    above: list[int]
    """Per bin, the scores above the threshold (0 in bins below it)."""


def score_histogram(
    scores: Iterable[float], threshold: float, bins_below: int = 20, max_bins: int = 60
) -> Histogram:
    """Scores binned from 0: `bins_below` bins up to the threshold, then as many of the
    same width as the largest score needs, at most `max_bins` in all."""
    values = [max(0.0, v) for v in scores if math.isfinite(v)]
    top = max(values, default=0.0)
    # No threshold known yet: the scores spread over bins_below bins.
    width = (threshold if threshold > 0 else top or 1.0) / bins_below
    n = max(bins_below + 1, min(max_bins, math.floor(top / width) + 1))
    edges = [i * width for i in range(n + 1)]
    below, above = [0] * n, [0] * n
    for v in values:
        # Bins are (lo, hi] so that a score equal to the threshold, not an alert, sits in
        # the last bin below it; 0 goes to the first bin. Clamped to the threshold's side,
        # which float division may miss by one bin.
        i = min(n - 1, max(0, math.ceil(v / width) - 1))
        if threshold > 0 and v > threshold:
            above[max(i, bins_below)] += 1
        else:
            below[min(i, bins_below - 1) if threshold > 0 else i] += 1
    return Histogram(edges, below, above)


def per_minute(times_ms: Iterable[int], now_ms: int, minutes: int) -> tuple[list[int], list[int]]:
    """(start of each minute in epoch seconds, count of `times_ms` in it), for the last
    `minutes` whole minutes up to the one holding `now_ms`; times outside are not counted."""
    last = now_ms // 60_000
    first = last - minutes + 1
    counts = [0] * minutes
    for t in times_ms:
        m = t // 60_000
        if first <= m <= last:
            counts[m - first] += 1
    return [(first + i) * 60 for i in range(minutes)], counts
