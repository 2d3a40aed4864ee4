"""A DeepLog-style baseline (Du et al., CCS 2017): an LSTM that predicts the next event.

Each event is predicted from the `history` events before it (h = 10 in the paper); it is
"normal" when it is among the model's top-g predictions (g = 9 in the paper), and a session
is anomalous as soon as one of its events is not. That rule needs no threshold, so no test
label can leak into it.

Two choices the paper leaves open, made here and documented:
- A session's start is left-padded with [PAD], so its first events are predicted too.
- With `predict_end` (default on), the model also predicts an end-of-session token ([SEP])
  after the last event. A next-event model otherwise cannot see a session that stops early
  (HDFS's two-event `E5 E22` anomalies are all made of normal events).

The window score is the largest rank (0 = the top prediction) of any true next event, so
`score > g - 1` is the paper's rule; the same score, thresholded at a quantile of the normal
validation scores, gives a calibrated variant. Sessions longer than 510 events arrive as
separate windows from the harness and are each scored on their own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
import torch
from torch import nn

from schemas.vocab import PAD_ID, SEP_ID, Vocab

log = structlog.get_logger(__name__)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DeepLogConfig:
    history: int = 10
    """Events of history per prediction (the paper's h)."""
    top_g: int = 9
    """An event is normal when it is among the top g predictions (the paper's g)."""
    embed: int = 32
    """Event embedding size (the paper feeds one-hot vectors; an embedding is equivalent)."""
    hidden: int = 64
    """LSTM hidden units (the paper: 64)."""
    layers: int = 2
    """Stacked LSTM layers (the paper: 2)."""
    epochs: int = 10
    batch_size: int = 1024
    lr: float = 2e-3
    predict_end: bool = True
    """Also predict an end-of-session token after the last event (see the module doc)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("history", "top_g", "embed", "hidden", "layers", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeepLogNet(nn.Module):
    def __init__(self, vocab_size: int, cfg: DeepLogConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embed, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.out = nn.Linear(cfg.hidden, vocab_size)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(history))
        logits: torch.Tensor = self.out(h[:, -1])
        return logits


def next_event_pairs(
    windows: Sequence[npt.ArrayLike], history: int, predict_end: bool
) -> tuple[IntArray, IntArray, IntArray]:
    """Pure: (histories (n, h), targets (n,), window index (n,)) for every prediction.

    Window w of length L yields L targets (L + 1 with predict_end, the last being [SEP]);
    target i's history is the h tokens before it, left-padded with [PAD].
    """
    seqs = [np.asarray(w, dtype=np.int64).reshape(-1) for w in windows]
    tails = [np.r_[s, SEP_ID] if predict_end else s for s in seqs]
    counts = np.array([t.size for t in tails], dtype=np.int64)
    total = int(counts.sum())
    x = np.full((total, history), PAD_ID, dtype=np.int64)
    y = np.empty(total, dtype=np.int64)
    owner = np.repeat(np.arange(len(seqs), dtype=np.int64), counts)
    row = 0
    for s, t in zip(seqs, tails, strict=True):
        padded = np.r_[np.full(history, PAD_ID, dtype=np.int64), s]
        # Target i (position i in t) sees padded[i : i + history].
        idx = np.arange(t.size)[:, None] + np.arange(history)[None, :]
        x[row : row + t.size] = padded[idx]
        y[row : row + t.size] = t
        row += t.size
    return x, y, owner


def train_deeplog(
    windows: Sequence[npt.ArrayLike], vocab_size: int, cfg: DeepLogConfig
) -> DeepLogNet:
    """Fit the next-event model on normal windows of token ids (cross entropy, Adam)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = DeepLogNet(vocab_size, cfg)
    x, y, _ = next_event_pairs(windows, cfg.history, cfg.predict_end)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = max(1, -(-len(y) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(y), generator=gen)
        total = 0.0
        for s in range(0, len(y), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            loss = nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        log.info(
            "deeplog_epoch",
            epoch=epoch + 1,
            loss=round(total / len(y), 5),
            seconds=round(time.perf_counter() - t0, 1),
        )
    model.eval()
    return model


def true_ranks(model: DeepLogNet, x: IntArray, y: IntArray, batch: int = 8192) -> IntArray:
    """Rank of each true target among the model's predictions (0 = the top one).

    The rank counts the classes scored strictly higher, so a tie is resolved in the
    target's favour.
    """
    out = np.empty(len(y), dtype=np.int64)
    with torch.inference_mode():
        for s in range(0, len(y), batch):
            logits = model(torch.from_numpy(x[s : s + batch]))
            tgt = torch.from_numpy(y[s : s + batch])
            true = logits.gather(1, tgt[:, None])
            out[s : s + batch] = (logits > true).sum(dim=1).numpy()
    return out


def window_max_rank(
    model: DeepLogNet, windows: Sequence[npt.ArrayLike], cfg: DeepLogConfig
) -> npt.NDArray[np.float64]:
    """Each window's score: the largest rank of any of its true next events."""
    x, y, owner = next_event_pairs(windows, cfg.history, cfg.predict_end)
    scores = np.zeros(len(windows), dtype=np.float64)
    if len(y):
        np.maximum.at(scores, owner, true_ranks(model, x, y).astype(np.float64))
    return scores


class DeepLogScorer:
    """Scores event-id windows for the evaluation harness (`trainer.evaluate`)."""

    def __init__(self, model: DeepLogNet, vocab: Vocab, cfg: DeepLogConfig) -> None:
        self.model = model
        self.vocab = vocab
        self.cfg = cfg

    @property
    def paper_threshold(self) -> float:
        """The top-g rule as a threshold on the max-rank score: flag when rank >= g."""
        return float(self.cfg.top_g - 1)

    def score_events(self, sequences: Sequence[Sequence[str]]) -> list[float]:
        windows = [np.asarray(self.vocab.encode(s), dtype=np.int64) for s in sequences]
        scores: list[float] = window_max_rank(self.model, windows, self.cfg).tolist()
        return scores
