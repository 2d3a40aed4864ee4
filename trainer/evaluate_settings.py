"""`EvaluateSettings`: every knob of `logad evaluate` (torch-free, so `--help` stays fast).

Built by `schemas.runtime.settings.build_settings` (defaults < config file < LOGAD_* env < flags).
The bundle, the session files, the report directory and the calibration data are
per-invocation arguments, not settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schemas.runtime.settings import leaves, only
from schemas.signing import BundleKeySettings
from trainer.scorer_settings import ScorerSettings

STRATEGY_FIELDS = ("groups", "known_mixes", "known_pairs", "count_ceilings", "known_ends")
"""The fields that override the bundle's scoring strategy (trainer.scoring.ScoringStrategy)."""


@dataclass(frozen=True)
class PopulationSettings:
    """Population

    The population the labelled files sample, for precision, F1 and AUPRC at its ratio
    (give both or neither)."""

    population_normals: int | None = None
    """Normal sessions in the population the normal file samples (with population_abnormals:
    precision, F1 and AUPRC are extrapolated to that ratio)."""
    population_abnormals: int | None = None
    """Anomalous sessions in that population."""

    def __post_init__(self) -> None:
        pops = (self.population_normals, self.population_abnormals)
        if (pops[0] is None) != (pops[1] is None):
            raise ValueError(
                "give both --population-normals and --population-abnormals, or neither"
            )
        if any(p is not None and p < 1 for p in pops):
            raise ValueError("population sizes must be >= 1")


@dataclass(frozen=True)
class EvaluateSettings:
    """Every knob of `logad evaluate`, built from defaults < file < LOGAD_* env < flags."""

    chunk_windows: int = 1024
    """Windows handed to the scorer at a time (the progress bar moves per chunk)."""
    groups: int | None = None
    """Override: mask groups (forward passes per window)."""
    known_mixes: bool | None = None
    """Override: score 0 for a window whose event counts equal a training window's,
    whatever their order (the bundle's calibration lists them)."""
    known_pairs: bool | None = None
    """Override: with known_mixes, a known mix scores 0 only when each pair of its
    consecutive events also occurred in training."""
    count_ceilings: bool | None = None
    """Override: an occurrence of an event beyond its count ceiling (the most of it that
    enough training windows held) scores like an unknown event (the bundle's calibration
    lists the ceilings)."""
    known_ends: bool | None = None
    """Override: the session-end marker after an event no training window ended with
    scores like an unknown event (the bundle's calibration lists the known pairs)."""
    threshold_quantile: float | None = None
    """Re-calibrate at this quantile of the validation scores (needs --calibrate-on)."""
    threshold_method: Literal["quantile", "pot"] | None = None
    """Re-calibrate with this method: 'quantile' or 'pot' (a generalised Pareto tail fitted to
    the highest validation scores; needs --calibrate-on; default: the bundle's)."""
    alert_budget: float | None = None
    """Re-calibrate for at most this many false alerts per 1,000 normal windows, by
    threshold_method (needs --calibrate-on; default: the bundle's budget or quantile)."""
    val_fraction: float | None = None
    """The validation fraction the bundle was trained with (default: the manifest's value,
    else the trainer's default); used only to re-derive the validation slice."""
    token_cache_dir: Path | None = None
    """Token cache used to re-derive the validation slice (default: the trainer's)."""
    fault_window_s: float = 120.0
    """With --incidents: how long an incident lasts when its file gives only its start (a
    Nezha fault list: an incident is this long from each injection)."""
    scoring: ScorerSettings = field(
        default=ScorerSettings(), metadata=only("device", "max_batch_tokens")
    )
    population: PopulationSettings = field(default=PopulationSettings())
    signing: BundleKeySettings = field(default=BundleKeySettings())

    def __post_init__(self) -> None:
        if self.chunk_windows < 1:
            raise ValueError(f"chunk_windows must be >= 1, got {self.chunk_windows}")
        q = self.threshold_quantile
        if q is not None and not 0.0 < q < 1.0:
            raise ValueError(f"threshold_quantile must be in (0, 1), got {q}")
        b = self.alert_budget
        if b is not None and not 0 < b < 1000:
            raise ValueError(f"alert_budget must be in (0, 1000) per 1,000 windows, got {b}")
        if b is not None and q is not None:
            raise ValueError("give alert_budget or threshold_quantile, not both")
        if not self.fault_window_s > 0:
            raise ValueError(f"fault_window_s must be > 0, got {self.fault_window_s}")
        vf = self.val_fraction
        if vf is not None and not 0.0 < vf < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {vf}")

    def strategy_overrides(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in STRATEGY_FIELDS if getattr(self, n) is not None}

    @property
    def recalibrates(self) -> bool:
        return bool(self.strategy_overrides()) or any(
            v is not None
            for v in (self.threshold_quantile, self.threshold_method, self.alert_budget)
        )


def field_names() -> list[str]:
    return list(leaves(EvaluateSettings))
