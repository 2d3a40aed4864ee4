"""The masked forward passes: the one place scoring runs the model.

A window is up to 510 event token ids; the model sees [CLS] + ids + [SEP]. A pass masks
some of a window's events and reads the model's prediction at each masked position. The
passes of many windows are flattened (`Passes`), sorted by length and packed into batches
of at most `max_batch_tokens` padded tokens (one pass per batch when a pass alone exceeds
it); the LM head runs only at the masked positions (trainer.model.masked_logits), and
log-softmax is taken in float32. A time-aware model's windows come with their token types
(gap buckets, trainer/time_gaps.py), which ride beside the ids; [CLS], [SEP] and padding
get type 0, and a masked event keeps its own. What comes back (`Predictions`) is per
event, flat over all windows, in input order: no rule is applied here
(trainer/scoring/rules.py does that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from transformers import BertForMaskedLM

from schemas.vocab import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIALS, UNK_ID
from schemas.windows import MAX_EVENTS
from trainer.model import autocast_for, masked_logits

FIRST_EVENT_ID = len(SPECIALS)


def event_windows(
    model: BertForMaskedLM, token_windows: Sequence[Sequence[int]]
) -> list[npt.NDArray[np.int64]]:
    """The windows as int64 arrays; ValueError for a window the model cannot score (too
    long, or holding a token id that is not an event's or [UNK])."""
    vocab_size = int(model.config.vocab_size)
    max_events = min(MAX_EVENTS, int(model.config.max_position_embeddings) - 2)
    windows = [np.asarray(w, dtype=np.int64).reshape(-1) for w in token_windows]
    for i, w in enumerate(windows):
        if w.size > max_events:
            raise ValueError(f"window {i} has {w.size} events, over {max_events}")
        bad = (w >= vocab_size) | ((w < FIRST_EVENT_ID) & (w != UNK_ID))
        if bad.any():
            raise ValueError(f"window {i} holds token id {int(w[bad][0])}, not an event token")
    return windows


def type_windows(
    model: BertForMaskedLM,
    token_types: Sequence[Sequence[int]],
    windows: Sequence[npt.NDArray[np.int64]],
) -> list[npt.NDArray[np.int64]]:
    """The windows' token types as int64 arrays; ValueError when one does not match its
    window's length or is not one of the model's types."""
    n_types = int(model.config.type_vocab_size)
    if len(token_types) != len(windows):
        raise ValueError(f"{len(token_types)} token-type rows for {len(windows)} windows")
    out = [np.asarray(t, dtype=np.int64).reshape(-1) for t in token_types]
    for i, (t, w) in enumerate(zip(out, windows, strict=True)):
        if t.size != w.size:
            raise ValueError(f"window {i} has {w.size} events but {t.size} token types")
        if t.size and (t.min() < 0 or t.max() >= n_types):
            raise ValueError(f"window {i} holds a token type outside [0, {n_types})")
    return out


def mask_groups(n_events: int, groups: int) -> list[list[int]]:
    """Positions masked in each pass: position i in group i % groups; empty groups dropped.

    Every position is in exactly one group, so each event is predicted exactly once.
    """
    if n_events < 0 or groups < 1:
        raise ValueError(f"need n_events >= 0 and groups >= 1, got {n_events}, {groups}")
    return [list(range(g, n_events, groups)) for g in range(min(groups, n_events))]


@dataclass(frozen=True)
class Passes:
    """All forward passes for a list of windows, flattened.

    Events of all windows are concatenated into `ids` (window w at starts[w]:starts[w] +
    lengths[w]). Pass p covers window win[p] and masks the events whose group equals
    group[p]; an event whose group no pass of its window has is never predicted.
    """

    ids: npt.NDArray[np.int64]
    event_group: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]
    win: npt.NDArray[np.int64]
    group: npt.NDArray[np.int64]
    types: npt.NDArray[np.int64] | None = None
    """Per event (as `ids`), its token type; None: the model's default (all 0)."""

    @property
    def window_of(self) -> npt.NDArray[np.int64]:
        """Each event's window index."""
        return np.repeat(np.arange(self.lengths.size, dtype=np.int64), self.lengths)


def full_passes(
    windows: Sequence[npt.NDArray[np.int64]],
    groups: int,
    run: npt.NDArray[np.bool_] | None = None,
    types: Sequence[npt.NDArray[np.int64]] | None = None,
) -> Passes:
    """`mask_groups` for every window: min(groups, events) passes each, together masking
    every event once. `run[w]` False: window w gets no pass (its events stay in `ids`,
    never predicted). `types[w]`: window w's token types, one per event."""
    lengths = np.array([w.size for w in windows], dtype=np.int64)
    starts = np.zeros(len(windows), dtype=np.int64)
    if len(windows) > 1:
        starts[1:] = np.cumsum(lengths)[:-1]
    ids = np.concatenate(windows) if len(windows) else np.zeros(0, dtype=np.int64)
    # Position within its window, modulo k: the group that masks it.
    within = np.arange(ids.size, dtype=np.int64) - np.repeat(starts, lengths)
    event_group = within % groups
    n_passes = np.minimum(lengths, groups)
    if run is not None:
        n_passes = np.where(run, n_passes, 0)
    win = np.repeat(np.arange(len(windows), dtype=np.int64), n_passes)
    group = np.arange(win.size, dtype=np.int64) - np.repeat(
        np.cumsum(n_passes) - n_passes, n_passes
    )
    flat_types = None
    if types is not None:
        flat_types = np.concatenate(types) if len(types) else np.zeros(0, dtype=np.int64)
    return Passes(ids, event_group, starts, lengths, win, group, flat_types)


@dataclass(frozen=True)
class Predictions:
    """Per event (flat over all windows, as `Passes.ids`): the true token's log-probability
    (NaN where not predicted), its rank among the event tokens (-1 where not predicted or
    not asked for) and the model's top-k event tokens with their probabilities (-1 and 0
    where not predicted)."""

    logp: npt.NDArray[np.float32]
    rank: npt.NDArray[np.int64]
    top_ids: npt.NDArray[np.int64]
    top_p: npt.NDArray[np.float32]


def event_rank(logp: torch.Tensor, true_ids: torch.Tensor) -> torch.Tensor:
    """Rank of each true token among the event tokens (0: first choice; ties favour it).

    `logp` is (n, vocab) log-probabilities (or logits) at the masked positions.
    """
    true = logp.gather(1, true_ids.unsqueeze(1))
    return (logp[:, FIRST_EVENT_ID:] > true).sum(dim=1)


def predict(
    model: BertForMaskedLM,
    passes: Passes,
    device: torch.device,
    *,
    top_k: int,
    max_batch_tokens: int,
    want_rank: bool = False,
) -> Predictions:
    """Run every pass. The model is put in eval mode for the call and its mode restored
    after; with no pass to run, the model is not called."""
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    was_training = model.training
    model.train(False)
    try:
        with torch.inference_mode():
            return _predict(model, passes, device, top_k, max_batch_tokens, want_rank)
    finally:
        model.train(was_training)


def _predict(
    model: BertForMaskedLM,
    passes: Passes,
    device: torch.device,
    top_k: int,
    max_batch_tokens: int,
    want_rank: bool,
) -> Predictions:
    n_total = passes.ids.size
    logp = np.full(n_total, np.nan, dtype=np.float32)
    rank = np.full(n_total, -1, dtype=np.int64)
    top_ids = np.full((n_total, top_k), -1, dtype=np.int64)
    top_p = np.zeros((n_total, top_k), dtype=np.float32)
    if passes.win.size == 0:
        return Predictions(logp, rank, top_ids, top_p)

    pass_len = passes.lengths[passes.win] + 2
    # Longest first, a window's passes together: each batch pads to its first row's length.
    order = np.lexsort((passes.group, passes.win, -pass_len))
    index_chunks: list[npt.NDArray[np.int64]] = []
    device_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    i = 0
    while i < order.size:
        seq_len = int(pass_len[order[i]])
        rows = order[i : i + max(1, max_batch_tokens // seq_len)]
        i += rows.size
        input_ids, attention, masked, event_idx, true_ids = _batch_arrays(passes, rows, seq_len)
        if event_idx.size == 0:
            continue
        types_t = None
        if passes.types is not None:
            types = _batch_types(passes, passes.types, rows, seq_len)
            types_t = torch.from_numpy(types).to(device, non_blocking=True)
        ids_t = torch.from_numpy(input_ids).to(device, non_blocking=True)
        att_t = torch.from_numpy(attention).to(device, non_blocking=True)
        pos_t = torch.from_numpy(masked).to(device, non_blocking=True)
        true_t = torch.from_numpy(true_ids).to(device, non_blocking=True)
        with autocast_for(device):
            logits = masked_logits(model, ids_t, att_t, pos_t, types_t)
        lp = torch.log_softmax(logits.float(), dim=-1)
        lp_true = lp.gather(1, true_t.unsqueeze(1)).squeeze(1)
        if top_k > 0:
            # Specials are never an explanation: rank event tokens only.
            top_lp, top_i = torch.topk(lp[:, FIRST_EVENT_ID:], top_k, dim=-1)
            top_i = top_i + FIRST_EVENT_ID
        else:
            top_lp = lp.new_zeros((lp.shape[0], 0))
            top_i = true_t.new_zeros((lp.shape[0], 0))
        rk = event_rank(lp, true_t) if want_rank else true_t.new_full(true_t.shape, -1)
        # Results stay on the device until the end: one small copy back, not one per batch.
        device_out.append((lp_true, rk, top_i, top_lp.exp()))
        index_chunks.append(event_idx)

    if device_out:
        idx = np.concatenate(index_chunks)
        logp[idx] = torch.cat([o[0] for o in device_out]).cpu().numpy()
        rank[idx] = torch.cat([o[1] for o in device_out]).cpu().numpy()
        top_ids[idx] = torch.cat([o[2] for o in device_out]).cpu().numpy()
        top_p[idx] = torch.cat([o[3] for o in device_out]).cpu().numpy()
    return Predictions(logp, rank, top_ids, top_p)


def _batch_arrays(
    passes: Passes, rows: npt.NDArray[np.int64], seq_len: int
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """Padded model inputs for the passes in `rows`, built with array ops (no per-row loop).

    Returns input_ids with [MASK] placed, attention mask, the bool mask of masked positions,
    the flat event index of each masked position (row-major, matching `hidden[positions]`)
    and the true token id there.
    """
    win = passes.win[rows]
    n = passes.lengths[win]
    b = rows.size
    pos = np.arange(seq_len, dtype=np.int64)[None, :]
    event = pos - 1
    is_event = (event >= 0) & (event < n[:, None])
    src = np.clip(passes.starts[win][:, None] + event, 0, max(passes.ids.size - 1, 0))
    input_ids = np.where(is_event, passes.ids[src], PAD_ID)
    input_ids[:, 0] = CLS_ID
    input_ids[np.arange(b), n + 1] = SEP_ID
    attention = (pos < (n + 2)[:, None]).astype(np.int64)
    masked = is_event & (passes.event_group[src] == passes.group[rows][:, None])
    event_idx = src[masked]
    true_ids = input_ids[masked]
    input_ids[masked] = MASK_ID
    return input_ids, attention, masked, event_idx, true_ids


def _batch_types(
    passes: Passes, types: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], seq_len: int
) -> npt.NDArray[np.int64]:
    """The token types of `_batch_arrays`' rows: each event's own, 0 elsewhere."""
    win = passes.win[rows]
    n = passes.lengths[win]
    event = np.arange(seq_len, dtype=np.int64)[None, :] - 1
    is_event = (event >= 0) & (event < n[:, None])
    src = np.clip(passes.starts[win][:, None] + event, 0, max(types.size - 1, 0))
    return np.where(is_event, types[src] if types.size else 0, 0).astype(np.int64)
