"""The miner's default parameters meet the grouping-accuracy target on Loghub-2k (one
configuration for all five systems: mean GA >= 0.97, each >= 0.95); bench/parse_loghub.py
measures the same against Drain3, with speed."""

from __future__ import annotations

import statistics

from bench.parse_loghub import SYSTEMS, TARGET, logad_parse, read_system
from trainer.mining.accuracy import grouping_accuracy


def test_default_miner_meets_the_grouping_accuracy_target() -> None:
    scores = {}
    for system in SYSTEMS:
        lines, truth = read_system(system)
        scores[system] = grouping_accuracy(logad_parse(lines), truth)
    assert min(scores.values()) >= TARGET["min_ga"], scores
    assert statistics.fmean(scores.values()) >= TARGET["mean_ga"], scores


def test_loghub_content_has_no_carriage_returns() -> None:
    lines, truth = read_system("HDFS")
    assert len(lines) == len(truth) == 2000
    assert not any("\r" in line for line in lines)
