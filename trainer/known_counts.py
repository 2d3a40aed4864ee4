"""Known event mixes: the multisets of events that training windows held.

Some sources interleave a session's events freely: an HDFS block is written by three
datanodes at once, so the same events arrive in many orders, and a masked model finds a
rare order surprising although nothing went wrong. A scoring strategy with
`known_counts` treats a window whose event counts (end marker included) equal a training
window's as normal, whatever their order. The keys are computed here, stored in the
bundle's calibration.json, and looked up by the shared scoring function.

Order-only anomalies are invisible to that alone. With `known_pairs` as well, a known mix
counts only when every pair of consecutive events in the window (end marker included) also
occurred in training: HDFS's interleavings reuse pairs seen before, while a swapped step in
a sequential flow (the simulator's out-of-order anomaly) makes a pair never seen.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from schemas.vocab import UNK_ID

CountKey = tuple[int, ...]
"""(token id, count) pairs, flattened, in token id order."""

Pair = tuple[int, int]
"""Two token ids that followed each other in a window."""

MAX_KNOWN_PAIRS = 100_000
"""Pairs kept in a bundle, the most frequent first (HDFS's training windows hold 77)."""

MAX_KNOWN_COUNTS = 10_000
"""Keys kept in a bundle, the most frequent first. HDFS's 4,480 training windows hold 54;
a source with many more distinct mixes is not one this strategy suits."""


def count_key(token_ids: Sequence[int] | npt.NDArray[np.integer]) -> CountKey | None:
    """A window's event counts as a key; None for a window holding an unknown event (its
    events cannot be told apart from other unknowns, so it is never a known mix)."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if (ids == UNK_ID).any():
        return None
    values, counts = np.unique(ids, return_counts=True)
    return tuple(int(x) for pair in zip(values, counts, strict=True) for x in pair)


def known_count_keys(
    windows: Iterable[Sequence[int] | npt.NDArray[np.integer]], limit: int = MAX_KNOWN_COUNTS
) -> tuple[CountKey, ...]:
    """The distinct keys of `windows`, most frequent first (ties in first-seen order),
    at most `limit` of them."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    seen: Counter[CountKey] = Counter()
    for w in windows:
        key = count_key(w)
        if key is not None:
            seen[key] += 1
    return tuple(k for k, _ in seen.most_common(limit))


def pairs_of(token_ids: Sequence[int] | npt.NDArray[np.integer]) -> set[Pair]:
    """The pairs of consecutive tokens in a window."""
    ids = [int(t) for t in np.asarray(token_ids, dtype=np.int64).reshape(-1)]
    return set(itertools.pairwise(ids))


def known_pair_keys(
    windows: Iterable[Sequence[int] | npt.NDArray[np.integer]], limit: int = MAX_KNOWN_PAIRS
) -> tuple[Pair, ...]:
    """The distinct pairs of consecutive tokens in `windows`, most frequent first (ties by
    token ids), at most `limit` of them."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    seen: Counter[Pair] = Counter()
    for w in windows:
        seen.update(pairs_of(w))
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(p for p, _ in ranked[:limit])


@dataclass(frozen=True)
class KnownMixes:
    """What the training windows held, as the scoring function looks it up."""

    counts: frozenset[CountKey]
    pairs: frozenset[Pair]

    @classmethod
    def of(cls, counts: Iterable[CountKey], pairs: Iterable[Pair] = ()) -> KnownMixes | None:
        """None when there are no mixes to look up."""
        c = frozenset(counts)
        return cls(c, frozenset(pairs)) if c else None

    def match(self, token_ids: Sequence[int] | npt.NDArray[np.integer]) -> tuple[bool, bool]:
        """(the window is a known mix, and also every pair of its consecutive tokens is
        known)."""
        mix = count_key(token_ids) in self.counts
        return mix, mix and pairs_of(token_ids) <= self.pairs
