"""Calibration quantiles and thresholds on known inputs, and what few scores do to them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from schemas.bundle import Calibration
from schemas.errors import DataError
from trainer.calibration import calibrate, quantiles, threshold_from_quantile, under_ceiling
from trainer.scoring import ScoringStrategy


def test_quantiles_on_known_inputs() -> None:
    # 0..100000: every quantile position q * (n - 1) is a whole index, so q * 100000.
    scores = np.random.default_rng(0).permutation(np.arange(100_001, dtype=np.float64))
    assert quantiles(scores) == {
        "p50": 50_000.0,
        "p90": 90_000.0,
        "p99": 99_000.0,
        "p99.9": 99_900.0,
        "p99.99": 99_990.0,
    }


def test_quantiles_never_interpolate() -> None:
    # "higher": between 1 and 2 the median is 2, an actual score, never 1.5.
    assert quantiles([1.0, 2.0])["p50"] == 2.0
    assert threshold_from_quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0


def test_few_scores_push_high_quantiles_to_the_max() -> None:
    scores = np.arange(200, dtype=np.float64)
    q = quantiles(scores)
    assert q["p99.99"] == 199.0
    assert q["p99.9"] == 199.0
    assert q["p99"] == 198.0
    assert quantiles([7.0]) == dict.fromkeys(q, 7.0)


def test_threshold_from_quantile_ends_and_errors() -> None:
    scores = [5.0, 1.0, 3.0]
    assert threshold_from_quantile(scores, 0.0) == 1.0
    assert threshold_from_quantile(scores, 1.0) == 5.0
    with pytest.raises(ValueError):
        threshold_from_quantile(scores, 1.5)
    with pytest.raises(DataError, match="no calibration scores"):
        threshold_from_quantile([], 0.5)
    with pytest.raises(DataError, match="not finite"):
        threshold_from_quantile([1.0, float("nan")], 0.5)


@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300),
    st.floats(0.0, 1.0),
)
def test_threshold_flags_at_most_one_minus_q_of_calibration(scores: list[float], q: float) -> None:
    t = threshold_from_quantile(scores, q)
    assert t in scores
    above = sum(s > t for s in scores)
    assert above <= (1.0 - q) * (len(scores) - 1) + 1e-9


def test_calibrate_records_threshold_quantiles_and_strategy() -> None:
    scores = np.linspace(0.0, 10.0, 10_001)
    strategy = ScoringStrategy(groups=4)
    cal = calibrate(scores, 0.99, strategy=strategy)
    assert cal.threshold == pytest.approx(9.9)
    assert cal.threshold == cal.quantiles["p99"]
    assert cal.threshold_quantile == 0.99
    assert cal.n_windows == 10_001
    back = Calibration.from_json(cal.to_json())
    assert back == cal
    assert ScoringStrategy.from_dict(back.strategy) == strategy


def test_calibrate_default_quantile_is_p99_9() -> None:
    scores = np.arange(100_001, dtype=np.float64)
    assert calibrate(scores, strategy=ScoringStrategy()).threshold == 99_900.0


def test_calibrate_warns_when_the_threshold_is_just_the_max() -> None:
    with capture_logs() as logs:
        calibrate(np.arange(200, dtype=np.float64), 0.999, strategy=ScoringStrategy())
    [warning] = [e for e in logs if e["event"] == "calibration_threshold_is_max"]
    assert warning["windows_needed"] == 1001
    with capture_logs() as logs:
        calibrate(np.arange(1001, dtype=np.float64), 0.999, strategy=ScoringStrategy())
    assert not [e for e in logs if e["event"] == "calibration_threshold_is_max"]


def test_a_threshold_on_the_unseen_event_score_comes_from_the_windows_below_it() -> None:
    """48 windows, one holding an event training never had: p99.9 is the max, the ceiling,
    and nothing could score above it. The unseen event alerts anyway; the model's threshold
    is p99.9 of the 47 windows below the ceiling."""
    strategy = ScoringStrategy()
    ceiling = float(np.float32(strategy.unk_nll))  # what the scorer gives an unseen event
    scores = np.concatenate([np.linspace(1.0, 6.0, 47), [ceiling]])
    with capture_logs() as logs:
        cal = calibrate(scores, 0.999, strategy=strategy)
    assert cal.threshold == 6.0 == threshold_from_quantile(scores[:-1], 0.999)
    assert cal.fallback is not None and "1 of 48 calibration windows reach it" in cal.fallback
    assert "the 47 windows below it" in cal.fallback
    [warning] = [e for e in logs if e["event"] == "calibration_threshold_at_ceiling"]
    assert warning["reached"] == 1 and warning["threshold"] == 6.0
    assert Calibration.from_json(cal.to_json()).threshold == cal.threshold
    # Under the ceiling nothing changes.
    assert under_ceiling(6.0, strategy.unk_nll) is None
    assert calibrate(scores[:-1], 0.999, strategy=strategy).fallback is None


def test_a_lower_quantile_below_the_ceiling_is_that_quantile_of_the_rest() -> None:
    strategy = ScoringStrategy()
    ceiling = float(np.float32(strategy.unk_nll))
    rest = np.arange(1.0, 101.0) / 10.0  # 0.1 .. 10.0
    scores = np.concatenate([rest, [ceiling] * 5])  # 5 of 105: p97 lands on the ceiling
    cal = calibrate(scores, 0.97, strategy=strategy)
    assert cal.threshold == threshold_from_quantile(rest, 0.97)
    # The bound: at most 3% of the windows below the ceiling score above it.
    assert (rest > cal.threshold).mean() <= 0.03


def test_every_window_on_the_ceiling_sets_the_threshold_just_below_it() -> None:
    strategy = ScoringStrategy()
    ceiling = float(np.float32(strategy.unk_nll))
    cal = calibrate([ceiling] * 5, 0.999, strategy=strategy)
    assert cal.threshold == under_ceiling(ceiling, strategy.unk_nll)
    assert cal.threshold < ceiling
    assert cal.fallback is not None and "set just below" in cal.fallback


def test_calibrate_rejects_no_scores() -> None:
    with pytest.raises(DataError):
        calibrate([], strategy=ScoringStrategy())
