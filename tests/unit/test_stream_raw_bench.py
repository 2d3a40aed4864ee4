"""bench/stream_raw.py's pure parts: the two encodings of one event, the raw decoder stand-in,
partitions, naming a stream by its templates, and the paths' agreement."""

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
    decode_raw,
    id_record,
    partitions_of,
    raw_record,
    window_scores,
)
from schemas.errors import DecodeError
from schemas.events import LogEvent
from trainer.mining import TemplateMiner


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


def test_the_raw_decoder_reads_what_the_raw_path_needs() -> None:
    e = _event(0, "blk_1", "T3", "Receiving block blk_1", attrs={"label": 0})
    assert decode_raw(raw_record(e)) == (1_000, "blk_1", "Receiving block blk_1", {"label": 0})
    assert decode_raw(raw_record({**e, "attrs": None}))[3] == {}
    for bad in (b"{", b"[]", raw_record({**e, "message": 3}), raw_record({**e, "ts": "x"}),
                raw_record({**e, "session_id": ""})):  # fmt: skip
        with pytest.raises(DecodeError):
            decode_raw(bad)


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
    assert decode_and_match(raw, where, TemplateMiner.from_set(stream.templates)) == ids
    # Without a miner, the message stands in for the id (decoding alone is timed so).
    assert decode_and_match(raw, where, None)[0][2] == stream.events[0]["message"]


def test_window_scores_reads_a_scores_topic() -> None:
    values = [orjson.dumps({"window_id": w, "score": s}) for w, s in (("a", 1.5), ("b", 0.0))]
    assert window_scores(values) == {"a": 1.5, "b": 0.0}


def test_a_drain_is_compared_with_the_first() -> None:
    first = {"a": 1.0, "b": 2.0}
    assert compare_windows(first, {"a": 1.0, "b": 2.00001}) == {
        "same_windows": True,
        "missing": 0,
        "extra": 0,
        "max_abs_score_difference": pytest.approx(1e-5),
    }
    other = compare_windows(first, {"a": 1.5, "c": 0.0})
    assert (other["same_windows"], other["missing"], other["extra"]) == (False, 1, 1)
    assert other["max_abs_score_difference"] == 0.5
