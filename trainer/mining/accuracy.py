"""Grouping accuracy (GA) of a log parser, as Loghub scores it (Zhu et al., ICSE-SEIP 2019).

A line counts as correct when the set of lines its predicted template holds is exactly the
set of lines its true template holds; GA is the share of correct lines. Template names and
texts play no part, only the grouping.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def grouping_accuracy(predicted: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} lines")
    if not truth:
        raise ValueError("no lines to score")
    # Two groups hold the same lines exactly when each line of the predicted group has the
    # same true label and the groups have the same size.
    pred_size: dict[Hashable, int] = {}
    true_size: dict[Hashable, int] = {}
    labels: dict[Hashable, set[Hashable]] = {}
    for p, t in zip(predicted, truth, strict=True):
        pred_size[p] = pred_size.get(p, 0) + 1
        true_size[t] = true_size.get(t, 0) + 1
        labels.setdefault(p, set()).add(t)
    correct = 0
    for p, t in zip(predicted, truth, strict=True):
        if len(labels[p]) == 1 and pred_size[p] == true_size[t]:
            correct += 1
    return correct / len(truth)
