"""Window scoring: the one function the trainer, the live stream and replay all score with.

A window is up to 510 event token ids; the model sees [CLS] + ids + [SEP]. Two strategies:

- "full" (default): k passes per window, pass g masking the events at positions i with
  i % k == g, so every event gets exactly one masked prediction. An event's surprise is the
  negative log-likelihood (NLL) of its true token there; the window score aggregates them
  (mean, max or mean of the top n). Aggregate "maxrank" instead scores the window by the
  largest *rank* of a true event among the model's event predictions (0: its first choice;
  an [UNK] event ranks last). The NLL mixes how rare an event is with whether it fits its
  context: a rare but legitimate event (HDFS's replication block, in 0.5% of normal
  sessions) has an NLL as high as an event that never happens there, while its rank stays
  moderate, and an event the context rules out ranks near the bottom. DeepLog's top-g rule
  rests on the same insight with a fixed g; here the threshold on the max rank is
  calibrated like any other score. Explanations (the most surprising events) still come
  from the NLL.
- "logbert": LogBERT's rule. One pass with a random `mask_ratio` of the events masked,
  seeded from `seed` and the window's content so a window always gets the same mask. A
  masked event "misses" when its true token is not among the model's top-g predictions.
  The score is the fraction of masked events that miss, as in LogBERT's reference code
  (`undetected > masked * threshold`): a fraction, unlike a count, means the same for a
  20-event and a 300-event window, so one threshold on `score` fits both.

Either strategy may add `known_counts`: a window whose event counts equal a training
window's (trainer/known_counts.py) scores 0, whatever the order of its events; with
`known_pairs` too, only when each pair of its consecutive events also occurred in training.
A "full" strategy may add `count_ceilings`: an occurrence of an event beyond its count
ceiling (what enough training windows held of it) scores like an [UNK] event (its NLL is
`unk_nll`, it ranks last).

`WindowScorer` wraps a loaded bundle (model, vocab, calibration) and turns `Window` records
into `Score` records. When the bundle's vocab holds the session-end marker, it appends the
marker to the windows trainer/end_marker.py's rule marks, as the trainer did; an
explanation at position n_events is that marker ("the session ended here"). It serializes
callers with a lock: the stream calls it from one worker thread.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
import torch
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, VOCAB, Calibration, verify_bundle
from schemas.errors import BundleError, DecodeError
from schemas.scores import Expected, Score, SurprisingEvent
from schemas.vocab import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIALS, UNK_ID, Vocab
from schemas.windows import MAX_EVENTS, Window
from trainer.end_marker import END_EVENT, encode_window, uses_end_marker
from trainer.known_counts import KnownMixes, past_ceiling
from trainer.model import autocast_for, device_for, load_model, masked_logits

log = structlog.get_logger(__name__)

FIRST_EVENT_ID = len(SPECIALS)

# -log(1e-9): the NLL of an event the model gives a one-in-a-billion chance. An unknown
# event gets this, and a known event's NLL is capped at it, so [UNK] is never less
# surprising than a known event, one event can add at most this much to a window, and the
# value does not depend on the vocab size (log(10_000) = 9.2 would rank below a known event
# the model has learned to rule out).
DEFAULT_UNK_NLL = -math.log(1e-9)

Kind = Literal["full", "logbert"]
Aggregate = Literal["mean", "max", "topn", "maxrank"]
_KINDS = ("full", "logbert")
_AGGREGATES = ("mean", "max", "topn", "maxrank")


@dataclass(frozen=True)
class ScoringStrategy:
    """How a window's score is computed. Stored in calibration.json so serving matches it."""

    kind: Kind = "full"
    """"full": every event masked once over `groups` passes; "logbert": one random mask."""
    groups: int = 6
    """Passes per window for "full". Pass g masks positions i % groups == g, so 1/6 = 17%
    of the events are masked in each, close to the 15% the model was trained with: the
    context it sees when scoring looks like the context it learned from. More groups give
    each prediction more context but cost one forward pass per group (DEFAULT_STRATEGY uses
    10, by measurement)."""
    aggregate: Aggregate = "mean"
    """How "full" turns per-event predictions into a window score: "mean", "max" or "topn"
    of the NLLs, or "maxrank", the largest rank of a true event (see the module doc)."""
    top_n: int = 3
    """For aggregate="topn": the mean of the n largest NLLs."""
    mask_ratio: float = 0.15
    """For "logbert": the fraction of events masked (at least one per window)."""
    top_g: int = 6
    """For "logbert": a masked event misses when its true token is not in the top g
    (LogBERT's reference code uses 6 candidates on HDFS)."""
    r: float | None = None
    """For "logbert": a fixed miss-fraction threshold (anomalous when score > r). When
    None, calibration picks the threshold from a quantile of normal scores, as for "full"."""
    n_surprising: int = 5
    """How many of a window's most surprising events to explain."""
    top_k_expected: int = 3
    """How many expected events to list for each surprising one."""
    unk_nll: float = DEFAULT_UNK_NLL
    """The NLL of an [UNK] event, and the cap on any event's NLL (see DEFAULT_UNK_NLL)."""
    seed: int = 0
    """For "logbert": mixed with each window's content hash to seed its mask."""
    known_counts: bool = False
    """A window whose event counts (end marker included) equal a training window's scores
    0: the order of a known mix of events is not an anomaly. Needs the training windows'
    mixes (the bundle's calibration.json holds them); order-only anomalies go unseen."""
    known_pairs: bool = False
    """With `known_counts`: a known mix scores 0 only when every pair of its consecutive
    events (end marker included) also occurred in training, so a swapped step in a
    sequential flow is still scored while free interleavings of seen steps are not."""
    count_ceilings: bool = False
    """For "full": an occurrence of an event beyond its count ceiling (the most of it that
    enough training windows held) scores like an [UNK] event. Events whose count has a long
    tail get no ceiling (trainer/known_counts.py). Needs the ceilings in calibration.json."""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if self.aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {_AGGREGATES}, got {self.aggregate!r}")
        for name in ("groups", "top_n", "top_g"):
            _check_int(name, getattr(self, name), 1)
        for name in ("n_surprising", "top_k_expected", "seed"):
            _check_int(name, getattr(self, name), 0)
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1], got {self.mask_ratio}")
        if self.r is not None and not 0.0 <= self.r < 1.0:
            raise ValueError(f"r is a miss fraction and must be in [0, 1), got {self.r}")
        if not (math.isfinite(self.unk_nll) and self.unk_nll > 0):
            raise ValueError(f"unk_nll must be finite and > 0, got {self.unk_nll}")
        if self.known_pairs and not self.known_counts:
            raise ValueError("known_pairs refines known_counts: set both")
        if self.count_ceilings and self.kind != "full":
            raise ValueError("count_ceilings applies to the 'full' kind only")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ScoringStrategy:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"unknown scoring strategy keys: {unknown}")
        values = dict(obj)
        for name in ("mask_ratio", "unk_nll"):
            if isinstance(values.get(name), int) and not isinstance(values[name], bool):
                values[name] = float(values[name])  # JSON writes 1.0 as 1 in some encoders
        if isinstance(values.get("r"), int) and not isinstance(values["r"], bool):
            values["r"] = float(values["r"])
        return cls(**values)


def missing_lookup(strategy: ScoringStrategy, known: KnownMixes | None) -> str | None:
    """Why `known` (a bundle's record of its training windows) cannot serve `strategy`, or
    None when it can."""
    if strategy.known_counts and known is None:
        return "the strategy treats known event mixes as normal, but the calibration lists none"
    if strategy.count_ceilings and (known is None or known.ceilings is None):
        return (
            "the strategy scores events past their count ceilings, but the calibration records none"
        )
    return None


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


DEFAULT_STRATEGY = ScoringStrategy(
    kind="full",
    groups=10,
    aggregate="max",
    known_counts=True,
    known_pairs=True,
    count_ceilings=True,
)
"""What `logad train` calibrates and records in a new bundle, so `serve` scores with it:
of the strategies that still see the order of events, the one with the best mean F1 at the
calibrated threshold over three HDFS seeds (0.984 with thresholds calibrated as if every mix
were novel; 0.914 without count ceilings; README, Detection quality); in `make demo` on
2026-11-29 it caught 59 of 60 anomalies with 1 false alert. Known mixes without `known_pairs`
scored better still on HDFS (0.991) but cannot see a swapped step (`logad train
--score-known-pairs false`). Ten groups rather than six: each prediction sees more context,
for about 1.6x the forward passes of k=6 on long windows."""


@dataclass(frozen=True)
class SurprisingToken:
    position: int
    """Index of the event within the window (0-based, excluding [CLS])."""
    token_id: int
    nll: float
    expected: list[tuple[int, float]]
    """(token id, probability) of the model's top-k event tokens at this position."""


@dataclass
class WindowResult:
    score: float
    score_as_novel: float
    """The score were the window's mix not known: `score`, unless the strategy's known
    mixes scored the window 0. Thresholds are calibrated on it (trainer/calibration.py)."""
    nll: np.ndarray
    """Per event, float32. NaN where the strategy made no prediction (unmasked, "logbert")."""
    surprising: list[SurprisingToken]
    """Most surprising first (ties by position)."""
    known: bool = False
    """The window's event counts equal a training window's (only looked up when the
    caller passes the known mixes)."""
    known_in_order: bool = False
    """`known`, and every pair of its consecutive tokens occurred in training."""
    past_ceiling: tuple[int, ...] = ()
    """Positions of the events beyond their event's count ceiling (only looked up when
    the caller passes ceilings); a `count_ceilings` strategy scored them like [UNK]."""


# ---------------------------------------------------------------------------- pure helpers


def mask_groups(n_events: int, groups: int) -> list[list[int]]:
    """Positions masked in each pass: position i in group i % groups; empty groups dropped.

    Every position is in exactly one group, so each event is predicted exactly once.
    """
    if n_events < 0 or groups < 1:
        raise ValueError(f"need n_events >= 0 and groups >= 1, got {n_events}, {groups}")
    return [list(range(g, n_events, groups)) for g in range(min(groups, n_events))]


def aggregate(nll: np.ndarray, strategy: ScoringStrategy) -> float:
    """A window score from per-event NLLs (NaNs, events not predicted, are ignored).

    An empty window (or one with no predictions) scores 0.0. "maxrank" needs ranks, not
    NLLs: `score_token_windows` computes it with `window_max_rank`.
    """
    v = np.asarray(nll, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return 0.0
    if strategy.aggregate == "mean":
        return float(v.mean())
    if strategy.aggregate == "max":
        return float(v.max())
    if strategy.aggregate == "maxrank":
        raise ValueError("aggregate 'maxrank' scores ranks, not NLLs: use window_max_rank")
    n = min(strategy.top_n, v.size)
    return float(np.sort(v)[-n:].mean())


def exempt(strategy: ScoringStrategy, known: bool, known_in_order: bool) -> bool:
    """Whether the strategy's known mixes score a window 0, given what `WindowResult`
    reports of it (`known`, `known_in_order`)."""
    return strategy.known_counts and (known_in_order if strategy.known_pairs else known)


def final_score(
    strategy: ScoringStrategy,
    nll: np.ndarray,
    base: float,
    n_event_tokens: int,
    *,
    known: bool = False,
    known_in_order: bool = False,
    past: Sequence[int] = (),
) -> float:
    """A window's score under `strategy`: the one place the known-mix and count-ceiling
    rules apply. `nll` are its per-event NLLs, `base` its max rank ("maxrank") or miss
    fraction ("logbert"), both as scored without count ceilings; `known`, `known_in_order`
    and `past` are what `WindowResult` reports. So a result scored with one strategy can be
    scored with another without a forward pass (bench/quality_hdfs.py does)."""
    if exempt(strategy, known, known_in_order):
        return 0.0
    capped = strategy.count_ceilings and len(past) > 0
    if strategy.kind == "logbert":
        return base
    if strategy.aggregate == "maxrank":
        return float(n_event_tokens) if capped else base  # past a ceiling ranks last
    if capped:
        nll = nll.copy()
        nll[list(past)] = np.float32(strategy.unk_nll)
    return aggregate(nll, strategy)


def most_surprising(nll: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n largest finite NLLs, largest first, ties by position."""
    finite = np.flatnonzero(~np.isnan(nll))
    order = np.argsort(-nll[finite], kind="stable")
    return finite[order[:n]]


def logbert_mask(token_ids: np.ndarray, strategy: ScoringStrategy) -> np.ndarray:
    """Which events "logbert" masks: a seeded random `mask_ratio` (at least one) plus every
    [UNK]. The seed mixes `strategy.seed` with the window's content, so a window always gets
    the same mask, wherever and whenever it is scored."""
    n = int(token_ids.size)
    masked = np.zeros(n, dtype=bool)
    if n == 0:
        return masked
    digest = hashlib.blake2b(token_ids.astype("<i8").tobytes(), digest_size=8).digest()
    seed = (int.from_bytes(digest, "little") ^ (strategy.seed * 0x9E3779B97F4A7C15)) % (1 << 63)
    gen = torch.Generator().manual_seed(seed)
    m = max(1, round(strategy.mask_ratio * n))
    masked[torch.randperm(n, generator=gen)[:m].numpy()] = True
    masked |= token_ids == UNK_ID
    return masked


# ---------------------------------------------------------------------------- batched scoring


@dataclass(frozen=True)
class _Passes:
    """All forward passes for a list of windows, flattened.

    Events of all windows are concatenated into `ids` (window w at starts[w]:starts[w] +
    lengths[w]). Pass p covers window win[p] and masks the events whose group equals
    group[p].
    """

    ids: np.ndarray
    event_group: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    win: np.ndarray
    group: np.ndarray


def _build_passes(windows: list[np.ndarray], strategy: ScoringStrategy) -> _Passes:
    lengths = np.array([w.size for w in windows], dtype=np.int64)
    starts = np.zeros(len(windows), dtype=np.int64)
    if len(windows) > 1:
        starts[1:] = np.cumsum(lengths)[:-1]
    ids = np.concatenate(windows) if windows else np.zeros(0, dtype=np.int64)
    if strategy.kind == "full":
        # Position within its window, modulo k: the group that masks it.
        within = np.arange(ids.size, dtype=np.int64) - np.repeat(starts, lengths)
        event_group = within % strategy.groups
        n_passes = np.minimum(lengths, strategy.groups)
        win = np.repeat(np.arange(len(windows), dtype=np.int64), n_passes)
        group = np.arange(win.size, dtype=np.int64) - np.repeat(
            np.cumsum(n_passes) - n_passes, n_passes
        )
    else:
        # One pass; the masked events are group 0, the rest group 1 (never masked).
        event_group = np.ones(ids.size, dtype=np.int64)
        for w, s in zip(windows, starts, strict=True):
            event_group[s : s + w.size][logbert_mask(w, strategy)] = 0
        win = np.flatnonzero(lengths > 0).astype(np.int64)
        group = np.zeros(win.size, dtype=np.int64)
    return _Passes(ids, event_group, starts, lengths, win, group)


@dataclass(frozen=True)
class _Predictions:
    """Per event (flat over all windows): true-token log-prob, its rank among the event
    tokens (-1 where not predicted or not asked for) and the top-k event tokens."""

    logp: np.ndarray
    rank: np.ndarray
    top_ids: np.ndarray
    top_p: np.ndarray


def event_rank(logp: torch.Tensor, true_ids: torch.Tensor) -> torch.Tensor:
    """Rank of each true token among the event tokens (0: first choice; ties favour it).

    `logp` is (n, vocab) log-probabilities (or logits) at the masked positions.
    """
    true = logp.gather(1, true_ids.unsqueeze(1))
    return (logp[:, FIRST_EVENT_ID:] > true).sum(dim=1)


def window_max_rank(rank: np.ndarray, ids: np.ndarray, n_event_tokens: int) -> float:
    """The largest rank in a window; an [UNK] event ranks last (`n_event_tokens`), and an
    event not predicted (-1) is ignored. An empty window scores 0.0."""
    r = np.where(ids == UNK_ID, n_event_tokens, rank)
    r = r[r >= 0]
    return float(r.max()) if r.size else 0.0


def _predict(
    model: BertForMaskedLM,
    passes: _Passes,
    device: torch.device,
    top_k: int,
    max_batch_tokens: int,
    want_rank: bool = False,
) -> _Predictions:
    n_total = passes.ids.size
    logp = np.full(n_total, np.nan, dtype=np.float32)
    rank = np.full(n_total, -1, dtype=np.int64)
    top_ids = np.full((n_total, top_k), -1, dtype=np.int64)
    top_p = np.zeros((n_total, top_k), dtype=np.float32)
    if passes.win.size == 0:
        return _Predictions(logp, rank, top_ids, top_p)

    pass_len = passes.lengths[passes.win] + 2
    # Longest first, a window's passes together: each batch pads to its first row's length.
    order = np.lexsort((passes.group, passes.win, -pass_len))
    index_chunks: list[np.ndarray] = []
    device_out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    i = 0
    while i < order.size:
        seq_len = int(pass_len[order[i]])
        rows = order[i : i + max(1, max_batch_tokens // seq_len)]
        i += rows.size
        input_ids, attention, masked, event_idx, true_ids = _batch_arrays(passes, rows, seq_len)
        if event_idx.size == 0:
            continue
        ids_t = torch.from_numpy(input_ids).to(device, non_blocking=True)
        att_t = torch.from_numpy(attention).to(device, non_blocking=True)
        pos_t = torch.from_numpy(masked).to(device, non_blocking=True)
        true_t = torch.from_numpy(true_ids).to(device, non_blocking=True)
        with autocast_for(device):
            logits = masked_logits(model, ids_t, att_t, pos_t)
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
    return _Predictions(logp, rank, top_ids, top_p)


def _batch_arrays(
    passes: _Passes, rows: np.ndarray, seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def score_token_windows(
    model: BertForMaskedLM,
    token_windows: Sequence[Sequence[int]],
    strategy: ScoringStrategy,
    device: torch.device,
    *,
    max_batch_tokens: int = 32768,
    known: KnownMixes | None = None,
    skip_exempt: bool = False,
) -> list[WindowResult]:
    """Score windows of event token ids (no [CLS]/[SEP]); results in input order.

    `known`: what the training windows held. Each result then says whether its window is a
    known mix (in known order) and which of its events are past their count ceiling; a
    strategy with `known_counts` scores a known mix 0, and one with `count_ceilings` scores
    an event past its ceiling like [UNK] (both need `known`).

    `skip_exempt`: a window the strategy's known mixes score 0 gets no forward pass, since
    nothing the model says changes its score. Its result then has no NLLs (NaN), no
    surprising events and `score_as_novel` NaN, so it cannot be calibrated on.

    Passes of all windows are sorted by length and packed into batches of at most
    `max_batch_tokens` padded tokens (one pass per batch when a pass alone exceeds it).
    The LM head runs only at masked positions; log-softmax is taken in float32.
    The model is put in eval mode for the call and its mode restored after.
    """
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    if why := missing_lookup(strategy, known):
        raise ValueError(why)
    vocab_size = int(model.config.vocab_size)
    max_events = min(MAX_EVENTS, int(model.config.max_position_embeddings) - 2)
    windows = [np.asarray(w, dtype=np.int64).reshape(-1) for w in token_windows]
    for i, w in enumerate(windows):
        if w.size > max_events:
            raise ValueError(f"window {i} has {w.size} events, over {max_events}")
        bad = (w >= vocab_size) | ((w < FIRST_EVENT_ID) & (w != UNK_ID))
        if bad.any():
            raise ValueError(f"window {i} holds token id {int(w[bad][0])}, not an event token")
    # Each window's mix is matched once, here.
    matches = [known.match(w) if known is not None else (False, False) for w in windows]
    skip = [skip_exempt and exempt(strategy, *m) for m in matches]
    if not any(skip):
        return _model_results(model, windows, matches, strategy, device, max_batch_tokens, known)
    assert known is not None  # only known mixes are exempt
    rest = [i for i, e in enumerate(skip) if not e]
    scored = iter(
        _model_results(
            model,
            [windows[i] for i in rest],
            [matches[i] for i in rest],
            strategy,
            device,
            max_batch_tokens,
            known,
        )
        if rest
        else []
    )
    return [
        _exempt_result(w, m, known) if e else next(scored)
        for w, m, e in zip(windows, matches, skip, strict=True)
    ]


def _model_results(
    model: BertForMaskedLM,
    windows: list[np.ndarray],
    matches: list[tuple[bool, bool]],
    strategy: ScoringStrategy,
    device: torch.device,
    max_batch_tokens: int,
    known: KnownMixes | None,
) -> list[WindowResult]:
    """`score_token_windows` for checked windows, through the model; `matches[j]` is
    `known.match(windows[j])` ((False, False) without `known`)."""
    vocab_size = int(model.config.vocab_size)
    top_k = min(vocab_size - FIRST_EVENT_ID, strategy.top_k_expected)
    if strategy.kind == "logbert":
        top_k = min(vocab_size - FIRST_EVENT_ID, max(top_k, strategy.top_g))
    passes = _build_passes(windows, strategy)

    was_training = model.training
    model.train(False)
    try:
        with torch.inference_mode():
            pred = _predict(
                model,
                passes,
                device,
                top_k,
                max_batch_tokens,
                want_rank=strategy.aggregate == "maxrank" and strategy.kind == "full",
            )
    finally:
        model.train(was_training)

    # Vectorized over all events: NLL, [UNK] override, cap, and logbert misses.
    past = (
        past_ceiling(passes.ids, np.repeat(np.arange(len(windows)), passes.lengths), known.limits)
        if known is not None and known.ceilings
        else np.zeros(passes.ids.size, dtype=bool)
    )
    # The stored NLLs show events past a ceiling as the strategy scores them, for explanations.
    unseen = (passes.ids == UNK_ID) | (past if strategy.count_ceilings else False)
    nll = np.minimum(-pred.logp, np.float32(strategy.unk_nll))  # NaN stays NaN
    nll[unseen & ~np.isnan(nll)] = np.float32(strategy.unk_nll)
    in_top_g = (pred.top_ids[:, : strategy.top_g] == passes.ids[:, None]).any(axis=1)
    miss = ~np.isnan(nll) & ~in_top_g

    log.debug(
        "windows_scored",
        windows=len(windows),
        events=int(passes.ids.size),
        passes=int(passes.win.size),
        kind=strategy.kind,
    )
    n_event_tokens = vocab_size - FIRST_EVENT_ID
    results: list[WindowResult] = []
    for j, s in enumerate(passes.starts):
        n = int(passes.lengths[j])
        win_nll = nll[s : s + n].astype(np.float32, copy=True)
        if strategy.kind == "logbert":
            predicted = int((~np.isnan(win_nll)).sum())
            base = float(miss[s : s + n].sum()) / predicted if predicted else 0.0
        elif strategy.aggregate == "maxrank":
            base = window_max_rank(pred.rank[s : s + n], passes.ids[s : s + n], n_event_tokens)
        else:
            base = 0.0  # NLL aggregates need only the NLLs
        surprising = [
            SurprisingToken(
                position=int(p),
                token_id=int(passes.ids[s + p]),
                nll=float(win_nll[p]),
                expected=[
                    (int(t), float(q))
                    for t, q in zip(
                        pred.top_ids[s + p, : strategy.top_k_expected],
                        pred.top_p[s + p, : strategy.top_k_expected],
                        strict=True,
                    )
                    if t >= 0
                ],
            )
            for p in most_surprising(win_nll, strategy.n_surprising)
        ]
        mix, in_order = matches[j]
        beyond = tuple(np.flatnonzero(past[s : s + n]).tolist())
        score = final_score(
            strategy,
            win_nll,
            base,
            n_event_tokens,
            known=mix,
            known_in_order=in_order,
            past=beyond,
        )
        as_novel = (
            final_score(strategy, win_nll, base, n_event_tokens, past=beyond)
            if exempt(strategy, mix, in_order)
            else score
        )
        results.append(
            WindowResult(
                score=score,
                score_as_novel=as_novel,
                nll=win_nll,
                surprising=surprising,
                known=mix,
                known_in_order=in_order,
                past_ceiling=beyond,
            )
        )
    return results


def _exempt_result(window: np.ndarray, match: tuple[bool, bool], known: KnownMixes) -> WindowResult:
    """The result of a window its known mix scores 0 (`match`: `known.match(window)`),
    without the model (`skip_exempt`)."""
    mix, in_order = match
    past = (
        past_ceiling(window, np.zeros(window.size, dtype=np.int64), known.limits)
        if known.ceilings
        else np.zeros(window.size, dtype=bool)
    )
    return WindowResult(
        score=0.0,
        score_as_novel=math.nan,
        nll=np.full(window.size, np.nan, dtype=np.float32),
        surprising=[],
        known=mix,
        known_in_order=in_order,
        past_ceiling=tuple(np.flatnonzero(past).tolist()),
    )


# ---------------------------------------------------------------------------- serving


class WindowScorer:
    """A loaded model bundle that scores windows. One caller at a time (a lock enforces it)."""

    def __init__(
        self,
        model: BertForMaskedLM,
        vocab: Vocab,
        strategy: ScoringStrategy,
        threshold: float,
        model_version: str,
        device: torch.device,
        *,
        max_batch_tokens: int = 32768,
        known: KnownMixes | None = None,
        explain_known_mixes: bool = False,
    ) -> None:
        if int(model.config.vocab_size) != len(vocab):
            raise BundleError(
                f"model vocab size {model.config.vocab_size} != vocab.json size {len(vocab)}"
            )
        if why := missing_lookup(strategy, known):
            raise BundleError(f"{model_version}: {why} (retrain, or pick another strategy)")
        # Module.to moves in place; BertForMaskedLM's own `to` wrapper is untyped.
        torch.nn.Module.to(model, device)
        model.train(False)
        self.model = model
        self.vocab = vocab
        self.strategy = strategy
        self.threshold = float(threshold)
        self.model_version = model_version
        self.device = device
        self.max_batch_tokens = max_batch_tokens
        self.end_marker = uses_end_marker(vocab)
        self.known = known
        self.explain_known_mixes = explain_known_mixes
        """Run the model on windows the known-mix rule scores 0, for their surprising
        events; off, they get no forward pass and no explanation (`skip_exempt`)."""
        self._lock = threading.Lock()

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: Path,
        device: str = "auto",
        *,
        max_batch_tokens: int = 32768,
        explain_known_mixes: bool = False,
    ) -> WindowScorer:
        """Verify the bundle's hashes, then load it. Scores with the strategy it was
        calibrated with (calibration.json's `strategy`)."""
        manifest = verify_bundle(bundle_dir)
        try:
            vocab = Vocab.load(bundle_dir / VOCAB)
        except DecodeError as e:
            raise BundleError(f"bundle {manifest.version}: bad {VOCAB}: {e}") from None
        calibration = Calibration.from_json((bundle_dir / CALIBRATION).read_bytes())
        if not calibration.strategy:
            raise BundleError(
                f"bundle {manifest.version}: {CALIBRATION} records no scoring strategy"
            )
        try:
            strategy = ScoringStrategy.from_dict(calibration.strategy)
        except (ValueError, TypeError) as e:
            raise BundleError(f"bundle {manifest.version}: bad scoring strategy: {e}") from None
        dev = device_for(device)
        model = load_model(bundle_dir, dev)
        log.info(
            "scorer_loaded",
            model_version=manifest.version,
            device=str(dev),
            vocab_size=len(vocab),
            threshold=calibration.threshold,
            strategy=strategy.kind,
            aggregate=strategy.aggregate,
            end_marker=END_EVENT in vocab,
        )
        return cls(
            model,
            vocab,
            strategy,
            calibration.threshold,
            manifest.version,
            dev,
            max_batch_tokens=max_batch_tokens,
            known=KnownMixes.of(
                calibration.known_counts, calibration.known_pairs, calibration.count_ceilings
            ),
            explain_known_mixes=explain_known_mixes,
        )

    def score_events(
        self, sequences: Sequence[Sequence[str]], ended: Sequence[bool] | None = None
    ) -> list[WindowResult]:
        """Score windows given as event-id sequences (each at most 510 events), marked as
        the bundle was trained (see the module doc). `ended[i]` False: window i was cut
        while its session may go on, so it gets no end marker (default: all ended)."""
        flags = [True] * len(sequences) if ended is None else ended
        token_windows = [
            encode_window(self.vocab, seq, self.end_marker, e)
            for seq, e in zip(sequences, flags, strict=True)
        ]
        with self._lock:
            return score_token_windows(
                self.model,
                token_windows,
                self.strategy,
                self.device,
                max_batch_tokens=self.max_batch_tokens,
                known=self.known,
                skip_exempt=not self.explain_known_mixes,
            )

    def use_threads(self, n: int) -> None:
        """Score with `n` CPU threads from now on. Call it from the thread that scores:
        torch keeps the count per calling thread (and as the default for new ones)."""
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        """One Score per window, in order; `now_ms` is the wall clock stamped as scored_at."""
        results = self.score_events([w.events for w in windows], [w.ended for w in windows])
        return [self._to_score(w, r, now_ms) for w, r in zip(windows, results, strict=True)]

    def _to_score(self, window: Window, result: WindowResult, now_ms: int) -> Score:
        surprising = tuple(
            SurprisingEvent(
                position=s.position,
                # The window's own id, which for an [UNK] event says what it was.
                event_id=(
                    window.events[s.position] if s.position < len(window.events) else END_EVENT
                ),
                nll=s.nll,
                expected=tuple(Expected(self.vocab.token(t), p) for t, p in s.expected),
            )
            for s in result.surprising
        )
        return Score.for_window(
            window,
            model_version=self.model_version,
            score=result.score,
            threshold=self.threshold,
            surprising=surprising,
            scored_at=now_ms,
        )
