"""The window rules: from the model's predictions to a window's score, in numpy.

An event's surprise is the negative log-likelihood (NLL) of its true token where it was
masked, capped at the strategy's `unk_nll`; an [UNK] event, with `count_ceilings` an
occurrence of an event beyond its count ceiling, and with `known_ends` an end marker right
after an event no training or validation window ended with, gets `unk_nll` itself: training
cannot vouch for it. A window's score is its largest event NLL: one out-of-place event is what an
anomaly looks like, however long the window. With `known_mixes`, a window whose event counts
equal a training window's (with `known_pairs`, also made of known consecutive pairs) scores
0 after the fact; its score as if its mix were novel is what thresholds are calibrated on
(trainer/calibration.py). What training held is looked up in trainer/known_mixes.py.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from schemas.scores import RULE_REASONS
from schemas.vocab import UNK_ID
from trainer.known_mixes import KnownMixes, past_ceiling, unseen_ends
from trainer.scoring.strategy import ScoringStrategy


def missing_lookup(strategy: ScoringStrategy, known: KnownMixes | None) -> str | None:
    """Why `known` (a bundle's record of its training windows) cannot serve `strategy`, or
    None when it can."""
    if strategy.known_mixes and known is None:
        return "the strategy treats known event mixes as normal, but the calibration lists none"
    if strategy.count_ceilings and (known is None or known.ceilings is None):
        return (
            "the strategy scores events past their count ceilings, but the calibration records none"
        )
    if strategy.known_ends and known is None:
        return "the strategy scores unseen session ends, but the calibration lists no known pairs"
    return None


def exempt(strategy: ScoringStrategy, known: bool, known_in_order: bool) -> bool:
    """Whether the strategy's known mixes score a window 0, given whether its mix is known
    (`known`) and also made of known pairs (`known_in_order`): `KnownMixes.match`."""
    return strategy.known_mixes and (known_in_order if strategy.known_pairs else known)


def events_past_ceiling(
    ids: npt.NDArray[np.int64], window_of: npt.NDArray[np.int64], known: KnownMixes | None
) -> npt.NDArray[np.bool_]:
    """Which events (flat over windows, `window_of[i]` event i's window) are beyond their
    event's count ceiling; none when `known` records no ceilings."""
    if known is None or not known.ceilings:
        return np.zeros(ids.size, dtype=bool)
    return past_ceiling(ids, window_of, known.limits)


def ends_unseen(
    ids: npt.NDArray[np.int64], window_of: npt.NDArray[np.int64], known: KnownMixes | None
) -> npt.NDArray[np.bool_]:
    """Which events (flat over windows) are an end marker right after an event no recorded
    window ended with; none when `known` has no end marker."""
    if known is None or known.end_id is None:
        return np.zeros(ids.size, dtype=bool)
    return unseen_ends(ids, window_of, known.ending, known.end_id)


REASONS: tuple[str | None, ...] = (None, *RULE_REASONS)
"""`rule_codes`' values as the records' `reason`: 0 is the model's NLL."""
UNSEEN_EVENT, PAST_CEILING, UNSEEN_END = (REASONS.index(r) for r in RULE_REASONS)


def rule_codes(
    ids: npt.NDArray[np.int64],
    past: npt.NDArray[np.bool_],
    strategy: ScoringStrategy,
    unseen_end: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.int8]:
    """Per event, which rule scores it like an unknown event (an index into `REASONS`; 0:
    none): an [UNK] event, with `count_ceilings` an event in `past`, with `known_ends` an
    event in `unseen_end`; the first that applies, in that order."""
    codes = np.zeros(ids.size, dtype=np.int8)
    if strategy.known_ends and unseen_end is not None:
        codes[unseen_end] = UNSEEN_END
    if strategy.count_ceilings:
        codes[past] = PAST_CEILING
    codes[ids == UNK_ID] = UNSEEN_EVENT
    return codes


def event_nll(
    logp: npt.NDArray[np.float32], codes: npt.NDArray[np.int8], strategy: ScoringStrategy
) -> npt.NDArray[np.float32]:
    """Each event's NLL (float32, NaN where not predicted), capped at `unk_nll`; a predicted
    event a rule applies to (`rule_codes`) gets `unk_nll`."""
    unk = np.float32(strategy.unk_nll)
    nll = np.minimum(-logp, unk)  # NaN stays NaN
    nll[(codes > 0) & ~np.isnan(nll)] = unk
    return nll


def window_score(nll: npt.NDArray[np.float32]) -> float:
    """The largest NLL of the window's predicted events (NaN: not predicted); a window with
    none scores 0.0."""
    v = np.asarray(nll, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.max()) if v.size else 0.0


def most_surprising(nll: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int64]:
    """Positions of the n largest finite NLLs, largest first, ties by position."""
    finite = np.flatnonzero(~np.isnan(nll))
    order = np.argsort(-nll[finite], kind="stable")
    return finite[order[:n]]
