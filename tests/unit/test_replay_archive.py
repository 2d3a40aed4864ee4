"""`logad replay --archive-dir`: scored windows into serve's archive, days marked complete."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from schemas.daily_files import DONE_SUFFIX, find_daily_files, read_sessions, write_sessions
from schemas.events import LogEvent
from schemas.scores import Score
from schemas.sessions import Session
from stream.cli import main
from stream.jobs import replay_run
from stream.jobs.replay_run import archive_watermark
from stream.serve.archive import DAY_MS, LATE_DIR, day_end_ms
from tests.fakes import FakeScorer, event_count

DAY1 = date(2026, 1, 1)
MIDNIGHT = day_end_ms(DAY1)  # the start of 2026-01-02


@pytest.fixture(autouse=True)
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model-free scorer: a window's score is its event count, over 5 alerts."""
    from trainer.scoring import WindowScorer

    monkeypatch.setattr(replay_run, "resolve_model", lambda p: p)
    monkeypatch.setattr(
        WindowScorer, "from_bundle", lambda *a, **k: FakeScorer(threshold=5.0, rule=event_count)
    )
    monkeypatch.setattr(replay_run, "read_bundle_templates", lambda p: None)


def _day(directory: Path, done: bool = True) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "preprocessed_logs_2026-01-01.jsonl"
    write_sessions(
        path,
        [
            Session("a", ("x",) * 3, MIDNIGHT - 80_000_000, MIDNIGHT - 79_999_000, None),
            Session("b", ("y",) * 7, MIDNIGHT - 50_000_000, MIDNIGHT - 49_990_000, None),
            Session("c", ("z",) * 600, MIDNIGHT - 1_000, MIDNIGHT + 9_000, None),  # past midnight
        ],
    )
    if done:
        path.with_name(path.name + DONE_SUFFIX).touch()
    return path


def _replay(tmp: Path, days: Path, archive: Path, *extra: str) -> list[Score]:
    out = tmp / "scores.jsonl"
    argv = ["replay", "--model", str(tmp), "--days-dir", str(days), "--out", str(out)]
    assert main([*argv, "--archive-dir", str(archive), *extra]) == 0
    return [Score.decode(x) for x in out.read_bytes().splitlines()]


def _archived(archive: Path) -> list[Session]:
    return [s for f in find_daily_files([archive]) for s in read_sessions(f.path)]


def test_every_window_is_archived_with_its_score_and_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    scores = _replay(tmp_path, _day(tmp_path / "days"), archive)
    lines = _archived(archive)
    # One line per scored window (the 600-event session is two windows), as serve writes it.
    assert len(lines) == len(scores) == 4
    by_window = {(s.session_id, len(s.events)): s for s in lines}
    for sc in scores:
        line = by_window[(sc.session_id, sc.n_events)]
        assert line.score == sc.score and line.alerted == sc.anomalous
        assert (line.start_ts, line.end_ts) == (sc.first_ts, sc.last_ts)
        assert line.label is None
    assert [s.alerted for s in lines if s.session_id == "a"] == [False]
    assert [s.alerted for s in lines if s.session_id == "b"] == [True]
    # Each window goes to the day of its last event: the session past midnight to the next.
    day1 = archive / "preprocessed_logs_2026-01-01.jsonl"
    day2 = archive / "preprocessed_logs_2026-01-02.jsonl"
    assert [s.session_id for s in read_sessions(day1)] == ["a", "b"]
    assert [s.session_id for s in read_sessions(day2)] == ["c", "c"]
    # The source day was complete, so the archive's is; the next day has just begun.
    assert (archive / (day1.name + DONE_SUFFIX)).exists()
    assert not (archive / (day2.name + DONE_SUFFIX)).exists()
    assert [f.day for f in find_daily_files([archive], complete_only=True)] == [DAY1]
    assert "days marked complete: 2026-01-01" in capsys.readouterr().out


def test_an_incomplete_source_day_stays_open_and_a_rerun_goes_late(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    days = tmp_path / "days"
    src = _day(days, done=False)
    _replay(tmp_path, days, archive)
    assert not list(archive.glob("*" + DONE_SUFFIX))
    src.with_name(src.name + DONE_SUFFIX).touch()
    _replay(tmp_path, days, archive)
    assert [f.day for f in find_daily_files([archive], complete_only=True)] == [DAY1]
    # The day is complete now: a third replay of it goes to late/, as serve's stragglers do.
    before = (archive / src.name).read_bytes()
    _replay(tmp_path, days, archive)
    assert (archive / src.name).read_bytes() == before
    assert [s.session_id for s in read_sessions(archive / LATE_DIR / src.name)] == ["a", "b"]


def test_an_events_replay_marks_the_days_its_event_time_passed(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    gap = 1_000
    times = [MIDNIGHT - 5_000, MIDNIGHT - 4_999, MIDNIGHT + 10 * gap]
    events.write_bytes(
        b"".join(LogEvent(t, "gw", f"s{i}", "T1").encode() + b"\n" for i, t in enumerate(times))
    )
    archive = tmp_path / "archive"
    argv = ["replay", "--model", str(tmp_path), "--events", str(events)]
    argv += ["--archive-dir", str(archive), "--gap-ms", str(gap), "--allowed-lateness-ms", "0"]
    assert main(argv) == 0  # no --out: the archive is enough
    assert [f.day for f in find_daily_files([archive], complete_only=True)] == [DAY1]
    assert len(_archived(archive)) == 3


def test_the_archive_cannot_be_the_days_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = tmp_path / "days"
    _day(days)
    argv = ["replay", "--model", str(tmp_path), "--days-dir", str(days)]
    assert main([*argv, "--archive-dir", str(days)]) == 2
    assert "must not be the --days-dir" in capsys.readouterr().err.strip().splitlines()[-1]


def test_archive_watermark() -> None:
    assert archive_watermark(None, [], 0, 10) is None
    assert archive_watermark(MIDNIGHT + 500, [], 100, 10) == MIDNIGHT + 400
    # A complete day file read puts event time past its end plus the grace.
    assert archive_watermark(MIDNIGHT - 1, [DAY1], 0, 10) == MIDNIGHT + 10
    assert archive_watermark(MIDNIGHT + 2 * DAY_MS, [DAY1], 0, 10) == MIDNIGHT + 2 * DAY_MS
