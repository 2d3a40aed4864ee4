"""Known event mixes: the multisets of events that training windows held.

Some sources interleave a session's events freely: an HDFS block is written by three
datanodes at once, so the same events arrive in many orders, and a masked model finds a
rare order surprising although nothing went wrong. A scoring strategy with
`known_counts` treats a window whose event counts (end marker included) equal a training
window's as normal, whatever their order. The keys are computed here, stored in the
bundle's calibration.json, and looked up by the shared scoring function.

Order-only anomalies are invisible to such a strategy, so it is opt-in: it suits sources
like HDFS and hides the simulator's out-of-order flows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from schemas.vocab import UNK_ID

CountKey = tuple[int, ...]
"""(token id, count) pairs, flattened, in token id order."""

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
