"""Scoring windows of event token ids: the one path every caller's window takes.

The trainer's calibration, `logad evaluate`, replay and the live stream all come here
(through `WindowScorer`, trainer/scoring/scorer.py, when they hold a bundle):

1. look each window up in what training held (`KnownMixes`): is its mix known, in known
   steps, and which of its events are past their count ceiling;
2. run the masked passes (trainer/scoring/passes.py), skipping the windows whose known mix
   scores them 0 when the caller does not want them explained;
3. apply the rules (trainer/scoring/rules.py): each event's NLL, the window's score as if
   its mix were novel, then 0 for a window the known-mix rule exempts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import structlog
import torch
from transformers import BertForMaskedLM

from trainer.known_mixes import KnownMixes
from trainer.scoring.passes import (
    FIRST_EVENT_ID,
    event_windows,
    full_passes,
    predict,
    type_windows,
)
from trainer.scoring.rules import (
    REASONS,
    ends_unseen,
    event_nll,
    events_past_ceiling,
    exempt,
    missing_lookup,
    most_surprising,
    rule_codes,
    window_score,
)
from trainer.scoring.strategy import ScoringStrategy

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SurprisingToken:
    position: int
    """Index of the event within the window (0-based, excluding [CLS])."""
    token_id: int
    nll: float
    expected: list[tuple[int, float]]
    """(token id, probability) of the model's top-k event tokens at this position."""
    reason: str | None = None
    """Which rule set `nll` (schemas.scores.RULE_REASONS); None: the model did."""


@dataclass
class WindowResult:
    score: float
    score_as_novel: float
    """The score were the window's mix not known: `score`, unless the strategy's known
    mixes scored the window 0. Thresholds are calibrated on it (trainer/calibration.py).
    NaN when the window was not run through the model (`explain_known_mixes` False)."""
    nll: npt.NDArray[np.float32]
    """Per event, float32. NaN where the model made no prediction."""
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


def score_token_windows(
    model: BertForMaskedLM,
    token_windows: Sequence[Sequence[int]],
    strategy: ScoringStrategy,
    device: torch.device,
    *,
    max_batch_tokens: int = 32768,
    known: KnownMixes | None = None,
    explain_known_mixes: bool = True,
    token_types: Sequence[Sequence[int]] | None = None,
) -> list[WindowResult]:
    """Score windows of event token ids (no [CLS]/[SEP]); results in input order.

    `token_types`: for a time-aware model, each window's gap buckets, one per token
    (trainer/time_gaps.py); None: all 0, as a time-blind model sees every window. The
    known-mix rules look at the event ids only: a window whose mix they exempt scores 0
    whatever its gaps.

    `known`: what the training windows held. Each result then says whether its window is a
    known mix (in known order) and which of its events are past their count ceiling; a
    strategy with `known_mixes` scores a known mix 0, and one with `count_ceilings` scores
    an event past its ceiling like [UNK] (both need `known`).

    `explain_known_mixes` False: a window the known-mix rule scores 0 gets no forward pass,
    since nothing the model says changes its score. Its result then has no NLLs (NaN), no
    surprising events and `score_as_novel` NaN, so it cannot be calibrated on.
    """
    if why := missing_lookup(strategy, known):
        raise ValueError(why)
    windows = event_windows(model, token_windows)
    types = None if token_types is None else type_windows(model, token_types, windows)
    # Each window's mix is matched once, here.
    matches = [known.match(w) if known is not None else (False, False) for w in windows]
    exempted = np.array([exempt(strategy, *m) for m in matches], dtype=bool)
    run = ~exempted if not explain_known_mixes else np.ones(len(windows), dtype=bool)
    passes = full_passes(windows, strategy.groups, run, types)
    vocab_size = int(model.config.vocab_size)
    pred = predict(
        model,
        passes,
        device,
        top_k=min(vocab_size - FIRST_EVENT_ID, strategy.top_k_expected),
        max_batch_tokens=max_batch_tokens,
    )
    past = events_past_ceiling(passes.ids, passes.window_of, known)
    unseen_end = ends_unseen(passes.ids, passes.window_of, known) if strategy.known_ends else None
    # The NLLs show events past a ceiling (and unseen ends) as the strategy scores them,
    # for explanations, which also say which rule it was.
    codes = rule_codes(passes.ids, past, strategy, unseen_end)
    nll = event_nll(pred.logp, codes, strategy)
    log.debug(
        "windows_scored",
        windows=len(windows),
        events=int(passes.ids.size),
        passes=int(passes.win.size),
    )

    results: list[WindowResult] = []
    for j, s in enumerate(passes.starts):
        n = int(passes.lengths[j])
        win_nll = nll[s : s + n].astype(np.float32, copy=True)
        as_novel = window_score(win_nll) if run[j] else math.nan
        surprising = [
            SurprisingToken(
                position=int(p),
                token_id=int(passes.ids[s + p]),
                nll=float(win_nll[p]),
                reason=REASONS[codes[s + p]],
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
        results.append(
            WindowResult(
                score=0.0 if exempted[j] else as_novel,
                score_as_novel=as_novel,
                nll=win_nll,
                surprising=surprising,
                known=mix,
                known_in_order=in_order,
                past_ceiling=tuple(np.flatnonzero(past[s : s + n]).tolist()),
            )
        )
    return results
