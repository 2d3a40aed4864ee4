"""Results files name paths relative to the repository, not one machine's directories."""

from __future__ import annotations

from pathlib import Path

from bench.machine import REPO, shown_path


def test_paths_inside_the_repo_are_relative() -> None:
    assert shown_path(REPO / "bench" / "out" / "hdfs" / "model") == "bench/out/hdfs/model"


def test_data_in_the_repo_is_relative() -> None:
    assert shown_path(REPO / "data" / "hdfs" / "train.jsonl") == "data/hdfs/train.jsonl"


def test_other_paths_stay_absolute() -> None:
    outside = Path("/nonexistent-logad-dir/f")
    assert not outside.is_relative_to(REPO)
    assert shown_path(outside) == "/nonexistent-logad-dir/f"
