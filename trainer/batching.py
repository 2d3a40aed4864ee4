"""Length-bucketed batches under a padded-token budget, reshuffled each epoch, sharded by rank.

Pure: the epoch's randomness is a numpy Generator passed in (see `epoch_rng`).

Windows are grouped by their length rounded up to `bucket_width`; a batch holds windows of
one bucket (plus, at a bucket's tail, a few carried over from the bucket below), padded only
to the bucket's length. The shuffle reorders windows within each bucket, so batch contents
change from epoch to epoch, and then reorders the batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from schemas.windows import MAX_TOKENS

IntArray = npt.NDArray[np.int64]
T = TypeVar("T")

STEP_COST = 1 / 16
"""The fixed cost of one more optimizer step, as a share of a full batch's padded tokens."""


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The same generator on every rank, so all ranks agree on the epoch's global batches."""
    return np.random.default_rng([seed, epoch, 0x6261746368])


def padded_length(max_len: int, bucket_width: int) -> int:
    """A batch's padded length: the longest window rounded up to the bucket width (<= 512)."""
    return min(MAX_TOKENS, -(-max_len // bucket_width) * bucket_width)


def plan_batches(
    lengths: IntArray,
    tokens_per_batch: int,
    bucket_width: int,
    rng: np.random.Generator | None,
) -> list[IntArray]:
    """Split window indices 0..n-1 into batches with rows x padded length <= tokens_per_batch.

    `lengths` are token counts including [CLS] and [SEP]. With rng None, the order is
    deterministic (validation); otherwise windows are shuffled within buckets and the batches
    are shuffled. The number of batches does not depend on the rng.
    """
    n = len(lengths)
    if n == 0:
        return []
    order = rng.permutation(n) if rng is not None else np.arange(n)
    buckets = np.minimum(MAX_TOKENS, -(-lengths.astype(np.int64) // bucket_width) * bucket_width)
    # Stable sort keeps the shuffled order within each bucket.
    order = order[np.argsort(buckets[order], kind="stable")]
    batches: list[IntArray] = []
    carry = np.empty(0, dtype=np.int64)
    bucket_sorted = buckets[order]
    bounds = np.flatnonzero(np.diff(bucket_sorted)) + 1
    for group in np.split(order, bounds):
        pad_len = int(buckets[group[0]])
        rows = max(1, tokens_per_batch // pad_len)
        # A bucket's partial tail rides along into the next bucket while the extra padding
        # that costs stays below what one more (smaller) batch would cost; then it goes out
        # as a batch of its own.
        if len(carry):
            extra = len(carry) * (pad_len - padded_length(int(lengths[carry].max()), bucket_width))
            if extra > STEP_COST * tokens_per_batch:
                batches.append(carry)
                carry = carry[:0]
        members = np.concatenate([carry, group])
        full = len(members) // rows * rows
        batches.extend(members[i : i + rows] for i in range(0, full, rows))
        carry = members[full:]
    if len(carry):
        batches.append(carry)
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def shard_batches(batches: list[IntArray], rank: int, world_size: int) -> list[IntArray]:
    """This rank's disjoint share: batches rank, rank+W, ...; the remainder (fewer than W
    batches, the last after the shuffle) is dropped so every rank takes the same number of
    steps."""
    usable = len(batches) // world_size * world_size
    return batches[rank:usable:world_size]


def shard_eval_batches(batches: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Validation shards keep every batch (counts may differ; only sums are all-reduced)."""
    return list(batches[rank::world_size])


def padding_efficiency(batches: list[IntArray], lengths: IntArray, bucket_width: int) -> float:
    """Non-pad tokens over padded tokens for a batch plan."""
    real = sum(int(lengths[b].sum()) for b in batches)
    padded = sum(len(b) * padded_length(int(lengths[b].max()), bucket_width) for b in batches)
    return real / padded if padded else 1.0
