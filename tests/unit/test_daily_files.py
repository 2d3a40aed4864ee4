from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pytest

from schemas import DataError, Session
from schemas.daily_files import (
    daily_file_name,
    find_daily_files,
    is_complete,
    iter_sessions,
    read_sessions,
    write_complete_day,
    write_sessions,
)


def _day(d: Path, day: str, n: int) -> Path:
    p = d / daily_file_name(date.fromisoformat(day))
    write_sessions(p, (Session(f"{day}-{i}", ("a", "b")) for i in range(n)))
    return p


def test_find_filters_by_date_and_sorts(tmp_path: Path) -> None:
    for day in ("2026-01-03", "2026-01-01", "2026-01-02"):
        _day(tmp_path, day, 2)
    (tmp_path / "notes.txt").write_text("x")
    files = find_daily_files([tmp_path], date(2026, 1, 2), date(2026, 1, 3))
    assert [f.day for f in files] == [date(2026, 1, 2), date(2026, 1, 3)]
    assert len(list(iter_sessions(files))) == 4


def test_json_array_files_are_read(tmp_path: Path) -> None:
    p = tmp_path / "preprocessed_logs_2026-01-01.json"
    p.write_bytes(orjson.dumps([{"session_id": "s", "events": ["a"], "label": 1}]))
    assert list(read_sessions(p)) == [Session("s", ("a",), label=1)]


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"session_id":"s","events":["a"]}\n{"session_id":"s","events":"a"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2"):
        list(read_sessions(p))
    assert len(list(read_sessions(p, strict=False))) == 1


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"session_id":"s","events":["a"]}\n{"session_id":"t","ev')
    assert [s.session_id for s in read_sessions(p)] == ["s"]


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        find_daily_files([tmp_path / "nope"])


def test_shared_hdfs_file_reads() -> None:
    path = Path(__file__).resolve().parents[2] / "data" / "hdfs" / "train.jsonl"
    sessions = list(read_sessions(path))
    assert len(sessions) == 5583
    assert all(s.events for s in sessions)


def test_a_complete_day_is_written_marked_and_found(tmp_path: Path) -> None:
    day = date(2026, 3, 2)
    path = write_complete_day(tmp_path / "new", day, [Session("s1", ("a", "b"))])
    assert path.name == daily_file_name(day) and is_complete(path)
    assert [s.session_id for s in read_sessions(path)] == ["s1"]
    assert [f.path for f in find_daily_files([tmp_path / "new"], complete_only=True)] == [path]
