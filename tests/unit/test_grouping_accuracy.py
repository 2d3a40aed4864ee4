"""Grouping accuracy: a line is right when its predicted group holds exactly its true
group's lines."""

from __future__ import annotations

import pytest

from trainer.mining.accuracy import grouping_accuracy


def test_perfect_grouping_whatever_the_names() -> None:
    assert grouping_accuracy(["x", "x", "y"], ["A", "A", "B"]) == 1.0


def test_a_merged_group_makes_all_its_lines_wrong() -> None:
    # x holds A's lines and B's: none of them is right; C's single line is.
    assert grouping_accuracy(["x", "x", "x", "z"], ["A", "A", "B", "C"]) == 0.25


def test_a_split_group_makes_all_its_lines_wrong() -> None:
    # A is split into x and y: its three lines are wrong, B's two are right.
    assert grouping_accuracy(["x", "x", "y", "z", "z"], ["A", "A", "A", "B", "B"]) == 0.4


def test_lengths_must_agree() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3 lines"):
        grouping_accuracy(["x", "y"], ["A", "B", "C"])
    with pytest.raises(ValueError, match="no lines"):
        grouping_accuracy([], [])
