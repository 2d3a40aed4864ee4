"""Packing: several short windows side by side in one row of a training batch.

Windows average about 40 tokens, so a batch of one window per row is many short rows; packed,
the same tokens make fewer, longer rows, which a GPU runs more efficiently. Attention stays
inside each window (a block-diagonal mask, trainer/model.py) and each window's positions
start again at 0, so a packed window is seen exactly as it would be alone: the loss and its
gradients equal the unpacked batch's (tests/unit/test_packing.py). Packing takes a batch
already masked (trainer.collate.pack_batch), so the masks, and with them the run's results,
do not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

NO_SEGMENT = -1
"""The segment id of padding: it belongs to no window."""


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Windows (by index) grouped into rows of at most `row_tokens` tokens, longest first,
    each into the first row it fits (first-fit decreasing); a window longer than
    `row_tokens` gets a row of its own. Rows keep their windows in placement order."""
    if row_tokens < 1:
        raise ValueError(f"row_tokens must be >= 1, got {row_tokens}")
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
        n = lengths[i]
        r = next((k for k, f in enumerate(free) if f >= n), None)
        if r is None:
            rows.append([i])
            free.append(row_tokens - n)
        else:
            rows[r].append(i)
            free[r] -= n
    return rows


def segment_positions(segments: torch.Tensor) -> torch.Tensor:
    """Each position's index within its own window (0 at every window's first token)."""
    seq = segments.shape[1]
    index = torch.arange(seq, device=segments.device).expand_as(segments)
    first = torch.ones_like(segments, dtype=torch.bool)
    first[:, 1:] = segments[:, 1:] != segments[:, :-1]
    starts = torch.where(first, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - starts


def segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """(batch, seq, seq) True where a query may attend a key: both in the same window. A
    padding position attends only to itself, so that no row of the mask is empty."""
    same = segments[:, :, None] == segments[:, None, :]
    real = (segments != NO_SEGMENT)[:, None, :]
    own = torch.eye(segments.shape[1], dtype=torch.bool, device=segments.device)
    return (same & real) | own
