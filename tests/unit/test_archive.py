"""The stream's daily archive: day math, lines, rotation, .done markers, torn tails."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path

import pytest

from schemas.daily_files import find_daily_files, read_sessions
from schemas.scores import Score
from schemas.windows import Window
from stream.serve.archive import (
    DAY_MS,
    ArchiveTap,
    DailyArchive,
    completed_days,
    cut_torn_tail,
    day_end_ms,
    utc_day,
)

D1 = 20454 * DAY_MS  # 2026-01-01T00:00Z


def _scored(
    sid: str, last_ts: int, score: float = 1.0, label: int | None = None
) -> tuple[Window, Score]:
    w = Window.build(sid, 0, ("a", "b", "c"), last_ts - 10, last_ts, 0, 1, 3, label=label)
    s = Score(w.window_id, sid, 0, "v1", score, 2.0, score > 2.0, 3, w.first_ts, w.last_ts, 0)
    return w, s


def test_day_math() -> None:
    assert utc_day(D1) == date(2026, 1, 1)
    assert utc_day(D1 - 1) == date(2025, 12, 31)
    assert utc_day(D1 + DAY_MS - 1) == date(2026, 1, 1)
    assert day_end_ms(date(2026, 1, 1)) == D1 + DAY_MS
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    assert completed_days(days, D1 + DAY_MS, 0) == [date(2026, 1, 1)]
    assert completed_days(days, D1 + DAY_MS, 1) == []
    assert completed_days(days, D1 + 2 * DAY_MS + 5, 5) == days


def test_lines_by_end_day_with_score_and_alert(tmp_path: Path) -> None:
    with DailyArchive(tmp_path) as a:
        a.append(*_scored("s1", D1 + 5, 3.0, label=1))
        a.append_many([_scored("s2", D1 + DAY_MS + 7, 0.5), _scored("s3", D1 + 9, 0.1)])
    day1 = list(read_sessions(tmp_path / "preprocessed_logs_2026-01-01.jsonl"))
    day2 = list(read_sessions(tmp_path / "preprocessed_logs_2026-01-02.jsonl"))
    assert [s.session_id for s in day1] == ["s1", "s3"]
    assert [s.session_id for s in day2] == ["s2"]
    s1 = day1[0]
    assert (s1.score, s1.alerted, s1.label, s1.end_ts) == (3.0, True, 1, D1 + 5)
    assert day2[0].alerted is False and day2[0].events == ("a", "b", "c")
    assert all(s.ended for s in day1 + day2)


def test_a_window_cut_mid_session_is_archived_as_not_ended(tmp_path: Path) -> None:
    w, s = _scored("s1", D1 + 5)
    cut = dataclasses.replace(w, ended=False)
    with DailyArchive(tmp_path) as a:
        a.append(cut, s)
    (line,) = read_sessions(tmp_path / "preprocessed_logs_2026-01-01.jsonl")
    assert line.ended is False


def test_mark_complete_writes_done_markers(tmp_path: Path) -> None:
    a = DailyArchive(tmp_path, grace_ms=1000)
    a.append(*_scored("s1", D1 + 5))
    a.append(*_scored("s2", D1 + DAY_MS + 5))
    assert a.mark_complete(D1 + DAY_MS + 999) == []
    assert a.mark_complete(D1 + DAY_MS + 1000) == [date(2026, 1, 1)]
    assert a.mark_complete(D1 + DAY_MS + 2000) == []  # already marked
    a.close()
    complete = find_daily_files([tmp_path], complete_only=True)
    assert [f.day for f in complete] == [date(2026, 1, 1)]
    assert len(find_daily_files([tmp_path])) == 2


def test_torn_last_line_after_a_kill_is_skipped_and_then_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = DailyArchive(tmp_path)
    for i in range(5):
        a.append(*_scored(f"s{i}", D1 + i))
    a.close()
    path = tmp_path / "preprocessed_logs_2026-01-01.jsonl"
    data = path.read_bytes()
    # A kill mid-append: the last line is cut in the middle.
    path.write_bytes(data[: len(data) - 20])
    with caplog.at_level(logging.WARNING):
        got = [s.session_id for s in read_sessions(path)]
    assert got == ["s0", "s1", "s2", "s3"]  # nothing before the torn line is lost
    # Reopening the day for append cuts the torn tail, so the next line stays whole.
    b = DailyArchive(tmp_path)
    b.append(*_scored("s9", D1 + 100))
    b.close()
    assert [s.session_id for s in read_sessions(path)] == ["s0", "s1", "s2", "s3", "s9"]
    assert path.read_bytes().endswith(b"\n")


def test_cut_torn_tail(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"one\ntwo\nthr")
    assert cut_torn_tail(p) == 3 and p.read_bytes() == b"one\ntwo\n"
    assert cut_torn_tail(p) == 0
    p.write_bytes(b"x" * 10000)
    assert cut_torn_tail(p) == 10000 and p.read_bytes() == b""


def test_rotation_closes_old_days(tmp_path: Path) -> None:
    a = DailyArchive(tmp_path)
    a.append(*_scored("s1", D1))
    a.append(*_scored("s2", D1 + DAY_MS))
    assert len(a._fds) == 2  # yesterday stays open for stragglers
    a.append(*_scored("s3", D1 + 2 * DAY_MS))
    assert sorted(a._fds) == [date(2026, 1, 2), date(2026, 1, 3)]
    a.close()
    assert a._fds == {}


def test_tap_marks_a_day_only_once_every_window_before_the_watermark_is_written(
    tmp_path: Path,
) -> None:
    tap = ArchiveTap(DailyArchive(tmp_path, grace_ms=0))
    done = tmp_path / "preprocessed_logs_2026-01-01.jsonl.done"
    first, second = _scored("a", D1 + 5), _scored("b", D1 + 6)
    tap.submitted([first[0], second[0]])
    tap.append([second])  # batches may finish out of order
    assert tap.tick(D1 + DAY_MS) == []  # the snapshot: both windows were submitted before it
    late = _scored("c", D1 + DAY_MS + 1)
    tap.submitted([late[0]])  # after the snapshot: not waited for
    assert tap.tick(D1 + DAY_MS) == [] and not done.exists()  # "a" is not written yet
    tap.append([first])
    assert tap.tick(D1 + 2 * DAY_MS) == [date(2026, 1, 1)] and done.exists()
    # The next snapshot (taken after "c" was submitted) waits for "c".
    assert tap.tick(D1 + 2 * DAY_MS) == []
    tap.append([late])
    assert tap.close(D1 + 3 * DAY_MS) == [date(2026, 1, 2)]
    ids = [s.session_id for f in find_daily_files([tmp_path]) for s in read_sessions(f.path)]
    assert ids == ["b", "a", "c"]


def test_tap_close_leaves_days_unmarked_while_windows_are_unwritten(tmp_path: Path) -> None:
    tap = ArchiveTap(DailyArchive(tmp_path, grace_ms=0))
    w, s = _scored("a", D1 + 5)
    tap.append([(w, s)])
    tap.submitted([_scored("b", D1 + 6)[0]])  # never written: scoring failed
    assert tap.close(D1 + 2 * DAY_MS) == []
    assert not list(tmp_path.glob("*.done"))
    assert [
        x.session_id for x in read_sessions(tmp_path / "preprocessed_logs_2026-01-01.jsonl")
    ] == ["a"]


def test_a_complete_day_is_never_appended_to_late_windows_go_to_late(tmp_path: Path) -> None:
    a = DailyArchive(tmp_path)
    a.append(*_scored("s1", D1 + 5))
    assert a.mark_complete(D1 + DAY_MS) == [date(2026, 1, 1)]
    day = tmp_path / "preprocessed_logs_2026-01-01.jsonl"
    before = day.read_bytes()
    a.append_many([_scored("late1", D1 + 7), _scored("s2", D1 + DAY_MS + 1)])
    a.append(*_scored("late2", D1 + 9))
    a.close()
    assert day.read_bytes() == before
    late = tmp_path / "late" / "preprocessed_logs_2026-01-01.jsonl"
    assert [s.session_id for s in read_sessions(late)] == ["late1", "late2"]
    # The trainer's reading of the archive: the complete day as it was marked.
    (complete,) = find_daily_files([tmp_path], complete_only=True)
    assert [s.session_id for s in read_sessions(complete.path)] == ["s1"]
    # A new archive on the same directory (a restart) knows the day is complete too.
    with DailyArchive(tmp_path) as again:
        again.append(*_scored("late3", D1 + 11))
    assert day.read_bytes() == before
    assert [s.session_id for s in read_sessions(late)] == ["late1", "late2", "late3"]
