"""bench/time_aware_hdfs.py's pure parts: missed patterns, the spread over seeds and the
paired per-seed difference."""

from __future__ import annotations

import pytest

from bench.machine import summary_of
from bench.time_aware_hdfs import RULES, missed_patterns, paired, parser, pattern, spread
from schemas.sessions import Session


def _row(f1: float, recall: float = 1.0) -> dict[str, float]:
    return {"f1": f1, "precision": 1.0, "recall": recall, "fpr": 0.0, "auroc": 0.99}


def test_a_pattern_is_the_first_events_and_says_when_it_was_cut() -> None:
    assert pattern(("E22", "E5")) == "E22 E5"
    assert pattern(tuple(f"E{i}" for i in range(10))) == "E0 E1 E2 E3 E4 E5 E6 E7 ..."


def test_missed_patterns_count_only_unflagged_anomalous_sessions() -> None:
    sessions = [
        Session("a", ("E22", "E5"), label=1),
        Session("b", ("E22", "E5"), label=1),
        Session("c", ("E22", "E5"), label=1),
        Session("d", ("E1",), label=1),
        Session("e", ("E22", "E5"), label=0),
    ]
    flags = [False, False, True, False, False]
    missed = missed_patterns(sessions, flags)
    assert missed == {"E22 E5": 2, "E1": 1}
    assert list(missed) == ["E22 E5", "E1"]  # most frequent first


def test_spread_gives_mean_min_and_max_per_figure() -> None:
    s = spread([_row(0.88, 0.7857), _row(0.99), _row(0.9474, 0.9)])
    assert s["f1"] == {"mean": 0.9391, "min": 0.88, "max": 0.99}
    assert s["recall"]["min"] == 0.7857 and s["recall"]["max"] == 1.0
    assert set(s) == {"f1", "precision", "recall", "fpr", "auroc"}


def test_paired_differences_are_per_seed_time_minus_blind() -> None:
    p = paired([_row(0.88), _row(0.99), _row(0.9)], [_row(0.99), _row(0.99), _row(0.85)])
    assert p["f1_time_minus_blind"] == [0.11, 0.0, -0.05]
    assert (p["time_better"], p["same"], p["blind_better"]) == (1, 1, 1)
    assert p["mean"] == pytest.approx(0.02)
    with pytest.raises(ValueError):
        paired([_row(0.9)], [])


def test_the_index_summary_names_both_ways_and_both_rule_settings() -> None:
    ways = {
        "blind": spread([_row(0.88), _row(0.99)]),
        "time": spread([_row(0.87), _row(0.98)]),
    }
    payload = {
        "bench": "time_aware_hdfs",
        "config": {"seeds": [0, 1]},
        "summary": {"shipped": ways, "no known ends": {**ways, "time": spread([_row(0.5)])}},
    }
    line = summary_of(payload)
    assert "2 seeds" in line
    assert "time-blind 0.935 (0.88..0.99), time-aware 0.925 (0.87..0.98)" in line
    assert "without known ends 0.935 (0.88..0.99) and 0.5 (0.5..0.5)" in line


def test_the_defaults_train_five_seeds_against_sixteen_buckets() -> None:
    a = parser().parse_args([])
    assert a.seeds == [0, 1, 2, 3, 4] and a.time_buckets == 16
    assert RULES["shipped"] == {} and RULES["no known ends"] == {"known_ends": False}


@pytest.mark.parametrize("argv", [["--time-buckets", "1"], ["--seeds", "1", "1"]])
def test_bad_arguments_stop_before_any_work(argv: list[str]) -> None:
    from bench.time_aware_hdfs import main

    with pytest.raises(SystemExit, match="--"):
        main(argv)
