"""bench/stream_raw.py's pure parts: the two encodings of one event, partitions, naming a
stream by its templates, and the paths' agreement."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bench.raw_hdfs import UNMATCHED
from bench.stream_raw import (
    build_stream,
    compare_windows,
    decode_and_match,
    decode_ids,
    events_scored,
    id_record,
    partitions_of,
    raw_record,
    repeated,
    window_scores,
)
from schemas.events import LogEvent
from trainer.mining import TemplateMiner
from trainer.mining.matcher import TemplateMatcher


def _event(i: int, sid: str, eid: str, msg: str, **extra: Any) -> dict[str, Any]:
    return {"ts": 1_000 + i, "service": "dn", "session_id": sid, "event_id": eid,
            "level": "INFO", "message": msg, **extra}  # fmt: skip


def _events() -> list[dict[str, Any]]:
    # Blocks are named so that both halves of bench/raw_hdfs.py's split occur.
    out: list[dict[str, Any]] = []
    for n in range(20):
        sid = f"blk_{n}"
        out.append(_event(2 * n, sid, "E5", f"Receiving block {sid} src: /10.0.0.{n}:1"))
        out.append(_event(2 * n + 1, sid, "E11", f"PacketResponder {n} for block {sid} done"))
    return out


def test_the_two_records_differ_only_by_the_event_id() -> None:
    e = _event(0, "blk_1", "T3", "Receiving block blk_1", attrs={"label": 1})
    assert LogEvent.decode(id_record(e)).to_dict() == e
    raw = orjson.loads(raw_record(e))
    assert "event_id" not in raw
    assert raw == {k: v for k, v in e.items() if k != "event_id"}


def test_partitions_follow_the_session_and_offsets_count_per_partition() -> None:
    events = _events()
    where = partitions_of(events, 3)
    by_session: dict[str, set[int]] = {}
    for e, (p, _) in zip(events, where, strict=True):
        by_session.setdefault(e["session_id"], set()).add(p)
    assert all(len(ps) == 1 for ps in by_session.values())
    for p in range(3):
        offsets = [o for q, o in where if q == p]
        assert offsets == list(range(len(offsets)))


def test_a_stream_is_named_by_matching_its_messages() -> None:
    events = _events()
    stream = build_stream("hdfs", events, None)
    assert [e["event_id"] for e in stream.events] == ["T1", "T2"] * 20
    assert {k: v for k, v in stream.events[0].items() if k != "event_id"} == {
        k: v for k, v in events[0].items() if k != "event_id"
    }
    assert 0 < len(stream.training_sessions) < 20
    assert stream.unmatched == 0 and stream.grouping_accuracy == 1.0
    assert stream.gap_ms == 14 * 3_600_000  # HDFS blocks fall silent for hours

    # Against a given set (a bundle's): a line it does not cover is unmatched.
    miner = TemplateMiner()
    miner.mine("Receiving block blk_9 src: /10.0.0.9:1")
    named = build_stream("simulated", events, miner.to_set())
    assert [e["event_id"] for e in named.events] == ["T1", UNMATCHED] * 20
    assert named.unmatched == 20


def test_the_raw_path_gives_the_ids_paths_records() -> None:
    stream = build_stream("hdfs", _events(), None)
    where = partitions_of(stream.events, 2)
    ids = decode_ids([id_record(e) for e in stream.events], where)
    raw = [raw_record(e) for e in stream.events]
    assert decode_and_match(raw, where, TemplateMatcher(stream.templates)) == ids
    # Without a matcher, the message stands in for the id (decoding alone is timed so).
    assert decode_and_match(raw, where, None)[0][2] == stream.events[0]["message"]


def test_copies_follow_one_another_with_their_own_sessions() -> None:
    events = [_event(0, "a", "T1", "x"), _event(5, "b", "T1", "y")]
    out = repeated(events, 3, 10)
    assert out[:2] == events
    assert [(e["ts"], e["session_id"]) for e in out[2:]] == [
        (1_016, "a~1"), (1_021, "b~1"), (1_032, "a~2"), (1_037, "b~2")
    ]  # fmt: skip
    assert repeated(events, 1, 10) == events


def test_window_scores_reads_a_scores_topic() -> None:
    values = [
        orjson.dumps({"window_id": w, "session_id": sid, "n_events": n, "score": s})
        for w, sid, n, s in (("w1", "a", 3, 1.5), ("w2", "a", 2, 0.0), ("w3", "b", 1, 2.0))
    ]
    windows = window_scores(values)
    assert windows == {"w1": ("a", 3, 1.5), "w2": ("a", 2, 0.0), "w3": ("b", 1, 2.0)}
    assert events_scored(windows) == {"a": 5, "b": 1}


def test_a_drain_is_compared_with_the_first_where_it_cut_alike() -> None:
    first = {"w1": ("a", 3, 1.0), "w2": ("b", 2, 2.0)}
    assert compare_windows(first, {"w1": ("a", 3, 1.0), "w2": ("b", 2, 2.00001)}) == {
        "common_windows": 2,
        "only_in_first": 0,
        "only_in_this": 0,
        "max_abs_score_difference": pytest.approx(1e-5),
    }
    # b cut in two: only w1 is compared.
    other = compare_windows(first, {"w1": ("a", 3, 1.5), "w3": ("b", 1, 0.0), "w4": ("b", 1, 0.0)})
    assert other == {
        "common_windows": 1,
        "only_in_first": 1,
        "only_in_this": 2,
        "max_abs_score_difference": 0.5,
    }
