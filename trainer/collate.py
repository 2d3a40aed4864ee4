"""Batches ready for the model: padded ids, masked for MLM, with the predicted positions
pre-gathered on the CPU so the GPU step never has to synchronize to find them.

Each batch's masks come from a generator seeded by (seed, epoch, batch number in the epoch's
plan), so masks do not depend on worker processes, world size or where a resumed run starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from schemas.vocab import PAD_ID, SPECIALS
from trainer.batching import IntArray
from trainer.dataset import WindowStore, pad_types, pad_windows
from trainer.masking import IGNORE, MaskSpec, mask_tokens
from trainer.packing import NO_SEGMENT, pack_rows
from trainer.prefix_cuts import CutSpec, cut_prefixes

VALIDATION_EPOCH = -1
FIRST_EVENT_ID = len(SPECIALS)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    """(rows, padded length) int64, already masked."""
    flat_idx: torch.Tensor
    """Indices into input_ids.view(-1) of the predicted positions."""
    targets: torch.Tensor
    """The original token at each predicted position."""
    n_masked: int
    n_tokens: int
    """Non-pad tokens (with [CLS]/[SEP])."""
    row_masked: int
    """The most predicted positions in one row: the model's last layer computes that many
    per row (trainer.model.flat_selection)."""
    token_type_ids: torch.Tensor | None = None
    """(rows, padded length) int64 gap buckets of a time-aware run (trainer/time_gaps.py);
    None: time-blind."""
    segments: torch.Tensor | None = None
    """(rows, padded length) int64: which window of its row each position belongs to, -1
    for padding, when several windows share a row (trainer/packing.py); None: one window
    per row."""

    @property
    def n_padded(self) -> int:
        return int(self.input_ids.numel())

    def pin_memory(self) -> Batch:
        return Batch(
            self.input_ids.pin_memory(),
            self.flat_idx.pin_memory(),
            self.targets.pin_memory(),
            self.n_masked,
            self.n_tokens,
            self.row_masked,
            None if self.token_type_ids is None else self.token_type_ids.pin_memory(),
            None if self.segments is None else self.segments.pin_memory(),
        )


def batch_seed(seed: int, epoch: int, plan_index: int) -> int:
    tag = [seed, 0, epoch, plan_index] if epoch >= 0 else [seed, 1, plan_index]
    return int(np.random.SeedSequence(tag).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def make_batch(
    store: WindowStore,
    windows: IntArray,
    bucket_width: int,
    vocab_size: int,
    spec: MaskSpec,
    generator: torch.Generator,
    cuts: CutSpec | None = None,
    time_buckets: int = 0,
) -> Batch:
    ids = torch.from_numpy(pad_windows(store, windows, bucket_width))
    if cuts is not None:
        ids = cut_prefixes(ids, cuts, generator)
    types: torch.Tensor | None = None
    if time_buckets:
        types = torch.from_numpy(pad_types(store, windows, bucket_width, time_buckets))
        # A prefix cut's [SEP] and padding have no gap; a masked event keeps its own.
        types = torch.where(ids >= FIRST_EVENT_ID, types, torch.zeros_like(types))
    masked, labels = mask_tokens(ids, vocab_size, spec, generator)
    predicted = labels != IGNORE
    flat_labels = labels.view(-1)
    flat_idx = torch.nonzero(predicted.view(-1)).view(-1)
    return Batch(
        input_ids=masked,
        flat_idx=flat_idx,
        targets=flat_labels[flat_idx],
        n_masked=int(flat_idx.numel()),
        n_tokens=int((ids != PAD_ID).sum()),
        row_masked=int(predicted.sum(dim=1).max()) if predicted.numel() else 0,
        token_type_ids=types,
    )


class EpochBatches(torch.utils.data.Dataset[Batch]):
    """The batches one rank takes in one epoch, from `start` on (a resumed run skips ahead).

    `plan` holds window positions relative to `window_ids` (e.g. the training indices);
    `plan_ids` numbers each batch within the epoch's global plan, for its mask seed.
    """

    def __init__(
        self,
        store: WindowStore,
        window_ids: IntArray,
        plan: Sequence[IntArray],
        plan_ids: Sequence[int],
        *,
        epoch: int,
        seed: int,
        bucket_width: int,
        vocab_size: int,
        spec: MaskSpec,
        cuts: CutSpec | None = None,
        start: int = 0,
        time_buckets: int = 0,
        pack_tokens: int = 0,
    ) -> None:
        """`pack_tokens` > 0: each batch's windows packed into rows of at most that many
        tokens (trainer/packing.py)."""
        self.store = store
        self.window_ids = window_ids
        self.plan = list(plan)[start:]
        self.plan_ids = list(plan_ids)[start:]
        self.epoch = epoch
        self.seed = seed
        self.bucket_width = bucket_width
        self.vocab_size = vocab_size
        self.spec = spec
        self.cuts = cuts
        self.time_buckets = time_buckets
        self.pack_tokens = pack_tokens

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, i: int) -> Batch:
        g = torch.Generator().manual_seed(batch_seed(self.seed, self.epoch, self.plan_ids[i]))
        batch = make_batch(
            self.store,
            self.window_ids[self.plan[i]],
            self.bucket_width,
            self.vocab_size,
            self.spec,
            g,
            self.cuts,
            self.time_buckets,
        )
        return pack_batch(batch, self.pack_tokens) if self.pack_tokens else batch


def iterate(dataset: EpochBatches, num_workers: int, pin_memory: bool) -> Iterator[Batch]:
    """Batches in order; with workers, prepared ahead in other processes."""
    if num_workers == 0 or len(dataset) == 0:
        for i in range(len(dataset)):
            b = dataset[i]
            yield b.pin_memory() if pin_memory else b
        return
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4,
        # Its own generator: the loader must not draw from the global RNG (dropout's).
        generator=torch.Generator().manual_seed(0),
    )
    yield from loader


def pack_batch(batch: Batch, row_tokens: int) -> Batch:
    """`batch` (one window per row, left-aligned, padded) with its windows packed into rows
    of at most `row_tokens` tokens: the same tokens, masks and targets, with `segments`
    saying which window of its row each position belongs to."""
    ids = batch.input_ids
    n, width = ids.shape
    lengths = (ids != PAD_ID).sum(dim=1).tolist()
    rows = pack_rows(lengths, row_tokens)
    packed_width = max(sum(lengths[i] for i in row) for row in rows) if rows else 0
    out = torch.full((len(rows), packed_width), PAD_ID, dtype=ids.dtype)
    segments = torch.full((len(rows), packed_width), NO_SEGMENT, dtype=torch.int64)
    types = batch.token_type_ids
    out_types = None if types is None else torch.zeros((len(rows), packed_width), dtype=types.dtype)
    # Where each window's first token lands, as a flat index into the packed batch.
    start = torch.zeros(n, dtype=torch.int64)
    for r, row in enumerate(rows):
        offset = 0
        for seg, i in enumerate(row):
            k = lengths[i]
            out[r, offset : offset + k] = ids[i, :k]
            segments[r, offset : offset + k] = seg
            if types is not None and out_types is not None:
                out_types[r, offset : offset + k] = types[i, :k]
            start[i] = r * packed_width + offset
            offset += k
    window, col = batch.flat_idx // width, batch.flat_idx % width
    moved = start[window] + col
    order = torch.argsort(moved)  # the model's selection wants ascending flat indices
    flat_idx = moved[order]
    per_row = torch.bincount(flat_idx // max(packed_width, 1), minlength=len(rows))
    return replace(
        batch,
        input_ids=out,
        flat_idx=flat_idx,
        targets=batch.targets[order],
        row_masked=int(per_row.max()) if per_row.numel() else 0,
        token_type_ids=out_types,
        segments=segments,
    )
