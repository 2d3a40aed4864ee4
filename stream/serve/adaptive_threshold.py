"""Serve's adaptive threshold (runtime setting `adaptive_threshold`): each window's verdict
from a `TailTracker` (trainer/tail_tracker.py) instead of the bundle's fixed threshold.

One tracker per model version, started from that bundle's calibration: its tail fit (a
bundle trained with `threshold_method pot`) and its budget (else 1 - threshold_quantile per
window). A bundle without a tail fit keeps its fixed threshold, with one warning. Called in
the scoring thread, after the model (and the score cache) and before the archive and the
topics see the scores, so every record carries the threshold it was judged at.

A tracker's state lives in this process only: a restart or a hot reload starts again from
the bundle's calibration, and two serve replicas adapt each on its own partitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from schemas.bundle import CALIBRATION, Calibration
from schemas.errors import BundleError
from schemas.registry import is_registry
from schemas.scores import Score
from trainer.tail_tracker import TailTracker

log = structlog.get_logger(__name__)

CalibrationFor = Callable[[str], Calibration | None]


def bundle_calibrations(model: Path) -> CalibrationFor:
    """The calibration of a model version: from the registry's bundle of that version, or
    from the one bundle --model names. None when it cannot be read."""

    def read(version: str) -> Calibration | None:
        bundle = model / version if is_registry(model) else model
        try:
            return Calibration.from_json((bundle / CALIBRATION).read_bytes())
        except (OSError, BundleError) as e:
            log.warning("adaptive_threshold_no_calibration", model_version=version, error=str(e))
            return None

    return read


def tracker_for(cal: Calibration, refit_every: int, depth: int) -> TailTracker | None:
    if cal.tail is None or not cal.tail.peaks:
        return None
    q = cal.budget.per_window if cal.budget is not None else 1.0 - cal.threshold_quantile
    return TailTracker(cal.tail, q, refit_every=refit_every, depth=depth)


class AdaptiveThreshold:
    def __init__(self, calibration_for: CalibrationFor, refit_every: int, depth: int) -> None:
        self._calibration_for = calibration_for
        self._refit_every = refit_every
        self._depth = depth
        self._trackers: dict[str, TailTracker | None] = {}

    def tracker(self, version: str) -> TailTracker | None:
        if version not in self._trackers:
            # Only the serving version's tracker is kept: a reload starts afresh.
            self._trackers.clear()
            cal = self._calibration_for(version)
            tr = None if cal is None else tracker_for(cal, self._refit_every, self._depth)
            if tr is None:
                log.warning(
                    "adaptive_threshold_unavailable",
                    model_version=version,
                    reason="the bundle records no tail fit (train it with threshold_method "
                    "pot): its fixed threshold is used",
                )
            else:
                log.info(
                    "adaptive_threshold_started", model_version=version, threshold=tr.threshold
                )
            self._trackers[version] = tr
        return self._trackers[version]

    def __call__(self, scores: Sequence[Score]) -> list[Score]:
        """The scores judged by the tracker, in order (each one teaches it after its verdict)."""
        out = []
        for s in scores:
            tr = self.tracker(s.model_version)
            if tr is None:
                out.append(s)
                continue
            threshold = tr.threshold
            anomalous = tr.observe(s.score)
            out.append(dataclasses.replace(s, threshold=threshold, anomalous=anomalous))
        return out
