"""The `ThresholdRule` of a training run: TrainSettings' threshold knobs, and for a budget per
hour the traffic's windows per hour, measured from the training files' timestamps when not
given."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import structlog

from schemas.daily_files import read_sessions
from schemas.errors import DataError
from trainer.calibration import ThresholdRule
from trainer.settings import TrainSettings
from trainer.tail_threshold import windows_per_hour

log = structlog.get_logger(__name__)


def session_span(paths: Iterable[Path]) -> tuple[int, int] | None:
    """(first start_ts, last end_ts) over the sessions of the files; None when no session
    carries a time."""
    first: int | None = None
    last: int | None = None
    for p in paths:
        for s in read_sessions(p):
            a = s.start_ts if s.start_ts is not None else s.end_ts
            b = s.end_ts if s.end_ts is not None else s.start_ts
            if a is None or b is None:
                continue
            first = a if first is None else min(first, a)
            last = b if last is None else max(last, b)
    return None if first is None or last is None else (first, last)


def measured_windows_per_hour(paths: Iterable[Path], n_windows: int) -> float:
    span = session_span(paths)
    if span is None:
        raise DataError(
            "a budget per hour needs the traffic's windows per hour: the training files' "
            "sessions carry no start_ts/end_ts, so give windows_per_hour"
        )
    try:
        rate = windows_per_hour(n_windows, *span)
    except ValueError as e:
        raise DataError(str(e)) from None
    log.info(
        "windows_per_hour_measured",
        windows=n_windows,
        hours=round((span[1] - span[0]) / 3_600_000, 3),
        windows_per_hour=round(rate, 2),
    )
    return rate


def threshold_rule(s: TrainSettings, paths: Iterable[Path], n_windows: int) -> ThresholdRule:
    """The rule `calibrate` applies; `paths` (the training files) are read only for a budget
    per hour without windows_per_hour."""
    wph = s.windows_per_hour
    if s.alert_budget is not None and s.alert_budget_unit == "per_hour" and wph is None:
        wph = measured_windows_per_hour(paths, n_windows)
    return ThresholdRule(
        method=s.threshold_method,
        budget=s.alert_budget,
        unit=s.alert_budget_unit,
        windows_per_hour=wph,
        init_quantile=s.pot_init_quantile,
        seed=s.seed,
    )
