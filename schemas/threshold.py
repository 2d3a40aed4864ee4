"""How a bundle's threshold was chosen from a false-alert budget: the records calibration.json
holds beside the threshold (trainer/tail_threshold.py computes them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUDGET_UNITS = ("per_1000_windows", "per_hour")


def _num(obj: dict[str, Any], name: str) -> float:
    v = obj[name]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{name} must be a number, got {v!r}")
    return float(v)


def _opt_num(obj: dict[str, Any], name: str) -> float | None:
    return None if obj.get(name) is None else _num(obj, name)


@dataclass(frozen=True)
class AlertBudget:
    """The operator's budget: at most `alerts` false alerts per `unit`."""

    alerts: float
    unit: str
    """'per_1000_windows' or 'per_hour'."""
    per_window: float
    """The budget as the probability that a normal window alerts."""
    windows_per_hour: float | None = None
    """For a budget per hour: the traffic's windows per hour it was converted with."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "unit": self.unit,
            "per_window": self.per_window,
            "windows_per_hour": self.windows_per_hour,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> AlertBudget:
        unit = obj["unit"]
        if unit not in BUDGET_UNITS:
            raise ValueError(f"budget unit must be one of {BUDGET_UNITS}, got {unit!r}")
        return cls(
            _num(obj, "alerts"), unit, _num(obj, "per_window"), _opt_num(obj, "windows_per_hour")
        )


@dataclass(frozen=True)
class ThresholdInterval:
    """A bootstrap interval for the threshold."""

    lower: float
    upper: float
    confidence: float
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "resamples": self.resamples,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ThresholdInterval:
        return cls(
            _num(obj, "lower"), _num(obj, "upper"), _num(obj, "confidence"), int(obj["resamples"])
        )


@dataclass(frozen=True)
class TailModel:
    """The generalised Pareto tail the threshold came from, and its excesses (what an online
    tracker starts from: trainer/tail_tracker.py)."""

    t: float
    """The initial threshold the excesses are measured over."""
    shape: float
    scale: float
    n: int
    """Calibration windows the fit stands for."""
    peaks: tuple[float, ...]
    """The excesses over t (N_t of them)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "shape": self.shape,
            "scale": self.scale,
            "n": self.n,
            "peaks": list(self.peaks),
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> TailModel:
        peaks = obj["peaks"]
        if not isinstance(peaks, list):
            raise ValueError(f"tail peaks must be a list, got {peaks!r}")
        return cls(
            _num(obj, "t"),
            _num(obj, "shape"),
            _num(obj, "scale"),
            int(obj["n"]),
            tuple(_num({"peak": p}, "peak") for p in peaks),
        )
