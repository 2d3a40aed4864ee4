from __future__ import annotations

import numpy as np
import pytest

from trainer.calibration import threshold_from_quantile
from trainer.metrics import (
    Population,
    auroc,
    average_precision,
    average_ranks,
    curve,
    detection,
    f1_score,
    population_precision,
)


def test_population_precision_hand_computed() -> None:
    # R = 0.9 of 16838 anomalies = 15154.2 flagged; FPR 0.001 of 552640 normals = 552.64.
    p = population_precision(0.9, 0.001, 16838, 552640)
    assert p == pytest.approx(15154.2 / (15154.2 + 552.64), rel=1e-12)
    assert p == pytest.approx(0.964815, abs=1e-6)
    # No false positives: precision 1; nothing flagged at all: 0 by convention.
    assert population_precision(0.5, 0.0, 10, 10) == 1.0
    assert population_precision(0.0, 0.0, 10, 10) == 0.0


def test_detection_extrapolates_to_population() -> None:
    normal = np.r_[np.zeros(998), [5.0, 6.0]]  # FPR 2/1000 at threshold 1
    abnormal = np.r_[np.full(95, 9.0), np.zeros(5)]  # recall 0.95
    d = detection(normal, abnormal, 1.0, Population(normals=552640, abnormals=16838))
    assert (d.false_positives, d.true_positives) == (2, 95)
    assert d.fpr == pytest.approx(0.002) and d.recall == pytest.approx(0.95)
    tp, fp = 0.95 * 16838, 0.002 * 552640
    assert d.precision == pytest.approx(tp / (tp + fp))
    assert d.f1 == pytest.approx(2 * d.precision * 0.95 / (d.precision + 0.95))
    # Without a population, precision is on the samples as given: 95 / 97.
    assert detection(normal, abnormal, 1.0).precision == pytest.approx(95 / 97)


def test_threshold_is_strict() -> None:
    d = detection([1.0, 2.0], [2.0, 3.0], 2.0)
    assert (d.false_positives, d.true_positives) == (0, 1)


def test_f1() -> None:
    assert f1_score(1.0, 1.0) == 1.0
    assert f1_score(0.5, 1.0) == pytest.approx(2 / 3)
    assert f1_score(0.0, 0.0) == 0.0


def test_auroc_perfect_inverted_ties() -> None:
    assert auroc([0.1, 0.2, 0.3], [0.5, 0.9]) == 1.0
    assert auroc([0.5, 0.9], [0.1, 0.2, 0.3]) == 0.0
    assert auroc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5


def test_auroc_hand_computed() -> None:
    # Pairs (pos, neg): 3 > 1, 3 > 2, 3 = 3 (half), 2 > 1, 2 = 2 (half), 2 < 3 -> 4 / 6.
    assert auroc([1.0, 2.0, 3.0], [3.0, 2.0]) == pytest.approx(4 / 6)


def test_auroc_matches_pairwise_count() -> None:
    rng = np.random.default_rng(0)
    neg = rng.integers(0, 10, 50).astype(float)
    pos = rng.integers(3, 13, 40).astype(float)
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auroc(neg, pos) == pytest.approx(pairs / (40 * 50), rel=1e-12)


def test_average_ranks_ties() -> None:
    assert average_ranks([10.0, 20.0, 10.0, 30.0]).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_average_precision_known() -> None:
    assert average_precision([0.1, 0.2], [0.8, 0.9]) == 1.0
    # Descending: 0.9 pos (P 1, R 1/2), 0.8 neg, 0.7 pos (P 2/3, R 1) -> 1/2 + 1/3.
    assert average_precision([0.8, 0.1], [0.9, 0.7]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # All tied: one operating point, precision = positive share.
    assert average_precision([1.0, 1.0, 1.0], [1.0]) == pytest.approx(0.25)


def test_average_precision_weights_by_population() -> None:
    # Same ranking as above; normals weigh 10x: P at R=1 is 2 / (2 + 10 * 1).
    pop = Population(normals=20, abnormals=2)
    assert average_precision([0.8, 0.1], [0.9, 0.7], pop) == pytest.approx(0.5 + 0.5 * 2 / 12)


def test_curve_points() -> None:
    c = curve([1.0, 2.0], [2.0, 3.0])
    assert c.thresholds.tolist() == [3.0, 2.0, 1.0]
    assert c.recall.tolist() == [0.5, 1.0, 1.0]
    assert c.fpr.tolist() == [0.0, 0.5, 1.0]


def test_threshold_from_quantile_is_a_score() -> None:
    scores = np.arange(1.0, 1001.0)  # 1..1000
    # "higher": the smallest score at or above the quantile's position, never interpolated.
    assert threshold_from_quantile(scores, 0.999) == 1000.0
    assert threshold_from_quantile(scores, 0.99) == 991.0
    assert threshold_from_quantile(scores, 0.5) == 501.0
    t = threshold_from_quantile(scores, 0.99)
    # At most 1% of the calibration scores lie above it.
    assert (scores > t).mean() <= 0.01


def test_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError):
        auroc([], [1.0])
    with pytest.raises(ValueError):
        detection([float("nan")], [1.0], 0.0)
    with pytest.raises(ValueError):
        Population(0, 5)
