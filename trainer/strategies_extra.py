"""A scoring strategy beyond trainer/scoring.py's: the *rank* of each true event.

"rank" runs exactly the passes of "full" (k deterministic mask groups, every event masked
once), but an event's surprise is the rank of its true token among the model's event
predictions at that position (0: the model's first choice) instead of its NLL, and the
window score is the largest rank in the window. An [UNK] event gets the worst rank there
is (the number of event tokens).

Why a rank: the NLL of an event mixes two things, how rare it is and whether it fits its
context. A rare but legitimate event (HDFS's replication block, in 0.5% of normal sessions)
has an NLL as high as an event that never happens in that context, so the normal sessions
holding it sit among the anomalies. Its rank, though, stays moderate (the model still
ranks it above the events that never occur there), while an event the context rules out
ranks near the bottom. DeepLog's top-g rule and LogBERT's use the same insight with a
fixed g and a random partial mask; here every event is checked, and the threshold on the
max rank is calibrated like any other score.

To plug it into the shared function (trainer/scoring.py), three small changes:
1. `_Predictions` gains `rank: np.ndarray` (int64 per event, -1 where not predicted), and
   `_predict` fills it per batch with `event_rank(lp, true_t)` (below), beside `lp_true`.
2. `Aggregate` gains "maxrank"; `ScoringStrategy.__post_init__` accepts it (kind "full").
3. `score_token_windows`, for aggregate "maxrank", scores a window as
   `window_max_rank(rank[s:s+n], ids[s:s+n], n_events)` (below) and keeps `nll` as is, so
   explanations (most surprising events) are unchanged.
Until then, `score_rank_windows` here runs the same passes with the scorer's own helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from transformers import BertForMaskedLM

from schemas.vocab import UNK_ID
from schemas.windows import MAX_EVENTS
from trainer.model import autocast_for, masked_logits
from trainer.scoring import FIRST_EVENT_ID, ScoringStrategy, _batch_arrays, _build_passes

IntArray = npt.NDArray[np.int64]


def event_rank(logp: torch.Tensor, true_ids: torch.Tensor) -> torch.Tensor:
    """Rank of each true token among the event tokens (0 = first choice; ties favour it).

    `logp` is (n, vocab) log-probabilities (or logits) at the masked positions.
    """
    true = logp.gather(1, true_ids.unsqueeze(1))
    return (logp[:, FIRST_EVENT_ID:] > true).sum(dim=1)


def window_max_rank(ranks: npt.ArrayLike, ids: npt.ArrayLike, n_event_tokens: int) -> float:
    """The largest rank in a window; an [UNK] event ranks last (n_event_tokens)."""
    r = np.asarray(ranks, dtype=np.int64).copy()
    r[np.asarray(ids) == UNK_ID] = n_event_tokens
    r = r[r >= 0]
    return float(r.max()) if r.size else 0.0


@dataclass
class RankResult:
    score: float
    """The window's max rank."""
    rank: IntArray
    """Per event; [UNK] events get the number of event tokens."""


def score_rank_windows(
    model: BertForMaskedLM,
    token_windows: Sequence[Sequence[int]],
    groups: int,
    device: torch.device,
    *,
    max_batch_tokens: int = 16_384,
) -> list[RankResult]:
    """Score windows of event token ids (no [CLS]/[SEP]) by max rank; results in order.

    The same passes and batches as `score_token_windows` with strategy "full".
    """
    windows = [np.asarray(w, dtype=np.int64).reshape(-1) for w in token_windows]
    if any(w.size > MAX_EVENTS for w in windows):
        raise ValueError(f"a window has more than {MAX_EVENTS} events")
    passes = _build_passes(windows, ScoringStrategy(groups=groups))
    rank = np.full(passes.ids.size, -1, dtype=np.int64)
    if passes.win.size:
        pass_len = passes.lengths[passes.win] + 2
        order = np.lexsort((passes.group, passes.win, -pass_len))
        was_training = model.training
        model.train(False)
        try:
            with torch.inference_mode():
                i = 0
                while i < order.size:
                    seq_len = int(pass_len[order[i]])
                    rows = order[i : i + max(1, max_batch_tokens // seq_len)]
                    i += rows.size
                    ids, att, masked, event_idx, true_ids = _batch_arrays(passes, rows, seq_len)
                    if event_idx.size == 0:
                        continue
                    with autocast_for(device):
                        logits = masked_logits(
                            model,
                            torch.from_numpy(ids).to(device),
                            torch.from_numpy(att).to(device),
                            torch.from_numpy(masked).to(device),
                        )
                    true_t = torch.from_numpy(true_ids).to(device)
                    rank[event_idx] = event_rank(logits.float(), true_t).cpu().numpy()
        finally:
            model.train(was_training)
    n_event_tokens = int(model.config.vocab_size) - FIRST_EVENT_ID
    out: list[RankResult] = []
    for s, n in zip(passes.starts, passes.lengths, strict=True):
        r = rank[s : s + n].copy()
        ids = passes.ids[s : s + n]
        r[ids == UNK_ID] = n_event_tokens
        out.append(RankResult(window_max_rank(r, ids, n_event_tokens), r))
    return out
