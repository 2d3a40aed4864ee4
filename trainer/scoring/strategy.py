"""The scoring strategy: how a window's events become its score, recorded in a bundle.

`logad train` calibrates a threshold for a strategy and writes both to calibration.json;
`serve`, `replay` and `logad evaluate` read the strategy back, so a window is always scored
the way its threshold was calibrated. There is one way to score (every event masked once
over `groups` passes, the window's score the largest event NLL); what a strategy chooses is
how many passes, and which of the rules in trainer/scoring/rules.py apply (known mixes,
known pairs, count ceilings, known ends). Other scoring rules the benchmark compares live beside it
(bench/strategies.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_UNK_NLL = -math.log(1e-9)
"""-log(1e-9): the NLL of an event the model gives a one-in-a-billion chance. An unknown
event gets this, and a known event's NLL is capped at it, so [UNK] is never less surprising
than a known event, one event can add at most this much to a window, and the value does not
depend on the vocab size (log(10_000) = 9.2 would rank below a known event the model has
learned to rule out)."""

KNOWN_MIXES_KEY = "known_counts"
"""calibration.json's key for `known_mixes`: the name bundles have always been written with,
kept so every bundle reads the same way."""

IMPLIED_KEYS: dict[str, object] = {
    "kind": "full",
    "aggregate": "max",
    "top_n": 3,
    "mask_ratio": 0.15,
    "top_g": 6,
    "r": None,
    "seed": 0,
}
"""Keys of the benchmark's comparison strategies that older bundles recorded, at the values
of the one way windows are scored now. `to_dict` writes `kind` and `aggregate` so a serve
that predates this record still reads a new bundle right; `from_dict` accepts each key only
at its value here."""


@dataclass(frozen=True)
class ScoringStrategy:
    """How a window's score is computed. Stored in calibration.json so serving matches it."""

    groups: int = 10
    """Passes per window: pass g masks the events at positions i with i % groups == g, so
    every event gets exactly one masked prediction. More groups give each prediction more
    context (1/groups of the events masked at once; the model trained with 15%) and cost one
    forward pass per group on long windows."""
    known_mixes: bool = False
    """A window whose event counts (end marker included) equal a training window's scores 0:
    the order of a known mix of events is not an anomaly. Needs the training windows' mixes
    (calibration.json lists them); order-only anomalies go unseen."""
    known_pairs: bool = False
    """With `known_mixes`: a known mix scores 0 only when every pair of its consecutive
    events (end marker included) also occurred in training, so a swapped step in a sequential
    flow is still scored while free interleavings of seen steps are not."""
    count_ceilings: bool = False
    """An occurrence of an event beyond its count ceiling (the most of it that enough
    training windows held) scores like an [UNK] event. Events whose count has a long tail
    get no ceiling (trainer/known_mixes.py). Needs the ceilings in calibration.json."""
    known_ends: bool = False
    """The session-end marker after an event that no training window ended with (the pair
    `event, <end>` never occurred in training) scores like an [UNK] event: a session that
    stops where none stopped before, however likely the model finds the end there. Needs
    the known pairs in calibration.json; a bundle without the end marker has nothing to
    apply it to. Written to calibration.json only when on, so a bundle without it reads as
    before."""
    n_surprising: int = 5
    """How many of a window's most surprising events to explain."""
    top_k_expected: int = 3
    """How many expected events to list for each surprising one."""
    unk_nll: float = DEFAULT_UNK_NLL
    """The NLL of an [UNK] event, and the cap on any event's NLL (see DEFAULT_UNK_NLL)."""

    def __post_init__(self) -> None:
        _check_int("groups", self.groups, 1)
        _check_int("n_surprising", self.n_surprising, 0)
        _check_int("top_k_expected", self.top_k_expected, 0)
        if not (math.isfinite(self.unk_nll) and self.unk_nll > 0):
            raise ValueError(f"unk_nll must be finite and > 0, got {self.unk_nll}")
        if self.known_pairs and not self.known_mixes:
            raise ValueError("known_pairs refines known_mixes: set both")

    def to_dict(self) -> dict[str, Any]:
        """As calibration.json records it (see KNOWN_MIXES_KEY and IMPLIED_KEYS)."""
        d: dict[str, Any] = {
            "kind": IMPLIED_KEYS["kind"],
            "groups": self.groups,
            "aggregate": IMPLIED_KEYS["aggregate"],
            KNOWN_MIXES_KEY: self.known_mixes,
            "known_pairs": self.known_pairs,
            "count_ceilings": self.count_ceilings,
            "n_surprising": self.n_surprising,
            "top_k_expected": self.top_k_expected,
            "unk_nll": self.unk_nll,
        }
        if self.known_ends:
            d["known_ends"] = True
        return d

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ScoringStrategy:
        """The strategy calibration.json records; ValueError when it is not one this
        version scores with."""
        values = dict(obj)
        for key, implied in IMPLIED_KEYS.items():
            if key in values and not _same(values.pop(key), implied):
                raise ValueError(
                    f"{key}={obj[key]!r}: windows are scored with {key}={implied!r} only "
                    "(re-calibrate the bundle for the default strategy, or retrain)"
                )
        if KNOWN_MIXES_KEY in values:
            values["known_mixes"] = values.pop(KNOWN_MIXES_KEY)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown scoring strategy keys: {unknown}")
        if isinstance(values.get("unk_nll"), int) and not isinstance(values["unk_nll"], bool):
            values["unk_nll"] = float(values["unk_nll"])  # JSON writes 1.0 as 1 in some encoders
        return cls(**values)


def _same(value: object, implied: object) -> bool:
    if isinstance(implied, float) and isinstance(value, int | float):
        return not isinstance(value, bool) and float(value) == implied
    return type(value) is type(implied) and value == implied


def _check_int(name: str, value: object, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


DEFAULT_STRATEGY = ScoringStrategy(known_mixes=True, known_pairs=True, count_ceilings=True)
"""What `logad train` calibrates and records in a new bundle, so `serve` scores with it.
The max NLL, because one out-of-place event is what an anomaly in a long normal session
looks like (a mean dilutes it); known mixes with known pairs, because interleavings of seen
steps are not anomalies while a swapped step is; count ceilings, because some counts are
fixed by the system (a block has three replicas). `logad train --score-known-pairs false`
gives the order-blind variant. `logad train` also turns on `known_ends` for a bundle with the
end marker (`--score-known-ends`); the benchmark's comparison strategies do not express it, so
it is not part of this record. docs/scoring.md explains the rules and docs/quality.md
holds the figures that chose them, with the commands that reproduce them."""
