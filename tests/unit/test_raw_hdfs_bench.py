"""bench/raw_hdfs.py's pure parts: reading the stream, sessions, the split, labels, mined
ids and the daily files it trains on."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest

from bench.raw_hdfs import (
    UNMATCHED,
    Line,
    group_sessions,
    impure_groups,
    is_test_block,
    label_blocks,
    main,
    mined_ids,
    read_events,
    sessions_of,
    split_blocks,
    write_days,
)
from schemas.daily_files import read_sessions
from schemas.errors import DataError
from schemas.sessions import Session
from trainer.time_gaps import gaps_from_times

DAY_MS = 1_226_188_800_000  # 2008-11-09T00:00:00Z


def _line(ts: int, sid: str, eid: str = "E1", msg: str = "m") -> Line:
    return Line(ts, sid, eid, msg)


def test_read_events_parses_iso_times_and_gzip(tmp_path: Path) -> None:
    rows = [
        {"ts": "2008-11-09T20:35:30Z", "service": "s", "session_id": "blk_1",
         "event_id": "E5", "level": "INFO", "message": "Receiving block blk_1"},
        {"ts": 1_226_262_931_000, "service": "s", "session_id": "blk_2",
         "event_id": "E22", "message": "allocateBlock blk_2"},
    ]  # fmt: skip
    path = tmp_path / "events.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(orjson.dumps(r) for r in rows) + b"\n\n")
    assert read_events(path) == [
        Line(1_226_262_930_000, "blk_1", "E5", "Receiving block blk_1"),
        Line(1_226_262_931_000, "blk_2", "E22", "allocateBlock blk_2"),
    ]


def test_sessions_are_in_time_order_ties_in_file_order() -> None:
    lines = [
        _line(5, "b"),
        _line(3, "a"),
        _line(2, "b"),
        _line(3, "a"),
        _line(1, "a"),
        _line(2, "b"),
    ]
    sessions = group_sessions(lines)
    assert list(sessions) == ["b", "a"]  # by first appearance
    assert sessions["b"] == [2, 5, 0]  # ts 2 (index 2), ts 2 (index 5), ts 5
    assert sessions["a"] == [4, 1, 3]


def test_the_split_is_deterministic_and_partitions_the_blocks() -> None:
    ids = [f"blk_{i}" for i in range(-500, 500)]
    train, test = split_blocks(ids)
    assert sorted(train + test) == sorted(ids)
    assert train == [b for b in ids if not is_test_block(b)]  # order kept
    assert split_blocks(ids) == (train, test)
    assert 400 < len(test) < 600


def test_the_split_is_salted_against_the_dev_samples_own_hash() -> None:
    # The dev sample holds only blocks whose unsalted sha256 has an even first byte: an
    # unsalted parity would put them all in one half. The salted one splits them.
    sample = [
        b
        for b in (f"blk_{i}" for i in range(2000))
        if hashlib.sha256(b.encode()).digest()[0] & 1 == 0
    ]
    _, test = split_blocks(sample)
    assert len(sample) > 900
    assert 0.4 < len(test) / len(sample) < 0.6


def test_labels_from_dev_files_then_training_blocks() -> None:
    dev = {"a": 1, "b": 0}
    assert label_blocks(["a", "b", "t"], dev, ["t", "x"]) == {"a": 1, "b": 0, "t": 0}
    # A dev label wins over membership in the training file.
    assert label_blocks(["a"], dev, ["a"]) == {"a": 1}
    with pytest.raises(DataError, match=r"1 blocks have no label, e\.g\. u"):
        label_blocks(["a", "u"], dev, [])


def test_training_lines_are_mined_and_test_lines_only_matched() -> None:
    messages = [
        "Receiving block blk_1 src: /10.0.0.1:1 dest: /10.0.0.2:2",
        "Deleting block blk_1 file /data/blk_1",
        "Receiving block blk_2 src: /10.0.0.3:1 dest: /10.0.0.4:2",  # test: matches
        "Verification succeeded for blk_2",  # test: no template
        "Receiving block blk_3 src: /10.0.0.5:1 dest: /10.0.0.6:2",
    ]
    lines = [_line(i, "s", "E0", m) for i, m in enumerate(messages)]
    ids, miner, seconds = mined_ids(lines, [0, 1, 4], [2, 3])
    assert ids == ["T1", "T2", "T1", UNMATCHED, "T1"]
    assert len(miner) == 2  # matching added nothing
    assert set(seconds) == {"mine_s", "match_s"}
    # A line in neither half gets no id.
    assert mined_ids(lines, [0], [])[0] == ["T1", "", "", "", ""]


def test_impure_groups_names_splits_and_merges() -> None:
    truth = ["E1", "E1", "E2", "E3", "E4", "E4"]
    pred = ["T1", "T2", "T3", "T3", "T4", "T4"]
    assert impure_groups(pred, truth) == {
        "E1": {"T1": 1, "T2": 1},  # split
        "E2": {"T3": 1},  # merged with E3
        "E3": {"T3": 1},
    }


def test_daily_files_hold_each_session_under_its_first_events_day(tmp_path: Path) -> None:
    hour = 3_600_000
    sessions = [
        Session("a", ("T1",), start_ts=DAY_MS + 23 * hour, end_ts=DAY_MS + 25 * hour, label=0),
        Session("b", ("T2", "T1"), start_ts=DAY_MS + 25 * hour, end_ts=DAY_MS + 26 * hour),
        Session("c", ("T1",), start_ts=DAY_MS + 1, end_ts=DAY_MS + 2),
    ]
    (tmp_path / "days").mkdir()
    (tmp_path / "days" / "stale.jsonl").write_text("")
    paths = write_days(tmp_path / "days", sessions)
    assert [p.name for p in paths] == [
        "preprocessed_logs_2008-11-09.jsonl",
        "preprocessed_logs_2008-11-10.jsonl",
    ]
    assert sorted(p.name for p in (tmp_path / "days").iterdir()) == [p.name for p in paths]
    assert [s.session_id for s in read_sessions(paths[0])] == ["a", "c"]
    assert list(read_sessions(paths[1])) == [sessions[1]]


def test_gaps_are_each_events_time_since_the_one_before() -> None:
    assert gaps_from_times([5_000, 5_000, 7_000, 10_500]) == (0, 0, 2_000, 3_500)
    assert gaps_from_times([42]) == (0,)
    assert gaps_from_times([]) == ()
    with pytest.raises(ValueError, match="in order"):
        gaps_from_times([2_000, 1_000])


def test_sessions_carry_gaps_in_their_event_order_only_when_asked(tmp_path: Path) -> None:
    lines = [_line(3_000, "b1", "E2"), _line(1_000, "b1", "E1"), _line(1_000, "b1", "E3")]
    grouped = group_sessions(lines)
    ids = [x.event_id for x in lines]
    [timed] = sessions_of(["b1"], grouped, lines, ids, {"b1": 1}, with_gaps=True)
    assert timed.events == ("E1", "E3", "E2")
    assert timed.gaps_ms == (0, 0, 2_000)
    [blind] = sessions_of(["b1"], grouped, lines, ids, {"b1": 1})
    assert blind.gaps_ms is None and blind.events == timed.events
    # The daily files keep them, for `logad train --time-buckets`.
    [path] = write_days(tmp_path / "days", [timed])
    assert [s.gaps_ms for s in read_sessions(path)] == [(0, 0, 2_000)]


def test_a_time_aware_run_may_not_overwrite_the_committed_results() -> None:
    with pytest.raises(SystemExit, match="--results"):
        main(["--time-buckets", "16"])
    with pytest.raises(SystemExit, match="--results"):
        main(["--time-buckets", "16", "--results", "bench/results/raw_hdfs.json"])
