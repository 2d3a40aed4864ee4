"""Paths that cannot be written give one error line (exit 2), and before any long work."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.cli import main


def _last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A path whose parent is a regular file: nothing can be created there."""
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "sub"


def test_unwritable_days_dir(blocked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--days-dir", str(blocked), "--days", "1"]) == 2
    assert _last_line(capsys) == f"logad: error: Not a directory: {blocked}"


def test_evaluate_report_dir_is_made_before_the_model_loads(
    blocked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = tmp_path / "s.jsonl"
    sessions.write_text("")
    argv = ["evaluate", "--model", str(tmp_path / "no-model"), "--report", str(blocked)]
    assert main([*argv, "--normal", str(sessions), "--abnormal", str(sessions)]) == 2
    assert _last_line(capsys) == f"logad: error: Not a directory: {blocked}"


def test_replay_out_in_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    out = tmp_path / "gone" / "scores.jsonl"
    argv = ["replay", "--events", str(events), "--model", str(tmp_path / "m"), "--out", str(out)]
    assert main(argv) == 2
    assert _last_line(capsys).startswith(f"logad: error: cannot write {out}: no such directory")


def test_debug_keeps_the_traceback(blocked: Path) -> None:
    with pytest.raises(NotADirectoryError):
        main(["--log-level", "debug", "simulate", "--days-dir", str(blocked), "--days", "1"])
