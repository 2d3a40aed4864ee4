"""The serve loop's pieces with a fake consumer and producer: ingest, dead letters,
backpressure, commits, revoke and restart-skip, without a broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from schemas.events import LogEvent
from schemas.runtime.settings import build_settings
from stream.serve.service import Service
from stream.serve.settings import ServeSettings
from tests.fakes import FakeConsumer, FakeProducer, FakeScorer

TOPIC = "in"


def record(partition: int, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", value, None, 0, len(value), ())


def event(sid: str, ts: int, eid: str = "E1") -> bytes:
    return LogEvent(ts, "svc", sid, eid, attrs={"label": 0}).encode()


def make_service(**overrides: Any) -> tuple[Service, FakeConsumer, FakeProducer]:
    values: dict[str, Any] = {
        "model": Path("unused"),
        "input_topic": TOPIC,
        "scores_topic": "scores",
        "alerts_topic": "alerts",
        "dlq_topic": "dlq",
        "gap_ms": 1000,
        "max_batch_wait_ms": 0,
        "metrics_port": 0,
    }
    settings = build_settings(ServeSettings, flags={**values, **overrides}, environ={})
    consumer, producer = FakeConsumer(), FakeProducer()
    service = Service(settings, FakeScorer("v1"), consumer, producer, _metrics())
    service.send = producer.send
    service.worker._send = producer.send
    return service, consumer, producer


def _metrics() -> Any:
    from stream.serve.metrics import ServeMetrics

    return ServeMetrics()


async def assign(service: Service, consumer: FakeConsumer, partitions: set[int]) -> None:
    consumer.assigned |= {TopicPartition(TOPIC, p) for p in partitions}
    service.offsets.assign(partitions)


async def test_bad_messages_go_to_the_dlq_and_commits_wait_for_scores() -> None:
    service, consumer, producer = make_service()
    await assign(service, consumer, {0})
    task = asyncio.create_task(service.worker.run())
    recs = [
        record(0, 0, event("a", 1000)),
        record(0, 1, b"{not json"),
        record(0, 2, event("b", 1100)),
        record(0, 3, event("a", 1200)),
    ]
    bad = service._ingest({TopicPartition(TOPIC, 0): recs}, now=0)
    assert [r.offset for r, _e in bad] == [1]
    await service._commit_safe()
    assert consumer.commits[-1][TopicPartition(TOPIC, 0)][0] == 0  # a's window is open
    await service._dead_letter(bad)
    # An event 5 s later closes a and b by the gap; c stays open from offset 4.
    service._ingest({TopicPartition(TOPIC, 0): [record(0, 4, event("c", 6000))]}, now=0)
    await service.acks.wait_until(lambda: service.offsets.in_flight() == 0)
    await service._commit_safe()
    assert consumer.commits[-1][TopicPartition(TOPIC, 0)] == (4, "")
    dlq = [
        (v, h) for (t, _k, v), h in zip(producer.sent, producer.headers, strict=True) if t == "dlq"
    ]
    assert len(dlq) == 1 and dlq[0][0] == b"{not json"
    headers = dict(dlq[0][1] or [])
    assert headers["error.type"] == b"DecodeError" and headers["source.offset"] == b"1"
    scored = {v["session_id"] for t, _k, v in producer.sent if t == "scores"}
    assert scored == {"a", "b"}
    # Revoke: c is handed back open (the commit stays at it), for the next owner to read.
    await service.on_revoked({0})
    assert consumer.commits[-1][TopicPartition(TOPIC, 0)] == (4, "")
    assert {v["session_id"] for t, _k, v in producer.sent if t == "scores"} == {"a", "b"}
    assert service.offsets.assigned == frozenset()
    service.worker.stop()
    await task


async def test_full_queue_pauses_partitions_and_resumes_at_half() -> None:
    service, consumer, _ = make_service(queue_max_windows=4)
    await assign(service, consumer, {0, 1})
    service.worker.backlog = 4
    service._backpressure()
    assert consumer.paused_tps == consumer.assigned
    service.worker.backlog = 3
    service._backpressure()
    assert consumer.paused_tps == consumer.assigned  # hysteresis: not yet
    service.worker.backlog = 2
    service._backpressure()
    assert consumer.paused_tps == set()
    assert service.metrics.pauses._value.get() == 1


@pytest.mark.parametrize("hand_back", [False, True])
async def test_a_revoke_hands_open_sessions_to_the_next_owner_whole(hand_back: bool) -> None:
    """Flushed at the revoke, a session open across a rebalance would be scored as a cut
    window and a fragment that looks like a whole new session; handed back, the next owner
    scores it whole; a window closed before the revoke comes back only as a duplicate."""
    first, consumer, producer = make_service(hand_back=hand_back)
    await assign(first, consumer, {0})
    task = asyncio.create_task(first.worker.run())
    tp = TopicPartition(TOPIC, 0)
    head = [
        record(0, 0, event("long", 1000)),
        record(0, 1, event("short", 1100)),
        record(0, 2, event("long", 1200)),
        record(0, 3, event("next", 2150)),  # closes "short" by the gap; "long" stays open
    ]
    first._ingest({tp: head}, now=0)
    await first.acks.wait_until(lambda: first.offsets.in_flight() == 0)
    await first.on_revoked({0})
    first.worker.stop()
    await task
    [short] = [v for t, _k, v in producer.sent if t == "scores"]
    assert short["session_id"] == "short"
    (offset, meta) = consumer.commits[-1][tp]
    assert offset == 0  # below "long"

    second, consumer2, producer2 = make_service(hand_back=hand_back)
    await assign(second, consumer2, {0})
    second.offsets.restore(0, offset, meta)
    task = asyncio.create_task(second.worker.run())
    tail = [record(0, 4, event("long", 2190)), record(0, 5, event("next", 2195))]
    second._ingest({tp: head + tail}, now=0)
    second._submit(second.sessions.flush_all())
    second.worker.stop()
    await task
    await second.acks.wait_until(lambda: second.worker.backlog == 0)
    sent = sorted((v["session_id"], v["n_events"]) for t, _k, v in producer2.sent if t == "scores")
    assert sent == [("long", 3), ("next", 2), ("short", 1)]
    again = [v for t, _k, v in producer2.sent if t == "scores" and v["session_id"] == "short"]
    assert again[0]["window_id"] == short["window_id"]  # a duplicate, not a fragment


async def test_restart_skips_what_the_commit_metadata_says_was_scored() -> None:
    first, consumer, _ = make_service()
    await assign(first, consumer, {0})
    first.offsets.consumed(0, 9)
    first.offsets.hold(0, 0)
    first.offsets.finished(0, 0, 6, "long")  # scored; the commit at 3 cuts through it
    (off, meta) = first.offsets.to_commit(lambda p: 3)[0]
    assert off == 3 and meta

    second, consumer2, producer2 = make_service()
    consumer2.assigned = {TopicPartition(TOPIC, 0)}
    second.offsets.assign({0})
    second.offsets.restore(0, off, meta)
    task = asyncio.create_task(second.worker.run())
    recs = [
        record(0, 3, event("other", 1000)),
        record(0, 5, event("long", 1001)),  # the tail of a scored window: skipped
        record(0, 7, event("long", 1002)),  # past it: a window of its own
    ]
    second._ingest({TopicPartition(TOPIC, 0): recs}, now=0)
    second._submit(second.sessions.flush_all())
    second.worker.stop()
    await task
    await second.acks.wait_until(lambda: second.worker.backlog == 0)
    sent = [v for t, _k, v in producer2.sent if t == "scores"]
    assert sorted((s["session_id"], s["n_events"]) for s in sent) == [("long", 1), ("other", 1)]


async def test_window_labels_follow_event_label_for_any_label_value() -> None:
    service, consumer, _ = make_service(max_events=1)  # one window per event
    await assign(service, consumer, {0})
    labels: list[Any] = [0, 1, 2, -1, True, False, 0.0, 1.0, 0.5, "1", None, [1], {"a": 1}]
    attrs: list[dict[str, Any]] = [{"label": x} for x in labels] + [{}, {"other": 1}]
    values = [
        LogEvent(1000 + i, "svc", f"s{i}", "E1", attrs=a).encode() for i, a in enumerate(attrs)
    ]
    values.append(b'{"ts": 5000, "service": "svc", "session_id": "none", "event_id": "E1"}')
    submitted: list[Any] = []
    service._submit = submitted.extend  # type: ignore[method-assign,assignment]
    recs = [record(0, i, v) for i, v in enumerate(values)]
    assert service._ingest({TopicPartition(TOPIC, 0): recs}, now=0) == []
    got = {w.session_id: w.label for w in submitted}
    want = {(e := LogEvent.decode(v)).session_id: e.label for v in values}
    assert got == want
    assert [type(got[f"s{i}"]) for i in (0, 1, 6, 7)] == [int, int, float, float]
    assert got["s4"] is None and got["s2"] is None and got["none"] is None


async def test_the_worker_scores_while_every_poll_brings_records() -> None:
    """aiokafka's getmany returns buffered records without suspending: the loop must yield
    anyway, or a backlog would hold back every window's score until it is drained."""
    service, consumer, producer = make_service()
    await assign(service, consumer, {0})
    stop = asyncio.Event()
    idle_seen: list[bool] = []
    polls = 0
    deadline = time.monotonic() + 10

    async def getmany(timeout_ms: int, max_records: int) -> Any:
        nonlocal polls
        idle_seen.append(service.worker.loop_idle)
        if producer.sent or time.monotonic() > deadline:
            stop.set()  # the loop ends after this poll
        polls += 1
        if polls == 2:
            return {}  # an empty poll: the loop is idle until the next one brings records
        # Each event opens a session 5 s after the last: the previous one closes by the gap.
        return {TopicPartition(TOPIC, 0): [record(0, polls, event(f"s{polls}", 5000 * polls))]}

    consumer.getmany = getmany  # type: ignore[attr-defined]
    consumer.subscribe = lambda topics, listener: None  # type: ignore[attr-defined]
    await service.run(stop)
    assert time.monotonic() < deadline, "no score was sent while polls brought records"
    assert idle_seen[:4] == [False, False, True, False]
