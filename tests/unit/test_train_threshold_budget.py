"""`logad train` with a false-alert budget: the bundle records the method, the budget and
the interval; a budget per hour needs the traffic's rate, and says so before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.bundle import Calibration
from schemas.daily_files import read_sessions, write_sessions
from schemas.sessions import Session
from stream.cli.train import main
from tests.train_data import cli_flags, hdfs_day

FLAGS = ["--epochs", "1", "--val-fraction", "0.5", "--score-groups", "2"]


def _argv(tmp: Path, day: Path) -> list[str]:
    return ["--log-level", "warning", "train", *cli_flags(tmp), "--data", str(day), *FLAGS]


def test_pot_budget_per_1000_windows_is_in_the_bundle(tmp_path: Path) -> None:
    day = hdfs_day(tmp_path / "days", 240)
    out = tmp_path / "m"
    argv = [*_argv(tmp_path, day), "--out", str(out)]
    assert main([*argv, "--threshold-method", "pot", "--alert-budget", "5"]) == 0
    cal = Calibration.from_json((out / "calibration.json").read_bytes())
    assert cal.budget is not None and cal.budget.per_window == 0.005
    assert cal.budget.unit == "per_1000_windows"
    assert cal.threshold_method == "pot" and cal.tail is not None
    assert cal.tail.n == cal.n_windows and len(cal.tail.peaks) >= 20
    assert cal.interval is not None and cal.interval.lower <= cal.interval.upper


def test_budget_per_hour_uses_session_times_or_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = hdfs_day(tmp_path / "days", 240)  # HDFS sessions carry no times
    argv = [*_argv(tmp_path, day), "--alert-budget", "2", "--alert-budget-unit", "per_hour"]
    assert main([*argv, "--out", str(tmp_path / "m1")]) == 2
    assert "give windows_per_hour" in capsys.readouterr().err
    assert not (tmp_path / "m1").exists()
    # The same sessions, 10 s apart: 240 windows over 2,390 s, about 361.5 an hour.
    timed = tmp_path / "timed" / day.name
    timed.parent.mkdir()
    write_sessions(
        timed,
        [
            Session(s.session_id, s.events, 10_000 * i, 10_000 * i)
            for i, s in enumerate(read_sessions(day))
        ],
    )
    out = tmp_path / "m2"
    budget = ["--alert-budget", "2", "--alert-budget-unit", "per_hour"]
    assert main([*_argv(tmp_path, timed), *budget, "--out", str(out)]) == 0
    cal = Calibration.from_json((out / "calibration.json").read_bytes())
    assert cal.budget is not None and cal.budget.windows_per_hour == pytest.approx(
        240 / (2_390 / 3600)
    )
    assert cal.budget.per_window == pytest.approx(2 / cal.budget.windows_per_hour)
