"""bench/thresholds_hdfs.py's comparison, on scores with a known tail (no model)."""

from __future__ import annotations

import numpy as np

from bench.thresholds_hdfs import BUDGETS, METHODS, SIZES, compare


def test_compare_rows_cover_every_budget_size_and_method() -> None:
    rng = np.random.default_rng(0)
    cal = rng.exponential(1.0, 1100)
    held_out = rng.exponential(1.0, 20_000)
    rows = compare(cal, held_out, held_out * 0.5, draws=8, seed=0, resamples=5)
    assert len(rows) == len(BUDGETS) * (len(SIZES) + 1) * len(METHODS)
    by = {(r["budget_per_1000"], r["calibration_windows"], r["method"]): r for r in rows}
    small_q, small_p = by[(1.0, 200, "quantile")], by[(1.0, 200, "pot")]
    assert small_q["draws"] == small_p["draws"] == 8
    # With 200 windows the quantile for 1 in 1,000 is the maximum: about 5 in 1,000 exceed it.
    assert small_q["exceedances_per_1000"]["mean"] > 2.5
    assert small_p["used_pot"] == 8
    assert (
        small_p["exceedances_per_1000"]["mean_abs_error"]
        < small_q["exceedances_per_1000"]["mean_abs_error"]
    )
    whole = by[(1.0, 1100, "pot")]
    assert (
        whole["draws"] == 1
        and whole["interval_90"][0] <= whole["threshold"] <= whole["interval_90"][1]
    )
    # Served scores are lower here: fewer false alerts than exceedances.
    assert whole["false_alerts_per_1000_served"]["mean"] <= whole["exceedances_per_1000"]["mean"]
