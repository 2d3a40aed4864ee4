"""Known event mixes: the multisets of events that training windows held, and what else a
bundle records of its training windows to look a window up against.

Some sources interleave a session's events freely: an HDFS block is written by three
datanodes at once, so the same events arrive in many orders, and a masked model finds a
rare order surprising although nothing went wrong. A scoring strategy with `known_mixes`
treats a window whose event counts (end marker included) equal a training window's as
normal, whatever their order. The keys are computed here, stored in the bundle's
calibration.json, and looked up by the scoring path (trainer/scoring/rules.py).

Order-only anomalies are invisible to that alone. With `known_pairs` as well, a known mix
counts only when every pair of consecutive events in the window (end marker included) also
occurred in training: HDFS's interleavings reuse pairs seen before, while a swapped step in
a sequential flow (the simulator's out-of-order anomaly) makes a pair never seen.

Whether a source interleaves is in its normal data, so the trainer can choose `known_pairs`
without labels (`order_varies`): of the training windows whose mix recurs, the share whose
mix comes in more than one order (as sets of pairs). HDFS's training windows: all of them;
TrainTicket's traces: most; the simulator's sequential flows: a few percent. At half or
more, order is taken for noise and a known mix is exempt in any order.

Count ceilings (strategy `count_ceilings`) look at one event at a time: an occurrence of an
event beyond what the training windows held of it scores like an unknown event. Some
counts are fixed by the system (an HDFS block has three replicas, so it is deleted three
times; five deletions is a fault however ordinary each step looks); others have a long
tail (a block can be served any number of times). The validation slice tells them apart
without labels: an event that some validation window held more of than its ceiling gets
none. A ceiling needs `CEILING_SUPPORT` training windows: nightly training data is raw
traffic, and one or two windows (an anomaly nobody flagged) do not make a count normal.
An event fewer windows held has ceiling 0: any occurrence of it scores like an unknown
event (HDFS's E20, "unexpected error trying to delete block", is in a handful of normal
training windows and in many anomalous blocks).

Known ends (strategy `known_ends`) look at where a session stops. A session that simply
stops early (HDFS's `E22 E5` blocks) holds no out-of-place event, only an end marker where
no training session ended. The model's NLL for that marker is a tail probability, and
whether it clears the threshold changes from one training seed to the next. With the rule,
an end marker after an event that never came right before one in training (the pair is not
among the known pairs) scores like an unknown event, whatever the seed. As with count
ceilings, the validation slice has its say: an ending a validation window shows is normal,
so its pair is recorded too (`ending_pairs`). Otherwise one validation session ending where
no training session did would score like an unknown event and lift the calibrated threshold
for every other window.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from schemas.vocab import UNK_ID
from trainer.settings import TrainSettings

MixKey = tuple[int, ...]
"""(token id, count) pairs, flattened, in token id order."""

Pair = tuple[int, int]
"""Two token ids that followed each other in a window."""

Ceiling = tuple[int, int]
"""(token id, the most occurrences of it that `CEILING_SUPPORT` training windows held)."""

CEILING_SUPPORT = TrainSettings.score_ceiling_support
"""Training windows that must hold a count (or more) of an event for it to be within the
event's ceiling."""

MAX_KNOWN_PAIRS = 100_000
"""Pairs kept in a bundle, the most frequent first; the cap bounds calibration.json's size."""

MAX_KNOWN_MIXES = 10_000
"""Keys kept in a bundle, the most frequent first. A source with more distinct mixes than
this is not one the known-mix rule suits: few of its windows would repeat a mix."""


def mix_key(token_ids: Sequence[int] | npt.NDArray[np.integer]) -> MixKey | None:
    """A window's event counts as a key; None for a window holding an unknown event (its
    events cannot be told apart from other unknowns, so it is never a known mix)."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if (ids == UNK_ID).any():
        return None
    values, counts = np.unique(ids, return_counts=True)
    return tuple(int(x) for pair in zip(values, counts, strict=True) for x in pair)


def known_mix_keys(
    windows: Iterable[Sequence[int] | npt.NDArray[np.integer]], limit: int = MAX_KNOWN_MIXES
) -> tuple[MixKey, ...]:
    """The distinct keys of `windows`, most frequent first (ties in first-seen order),
    at most `limit` of them."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    seen: Counter[MixKey] = Counter()
    for w in windows:
        key = mix_key(w)
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


ORDER_NOISE_SHARE = 0.5
"""`order_varies` when at least this share of the windows of recurring mixes come in more
than one order."""


def reordered_share(windows: Iterable[Sequence[int] | npt.NDArray[np.integer]]) -> float:
    """Of the windows whose mix (event counts) some other window shares, the share whose mix
    comes in more than one order (distinct sets of consecutive pairs); 0 with none."""
    orders: dict[MixKey, set[frozenset[Pair]]] = {}
    counts: Counter[MixKey] = Counter()
    for w in windows:
        key = mix_key(w)
        if key is None:
            continue
        orders.setdefault(key, set()).add(frozenset(pairs_of(w)))
        counts[key] += 1
    recurring = sum(n for n in counts.values() if n > 1)
    reordered = sum(n for k, n in counts.items() if n > 1 and len(orders[k]) > 1)
    return reordered / recurring if recurring else 0.0


def order_varies(windows: Iterable[Sequence[int] | npt.NDArray[np.integer]]) -> bool:
    """Whether the windows' source interleaves (see the module doc)."""
    return reordered_share(windows) >= ORDER_NOISE_SHARE


def _count_histograms(
    windows: Iterable[Sequence[int] | npt.NDArray[np.integer]],
) -> dict[int, Counter[int]]:
    """For each token: how many windows held it how many times."""
    hist: dict[int, Counter[int]] = {}
    for w in windows:
        values, counts = np.unique(np.asarray(w, dtype=np.int64), return_counts=True)
        for t, c in zip(values.tolist(), counts.tolist(), strict=True):
            hist.setdefault(t, Counter())[c] += 1
    return hist


def _supported_max(hist: Counter[int], support: int) -> int:
    """The largest count that at least `support` windows held (or more); 0 if none."""
    windows = 0
    for count in sorted(hist, reverse=True):
        windows += hist[count]
        if windows >= support:
            return count
    return 0


def count_ceilings(
    train: Iterable[Sequence[int] | npt.NDArray[np.integer]],
    validation: Iterable[Sequence[int] | npt.NDArray[np.integer]],
    support: int = CEILING_SUPPORT,
) -> tuple[Ceiling, ...]:
    """The ceiling of each event the training windows held, in token id order: the most
    occurrences that `support` training windows held (0 when fewer windows held the event
    at all). Events a validation window held more of than that (a long-tailed count), and
    [UNK], get none."""
    if support < 1:
        raise ValueError(f"support must be >= 1, got {support}")
    held_out = {t: max(h) for t, h in _count_histograms(validation).items()}
    ceilings = []
    for t, hist in sorted(_count_histograms(train).items()):
        ceiling = _supported_max(hist, support)
        if t != UNK_ID and held_out.get(t, 0) <= ceiling:
            ceilings.append((t, ceiling))
    return tuple(ceilings)


NO_CEILING = np.iinfo(np.int64).max


def ceiling_limits(ceilings: Iterable[Ceiling]) -> npt.NDArray[np.int64]:
    """Ceilings as an array indexed by token id (NO_CEILING for tokens without one)."""
    pairs = list(ceilings)
    limits = np.full(max((t for t, _ in pairs), default=-1) + 1, NO_CEILING, dtype=np.int64)
    for t, c in pairs:
        limits[t] = c
    return limits


def past_ceiling(
    ids: npt.NDArray[np.int64],
    window_of: npt.NDArray[np.int64],
    limits: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Which events (flat over many windows; `window_of[i]` is event i's window, windows
    contiguous) are an occurrence beyond their event's ceiling (`limits`, from
    `ceiling_limits`) in their window: with a ceiling of 3, the fourth and later ones."""
    if ids.size == 0 or limits.size == 0:
        return np.zeros(ids.size, dtype=bool)
    limit = np.where(ids < limits.size, limits[np.minimum(ids, limits.size - 1)], NO_CEILING)
    # Occurrence number of each event within (window, token), counted in window order.
    order = np.lexsort((np.arange(ids.size), ids, window_of))
    key = window_of[order] * (int(ids.max()) + 1) + ids[order]
    first = np.ones(ids.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    at = np.arange(ids.size)
    occurrence = at - np.maximum.accumulate(np.where(first, at, 0))
    past = np.empty(ids.size, dtype=bool)
    past[order] = occurrence >= limit[order]
    return past


def ending_pairs(
    windows: Iterable[Sequence[int] | npt.NDArray[np.integer]], end_id: int
) -> set[Pair]:
    """The (last event, end marker) pairs of the windows that end with the marker."""
    out: set[Pair] = set()
    for w in windows:
        ids = np.asarray(w, dtype=np.int64).reshape(-1)
        if ids.size >= 2 and int(ids[-1]) == end_id:
            out.add((int(ids[-2]), end_id))
    return out


def unseen_ends(
    ids: npt.NDArray[np.int64],
    window_of: npt.NDArray[np.int64],
    ending: npt.NDArray[np.bool_],
    end_id: int,
) -> npt.NDArray[np.bool_]:
    """Which events (flat over many windows, `window_of[i]` event i's window) are an end
    marker right after a token no recorded window ended with (`ending`, indexed by token
    id: `KnownMixes.ending`). A marker that opens its window has nothing before it to judge,
    and one after an [UNK] event adds nothing to that event's own score: neither is one."""
    out = np.zeros(ids.size, dtype=bool)
    if ids.size < 2:
        return out
    prev, cur = ids[:-1], ids[1:]
    same_window = window_of[:-1] == window_of[1:]
    ended_before = np.zeros(prev.size, dtype=bool)
    inside = prev < ending.size
    ended_before[inside] = ending[prev[inside]]
    out[1:] = (cur == end_id) & same_window & ~ended_before & (prev != UNK_ID)
    return out


@dataclass(frozen=True)
class KnownMixes:
    """What the training windows held, as the scoring path looks a window up in it."""

    mixes: frozenset[MixKey]
    pairs: frozenset[Pair]
    ceilings: tuple[Ceiling, ...] | None = None
    """None: not recorded (a bundle from before count ceilings)."""
    end_id: int | None = None
    """The session-end marker's token id; None: the vocab has none (see `unseen_ends`)."""

    @classmethod
    def of(
        cls,
        mixes: Iterable[MixKey],
        pairs: Iterable[Pair] = (),
        ceilings: Iterable[Ceiling] | None = None,
        end_id: int | None = None,
    ) -> KnownMixes | None:
        """None when there is nothing to look up."""
        m = frozenset(mixes)
        if not m and ceilings is None:
            return None
        return cls(m, frozenset(pairs), None if ceilings is None else tuple(ceilings), end_id)

    @cached_property
    def ending(self) -> npt.NDArray[np.bool_]:
        """Indexed by token id: whether some training or validation window ended right after
        that token (the pair token, end marker is known); empty without an end marker."""
        if self.end_id is None:
            return np.zeros(0, dtype=bool)
        before = [a for a, b in self.pairs if b == self.end_id]
        out = np.zeros(max(before, default=-1) + 1, dtype=bool)
        out[before] = True
        return out

    @cached_property
    def limits(self) -> npt.NDArray[np.int64]:
        """The ceilings as `past_ceiling` takes them (built once per loaded bundle)."""
        return ceiling_limits(self.ceilings or ())

    def match(self, token_ids: Sequence[int] | npt.NDArray[np.integer]) -> tuple[bool, bool]:
        """(the window is a known mix, and also every pair of its consecutive tokens is
        known)."""
        mix = mix_key(token_ids) in self.mixes
        return mix, mix and pairs_of(token_ids) <= self.pairs
