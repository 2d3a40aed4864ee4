"""Thresholds from a false-alert budget: the GPD tail (SPOT), its fallbacks, its interval, and
what it buys over the quantile where few windows make the quantile the maximum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from structlog.testing import capture_logs

from schemas.bundle import Calibration
from schemas.errors import DataError
from trainer.calibration import ThresholdRule, calibrate
from trainer.scoring import ScoringStrategy
from trainer.tail_threshold import (
    MIN_PEAKS,
    Gpd,
    bootstrap_interval,
    empirical,
    pot_threshold,
    rate_per_window,
    windows_per_hour,
)

BUDGET = 0.001  # 1 false alert per 1,000 windows


def test_budget_units_convert_to_a_per_window_rate() -> None:
    assert rate_per_window(1.0, "per_1000_windows") == 0.001
    assert rate_per_window(2.0, "per_hour", windows_per_hour=4000.0) == 0.0005
    with pytest.raises(ValueError, match="windows scored per hour"):
        rate_per_window(2.0, "per_hour")
    with pytest.raises(ValueError, match="> 0"):
        rate_per_window(0.0, "per_1000_windows")
    with pytest.raises(ValueError, match="one alert per window"):
        rate_per_window(10.0, "per_hour", windows_per_hour=5.0)
    # 3,600 windows over half an hour: 7,200 an hour.
    assert windows_per_hour(3600, 0, 1_800_000) == pytest.approx(7200.0)
    with pytest.raises(ValueError, match="span no time"):
        windows_per_hour(10, 5, 5)


def test_gpd_threshold_inverts_its_exceedance() -> None:
    for shape in (0.3, 0.0, -0.2):
        g = Gpd(t=2.0, shape=shape, scale=0.5, n=1000, n_peaks=50)
        z = g.threshold(0.001)
        assert z > g.t
        assert g.exceedance(z) == pytest.approx(0.001, rel=1e-9)
    # The exponential limit: P(X > t + s ln 10) = (N_t / n) / 10.
    g = Gpd(t=1.0, shape=0.0, scale=2.0, n=100, n_peaks=20)
    assert g.exceedance(1.0 + 2.0 * math.log(10)) == pytest.approx(0.02)


def test_pot_recovers_a_known_exponential_tail() -> None:
    # 20,000 exponential scores: the 1-in-10,000 point is ln(10,000) = 9.21.
    x = np.random.default_rng(1).exponential(1.0, 20_000)
    fit = pot_threshold(x, 1e-4)
    assert fit.method == "pot" and fit.gpd is not None
    assert fit.gpd.n_peaks == 400  # 2% of the scores lie above t
    assert len(fit.peaks) == fit.gpd.n_peaks and min(fit.peaks) > 0
    assert fit.threshold == pytest.approx(math.log(1e4), rel=0.1)
    assert stats.expon.sf(fit.threshold) == pytest.approx(1e-4, rel=0.5)


def test_pot_falls_back_to_the_quantile_when_the_peaks_are_too_few() -> None:
    x = np.random.default_rng(2).exponential(1.0, 60)  # a quarter of 60 < MIN_PEAKS
    fit = pot_threshold(x, BUDGET)
    assert fit.method == "quantile" and fit.gpd is None
    assert fit.fallback is not None and str(MIN_PEAKS) in fit.fallback
    assert fit.threshold == x.max()


def test_pot_uses_the_quantile_where_the_budget_is_loose() -> None:
    x = np.random.default_rng(3).exponential(1.0, 1000)
    fit = pot_threshold(x, 0.1)  # 100 exceedances expected, more than the 20 peaks
    assert fit.method == "quantile" and fit.fallback and "looser" in fit.fallback
    assert fit.threshold == empirical(x, 0.1)


def test_pot_falls_back_on_ties() -> None:
    x = np.r_[np.zeros(300), np.full(25, 5.0)]  # the excesses are one value
    fit = pot_threshold(x, BUDGET)
    assert fit.method == "quantile" and fit.fallback and "distinct" in fit.fallback
    assert fit.threshold == 5.0


def test_bootstrap_interval_holds_the_threshold_and_is_seeded() -> None:
    x = np.random.default_rng(4).exponential(1.0, 1500)
    fit = pot_threshold(x, BUDGET)
    iv = bootstrap_interval(x, BUDGET, "pot", resamples=25, confidence=0.9, seed=7)
    assert iv is not None and iv.resamples == 25
    assert iv.lower < fit.threshold < iv.upper
    assert iv == bootstrap_interval(x, BUDGET, "pot", resamples=25, confidence=0.9, seed=7)
    q_iv = bootstrap_interval(x, BUDGET, "quantile", resamples=40, seed=7)
    assert q_iv is not None and q_iv.lower <= empirical(x, BUDGET) <= q_iv.upper
    assert bootstrap_interval(x, BUDGET, "pot", resamples=0) is None


def test_pot_exceedance_is_closer_to_the_budget_than_the_max_with_few_windows() -> None:
    """300 windows and a budget of 1 in 1,000: the quantile is the maximum, whose true
    exceedance is about 1/301, three times the budget. The tail fit extrapolates."""
    dist = stats.genpareto(0.2)  # heavy-tailed, with a known survival function
    pot_rates, max_rates = [], []
    for seed in range(40):
        x = dist.rvs(300, random_state=np.random.default_rng(seed))
        assert empirical(x, BUDGET) == x.max()
        pot_rates.append(dist.sf(pot_threshold(x, BUDGET).threshold))
        max_rates.append(dist.sf(x.max()))
    pot_err = float(np.mean(np.abs(np.array(pot_rates) - BUDGET)))
    max_err = float(np.mean(np.abs(np.array(max_rates) - BUDGET)))
    assert float(np.mean(max_rates)) > 2.5 * BUDGET  # the maximum's known excess
    assert float(np.mean(pot_rates)) < 0.7 * float(np.mean(max_rates))
    assert pot_err < 0.6 * max_err


def test_calibrate_with_a_pot_budget_records_method_budget_interval_and_tail() -> None:
    x = np.random.default_rng(5).gamma(2.0, 1.0, 5000)
    rule = ThresholdRule(method="pot", budget=0.5, bootstrap=20)
    cal = calibrate(x, strategy=ScoringStrategy(), rule=rule)
    assert cal.threshold_method == "pot"
    assert cal.budget is not None and cal.budget.per_window == 0.0005
    assert cal.threshold_quantile == pytest.approx(0.9995)
    assert cal.tail is not None and cal.tail.n == 5000 and len(cal.tail.peaks) == 100
    assert cal.interval is not None and cal.interval.lower < cal.threshold < cal.interval.upper
    assert cal.fallback is None
    back = Calibration.from_json(cal.to_json())
    assert back == cal


def test_calibrate_budget_per_hour_uses_the_traffic_rate() -> None:
    x = np.random.default_rng(6).exponential(1.0, 3000)
    rule = ThresholdRule(
        method="quantile", budget=2.0, unit="per_hour", windows_per_hour=20_000, bootstrap=0
    )
    cal = calibrate(x, strategy=ScoringStrategy(), rule=rule)
    assert cal.budget is not None and cal.budget.per_window == 1e-4
    assert cal.budget.windows_per_hour == 20_000
    assert cal.threshold == x.max()  # 1e-4 of 3,000 windows: the quantile is the max
    assert cal.interval is None
    with pytest.raises(DataError, match="windows scored per hour"):
        calibrate(x, strategy=ScoringStrategy(), rule=ThresholdRule(budget=2.0, unit="per_hour"))


def test_pot_with_too_few_windows_falls_back_and_says_so() -> None:
    with capture_logs() as logs:
        cal = calibrate(
            np.arange(50.0), strategy=ScoringStrategy(), rule=ThresholdRule(method="pot")
        )
    assert cal.threshold_method == "quantile" and cal.threshold == 49.0
    assert cal.fallback is not None and cal.tail is None
    events = {e["event"] for e in logs}
    assert {"calibration_fallback", "calibration_threshold_is_max"} <= events


def test_old_calibration_files_load_as_quantile() -> None:
    old = (
        b'{"quantiles": {"p50": 1.0}, "threshold": 2.0, "threshold_quantile": 0.999, '
        b'"n_windows": 5}'
    )
    cal = Calibration.from_json(old)
    assert cal.threshold_method == "quantile"
    assert cal.budget is None and cal.interval is None and cal.tail is None
