"""Detection-quality metrics over session scores (pure numpy).

Conventions: a session is flagged when `score > threshold` (as the scorer alerts); label 1
is anomalous, the positive class. Normal and anomalous scores come as two arrays.

Precision at the population ratio: the dev normals are a uniform sample of all normal
sessions, so a measured FPR and recall extrapolate to the full population of Nn normals and
Na anomalies as `P = R*Na / (R*Na + FPR*Nn)` (data/README.md). Curves (ROC,
precision-recall, AUPRC) weight each normal by Nn / n_normal and each anomaly by
Na / n_abnormal the same way, so AUPRC too is "at the natural ratio" when a population is
given. AUROC does not depend on the ratio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Population:
    """Sizes of the populations the samples were drawn from (for precision and AUPRC)."""

    normals: int
    abnormals: int

    def __post_init__(self) -> None:
        if self.normals <= 0 or self.abnormals <= 0:
            raise ValueError(f"population sizes must be > 0, got {self.normals}, {self.abnormals}")


@dataclass(frozen=True)
class Detection:
    """Figures at one threshold, plus the threshold-free AUROC and AUPRC."""

    threshold: float
    n_normal: int
    n_abnormal: int
    false_positives: int
    true_positives: int
    fpr: float
    recall: float
    precision: float
    """At the population ratio when one was given, else on the samples as given."""
    f1: float
    auroc: float
    auprc: float
    population: Population | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scores(x: npt.ArrayLike, what: str) -> FloatArray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"no {what} scores")
    if np.isnan(a).any():
        raise ValueError(f"{int(np.isnan(a).sum())} {what} scores are NaN")
    return a


def flagged_fraction(scores: npt.ArrayLike, threshold: float) -> float:
    """Share of scores strictly above the threshold."""
    s = _scores(scores, "")
    return float((s > threshold).mean())


def population_precision(recall: float, fpr: float, n_abnormal: float, n_normal: float) -> float:
    """`R*Na / (R*Na + FPR*Nn)`: the precision a detector with this recall and FPR would have
    on a population of Na anomalies and Nn normals. 0.0 when nothing would be flagged."""
    tp = recall * n_abnormal
    fp = fpr * n_normal
    return float(tp / (tp + fp)) if tp + fp > 0 else 0.0


def f1_score(precision: float, recall: float) -> float:
    return 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def average_ranks(x: npt.ArrayLike) -> FloatArray:
    """1-based ranks, tied values sharing the mean of their ranks (scipy's 'average')."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # Start index of each run of equal values, and the run each sorted element belongs to.
    new_run = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], a.size]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def auroc(normal: npt.ArrayLike, abnormal: npt.ArrayLike) -> float:
    """Area under the ROC curve: P(anomaly scores above a normal), ties counting 1/2.

    Computed from ranks (the Mann-Whitney U statistic), so it is exact with ties.
    """
    neg = _scores(normal, "normal")
    pos = _scores(abnormal, "abnormal")
    ranks = average_ranks(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


@dataclass(frozen=True)
class Curve:
    """Operating points at every distinct score, from the highest threshold down.

    Point i flags every session scoring >= thresholds[i] (equivalently > the next lower
    distinct score); fpr, recall and precision are at the population ratio when the curve
    was built with one.
    """

    thresholds: FloatArray
    fpr: FloatArray
    recall: FloatArray
    precision: FloatArray


def curve(
    normal: npt.ArrayLike, abnormal: npt.ArrayLike, population: Population | None = None
) -> Curve:
    neg = _scores(normal, "normal")
    pos = _scores(abnormal, "abnormal")
    w_neg = population.normals / neg.size if population else 1.0
    w_pos = population.abnormals / pos.size if population else 1.0
    s = np.concatenate([pos, neg])
    is_pos = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    order = np.argsort(-s, kind="mergesort")
    s, is_pos = s[order], is_pos[order]
    # The last index of each run of equal scores: a threshold takes a tie group whole.
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(is_pos)[last].astype(np.float64)
    fp = np.cumsum(~is_pos)[last].astype(np.float64)
    tpw, fpw = tp * w_pos, fp * w_neg
    return Curve(
        thresholds=s[last],
        fpr=fp / neg.size,
        recall=tp / pos.size,
        precision=tpw / (tpw + fpw),  # > 0: every point flags at least one session
    )


def average_precision(
    normal: npt.ArrayLike, abnormal: npt.ArrayLike, population: Population | None = None
) -> float:
    """AUPRC as average precision: sum over operating points of (R_i - R_{i-1}) * P_i.

    This is the step-wise sum (no interpolation, which overstates the area), as in
    scikit-learn's `average_precision_score`; with a population, precision is extrapolated.
    """
    c = curve(normal, abnormal, population)
    d_recall = np.diff(np.r_[0.0, c.recall])
    return float((d_recall * c.precision).sum())


def detection(
    normal: npt.ArrayLike,
    abnormal: npt.ArrayLike,
    threshold: float,
    population: Population | None = None,
) -> Detection:
    """Every figure at `threshold` (flag when score > threshold), plus AUROC and AUPRC."""
    neg = _scores(normal, "normal")
    pos = _scores(abnormal, "abnormal")
    fp = int((neg > threshold).sum())
    tp = int((pos > threshold).sum())
    fpr = fp / neg.size
    recall = tp / pos.size
    if population is None:
        precision = tp / (tp + fp) if tp + fp else 0.0
    else:
        precision = population_precision(recall, fpr, population.abnormals, population.normals)
    return Detection(
        threshold=float(threshold),
        n_normal=int(neg.size),
        n_abnormal=int(pos.size),
        false_positives=fp,
        true_positives=tp,
        fpr=fpr,
        recall=recall,
        precision=precision,
        f1=f1_score(precision, recall),
        auroc=auroc(neg, pos),
        auprc=average_precision(neg, pos, population),
        population=population,
    )
