"""The scoring strategies the HDFS quality benchmark compares, built on trainer.scoring's
public pieces (its passes and rules), beside the one the product serves.

`serve` scores a window one way (trainer/scoring: every event masked once over k passes,
the largest event NLL, the known-mix and count-ceiling rules). The benchmark also measures
what else could have been chosen, so the choice stays an answer to a measurement:

- other aggregates of the same passes' NLLs: the mean, the mean of the top n;
- "maxrank": the largest *rank* of a true event among the model's event predictions (0:
  its first choice; an [UNK] event, or one past its count ceiling, ranks last). The NLL
  mixes how rare an event is with whether it fits its context: a rare but legitimate event
  has an NLL as high as an event that never happens there, while its rank stays moderate.
  DeepLog's top-g rule rests on the same insight with a fixed g; here the threshold on the
  max rank is calibrated like any other score;
- "logbert": LogBERT's rule. One pass with a random `mask_ratio` of the events masked,
  seeded from `seed` and the window's content so a window always gets the same mask. A
  masked event "misses" when its true token is not among the model's top-g predictions;
  the score is the fraction of masked events that miss, as in LogBERT's reference code
  (`undetected > masked * threshold`): a fraction, unlike a count, means the same for a
  20-event and a 300-event window, so one threshold fits both.

A run (`score_run`) scores windows once; every variant of that run is then scored from its
results without another forward pass (`window_score`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from transformers import BertForMaskedLM

from schemas.vocab import UNK_ID
from trainer.known_mixes import KnownMixes
from trainer.scoring.passes import FIRST_EVENT_ID, event_windows, full_passes, predict
from trainer.scoring.rules import event_nll, events_past_ceiling, exempt, rule_codes
from trainer.scoring.strategy import DEFAULT_UNK_NLL, ScoringStrategy

Kind = Literal["full", "logbert"]
Aggregate = Literal["mean", "max", "topn", "maxrank"]


@dataclass(frozen=True)
class BenchStrategy:
    """A scoring strategy the benchmark compares; `served` when the product can score with
    it."""

    kind: Kind = "full"
    """"full": every event masked once over `groups` passes; "logbert": one random mask."""
    groups: int = 6
    aggregate: Aggregate = "mean"
    """How "full" turns per-event predictions into a window score: "mean", "max" or "topn"
    of the NLLs, or "maxrank", the largest rank of a true event."""
    top_n: int = 3
    """For aggregate="topn": the mean of the n largest NLLs."""
    mask_ratio: float = 0.15
    """For "logbert": the fraction of events masked (at least one per window)."""
    top_g: int = 6
    """For "logbert": a masked event misses when its true token is not in the top g
    (LogBERT's reference code uses 6 candidates on HDFS)."""
    seed: int = 0
    """For "logbert": mixed with each window's content hash to seed its mask."""
    known_mixes: bool = False
    known_pairs: bool = False
    count_ceilings: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1], got {self.mask_ratio}")
        if min(self.top_n, self.top_g) < 1 or self.seed < 0:
            raise ValueError("top_n and top_g must be >= 1, seed >= 0")
        if self.count_ceilings and self.kind != "full":
            raise ValueError("count_ceilings applies to the 'full' kind only")
        self.rules  # noqa: B018 - validates groups and the rule flags

    @property
    def rules(self) -> ScoringStrategy:
        """The product's record of the rules this strategy applies (its known mixes, pairs
        and count ceilings, with `groups` passes)."""
        return ScoringStrategy(
            groups=self.groups,
            known_mixes=self.known_mixes,
            known_pairs=self.known_pairs,
            count_ceilings=self.count_ceilings,
        )

    @property
    def served(self) -> ScoringStrategy | None:
        """The product's strategy that scores exactly like this one, if there is one."""
        return self.rules if (self.kind, self.aggregate) == ("full", "max") else None

    def to_dict(self) -> dict[str, Any]:
        """What a report records: the product's record when it serves this strategy."""
        served = self.served
        return served.to_dict() if served is not None else dataclasses.asdict(self)

    def passes_per_window(self, lengths: Sequence[int]) -> float:
        """Mean forward passes per window: min(groups, events) for "full", one per
        non-empty window for "logbert"."""
        n = np.asarray(lengths, dtype=np.int64)
        if n.size == 0:
            return 0.0
        if self.kind == "full":
            return float(np.minimum(n, self.groups).mean())
        return float((n > 0).mean())


@dataclass(frozen=True)
class RunResult:
    """One window scored by a run: what every variant of the run is scored from."""

    nll: npt.NDArray[np.float32]
    """Per event, as the product computes it without count ceilings (NaN: not masked)."""
    base: float
    """The max rank ("full" runs) or the miss fraction ("logbert")."""
    known: bool
    known_in_order: bool
    past_ceiling: tuple[int, ...]


def logbert_mask(
    token_ids: npt.NDArray[np.int64], strategy: BenchStrategy
) -> npt.NDArray[np.bool_]:
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


def window_max_rank(
    rank: npt.NDArray[np.int64], ids: npt.NDArray[np.int64], n_event_tokens: int
) -> float:
    """The largest rank in a window; an [UNK] event ranks last (`n_event_tokens`), and an
    event not predicted (-1) is ignored. An empty window scores 0.0."""
    r = np.where(ids == UNK_ID, n_event_tokens, rank)
    r = r[r >= 0]
    return float(r.max()) if r.size else 0.0


def score_run(
    model: BertForMaskedLM,
    token_windows: Sequence[Sequence[int]],
    run: BenchStrategy,
    device: torch.device,
    *,
    max_batch_tokens: int,
    known: KnownMixes | None,
) -> list[RunResult]:
    """Score windows of event token ids once with `run`'s passes ("full" with `groups`
    passes, or "logbert"'s one mask); results in input order."""
    windows = event_windows(model, token_windows)
    n_event_tokens = int(model.config.vocab_size) - FIRST_EVENT_ID
    passes = full_passes(windows, run.groups if run.kind == "full" else 1)
    if run.kind == "logbert":
        # One pass per window masking group 0: the drawn events; the rest never masked.
        group = np.ones(passes.ids.size, dtype=np.int64)
        for w, s in zip(windows, passes.starts, strict=True):
            group[s : s + w.size][logbert_mask(w, run)] = 0
        passes = dataclasses.replace(passes, event_group=group)
    pred = predict(
        model,
        passes,
        device,
        top_k=min(n_event_tokens, run.top_g) if run.kind == "logbert" else 0,
        max_batch_tokens=max_batch_tokens,
        want_rank=run.kind == "full",
    )
    past = events_past_ceiling(passes.ids, passes.window_of, known)
    # Without count ceilings: each variant applies its own rules to the run's NLLs.
    plain = ScoringStrategy()
    nll = event_nll(pred.logp, rule_codes(passes.ids, past, plain), plain)
    in_top_g = (pred.top_ids[:, : run.top_g] == passes.ids[:, None]).any(axis=1)
    miss = ~np.isnan(nll) & ~in_top_g
    results = []
    for w, s in zip(windows, passes.starts, strict=True):
        n = w.size
        win_nll = nll[s : s + n].astype(np.float32, copy=True)
        if run.kind == "logbert":
            predicted = int((~np.isnan(win_nll)).sum())
            base = float(miss[s : s + n].sum()) / predicted if predicted else 0.0
        else:
            base = window_max_rank(pred.rank[s : s + n], passes.ids[s : s + n], n_event_tokens)
        mix, in_order = known.match(w) if known is not None else (False, False)
        beyond = tuple(np.flatnonzero(past[s : s + n]).tolist())
        results.append(RunResult(win_nll, base, mix, in_order, beyond))
    return results


def aggregate(nll: npt.NDArray[np.float32], strategy: BenchStrategy) -> float:
    """A window score from per-event NLLs (NaNs, events not predicted, are ignored); an
    empty window (or one with no predictions) scores 0.0."""
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


def window_score(
    strategy: BenchStrategy, r: RunResult, n_event_tokens: int, *, as_novel: bool = False
) -> float:
    """A window's score under `strategy`, from a run's result (the run's kind and groups
    must be the strategy's): the known-mix rule, then count ceilings, then the aggregate.
    `as_novel`: as if the window's mix were not known, as thresholds are calibrated."""
    if not as_novel and exempt(strategy.rules, r.known, r.known_in_order):
        return 0.0
    capped = strategy.count_ceilings and len(r.past_ceiling) > 0
    if strategy.kind == "logbert":
        return r.base
    if strategy.aggregate == "maxrank":
        return float(n_event_tokens) if capped else r.base  # past a ceiling ranks last
    nll = r.nll
    if capped:
        nll = nll.copy()
        nll[list(r.past_ceiling)] = np.float32(DEFAULT_UNK_NLL)
    return aggregate(nll, strategy)


@dataclass(frozen=True)
class Variant:
    """A scoring strategy evaluated from one run's results."""

    name: str
    run: str
    strategy: BenchStrategy
    n_event_tokens: int = 0
    """The vocab's event tokens: the rank of an event scored like [UNK] (set per bundle)."""
    calibrate_exempted: bool = False
    """Take the threshold from the scores after the known-mix exemption (the rule before
    thresholds were calibrated as if every mix were novel) instead of the product's
    `calibration_scores`, for comparison."""

    def window_score(self, r: RunResult, *, as_novel: bool = False) -> float:
        return window_score(self.strategy, r, self.n_event_tokens, as_novel=as_novel)

    def calibration_score(self, r: RunResult) -> float:
        return self.window_score(r, as_novel=not self.calibrate_exempted)


MAX_AGGREGATES: tuple[tuple[str, Aggregate], ...] = (("max", "max"), ("max-rank", "maxrank"))

RUNS: dict[str, BenchStrategy] = {
    # One "full" run gives the NLLs (every NLL aggregate) and the max rank.
    "full-6": BenchStrategy(groups=6, aggregate="maxrank"),
    "full-10": BenchStrategy(groups=10, aggregate="maxrank"),
    "logbert": BenchStrategy(kind="logbert", mask_ratio=0.15, top_g=6),
}
VARIANTS = [
    Variant("logbert 15% top-6", "logbert", RUNS["logbert"]),
    Variant("full k=6 mean", "full-6", BenchStrategy(groups=6, aggregate="mean")),
    Variant("full k=6 top-3", "full-6", BenchStrategy(groups=6, aggregate="topn", top_n=3)),
    Variant("full k=6 max", "full-6", BenchStrategy(groups=6, aggregate="max")),
    Variant("full k=6 max-rank", "full-6", BenchStrategy(groups=6, aggregate="maxrank")),
    Variant("full k=10 max", "full-10", BenchStrategy(groups=10, aggregate="max")),
    Variant("full k=10 max-rank", "full-10", BenchStrategy(groups=10, aggregate="maxrank")),
    Variant(
        "full k=10 max, known mixes",
        "full-10",
        BenchStrategy(groups=10, aggregate="max", known_mixes=True),
    ),
    Variant(
        "full k=10 max-rank, known mixes",
        "full-10",
        BenchStrategy(groups=10, aggregate="maxrank", known_mixes=True),
    ),
    Variant(
        "full k=10 max, known mixes in known steps",
        "full-10",
        BenchStrategy(groups=10, aggregate="max", known_mixes=True, known_pairs=True),
    ),
    Variant(
        "full k=10 max-rank, known mixes in known steps",
        "full-10",
        BenchStrategy(groups=10, aggregate="maxrank", known_mixes=True, known_pairs=True),
    ),
    Variant(
        "full k=10 max, count ceilings",
        "full-10",
        BenchStrategy(groups=10, aggregate="max", count_ceilings=True),
    ),
    *(
        Variant(
            f"full k=10 {label}, known mixes{steps}, count ceilings",
            "full-10",
            BenchStrategy(
                groups=10,
                aggregate=agg,
                known_mixes=True,
                known_pairs=bool(steps),
                count_ceilings=True,
            ),
        )
        for steps in ("", " in known steps")
        for label, agg in MAX_AGGREGATES
    ),
]
# The rows above as calibrated under the earlier rule, for comparison only (never the bundle's).
OLD_RULE = ", threshold over exempted scores"
VARIANTS += [
    dataclasses.replace(v, name=v.name + OLD_RULE, calibrate_exempted=True)
    for v in VARIANTS
    if v.strategy.known_mixes and v.strategy.count_ceilings and v.strategy.aggregate == "max"
]
ABLATION = ("full k=6 max", "full k=6 max-rank")
