"""Dead letters: always sendable, retried with backoff while their partition is paused, and
the clock bound (an event from 2300 is a dead letter, not the partition's new watermark)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from schemas.events import LogEvent
from stream.serve.dead_letters import NULL_KEY, DeadLetters, FutureEvent, backoff_ms, dead_letter
from stream.serve.kafka_io import Headers
from tests.fakes import FakeProducer
from tests.poison import OVERSIZED_BYTES, YEAR_2300_MS, poison_corpus
from tests.unit.test_serve_loop import TOPIC, assign, make_service

NOW = 1_790_000_000_000  # the wall clock of these tests (2026)


def rec(offset: int, value: bytes | None, key: bytes | None = b"k", p: int = 0) -> Any:
    size = len(value) if value is not None else 0
    return ConsumerRecord(TOPIC, p, offset, 0, 0, key, value, None, 0, size, ())


def ev(sid: str, ts: int) -> bytes:
    return LogEvent(ts, "svc", sid, "E1").encode()


class FlakyProducer(FakeProducer):
    """Fails its first `n` dead-letter sends, alternately raising at once (as aiokafka's
    `send` does for a record it refuses) and failing the ack's future."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.failures_left = n
        self.attempts = 0

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> asyncio.Future[Any]:
        if topic == "dlq":
            self.attempts += 1
            if self.failures_left > 0:
                self.failures_left -= 1
                if self.failures_left % 2:
                    raise ConnectionError("DLQ unreachable")
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                fut.set_exception(ConnectionError("DLQ ack failed"))
                return fut
        return await super().send(topic, key, value, headers)


def test_a_null_key_and_value_gets_the_null_key_and_an_empty_value() -> None:
    key, value, headers = dead_letter(rec(3, None, None), ValueError("x"), 1024)
    h = dict(headers)
    assert (key, value) == (NULL_KEY, b"")
    assert h["original.null"] == b"key,value" and h["source.offset"] == b"3"


def test_an_oversized_value_is_cut_with_its_size_and_sha256() -> None:
    big = b"x" * OVERSIZED_BYTES
    key, value, headers = dead_letter(rec(5, big), ValueError("not valid JSON"), 65536)
    h = dict(headers)
    assert key == b"k" and value == big[:65536]
    assert h["original.value.size"] == str(OVERSIZED_BYTES).encode()
    assert h["original.value.sha256"] == hashlib.sha256(big).hexdigest().encode()
    assert h["truncated.value"] == b"true"
    assert h["error"] == b"not valid JSON" and h["source.partition"] == b"0"
    _, small, small_h = dead_letter(rec(6, b"{bad"), ValueError("e"), 65536)
    assert small == b"{bad" and "truncated.value" not in dict(small_h)
    long_key, _, kh = dead_letter(rec(7, b"v", key=b"K" * 70_000), ValueError("e"), 65536)
    assert long_key == b"K" * 65536 and dict(kh)["original.key.size"] == b"70000"


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    waits = [backoff_ms(a, 100, 5000) for a in range(1, 10)]
    assert waits == [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]


async def test_a_failing_send_is_retried_and_blocks_its_partition_meanwhile() -> None:
    producer = FlakyProducer(4)
    sent: list[tuple[int, int]] = []
    waits: list[float] = []
    blocked_seen: list[frozenset[int]] = []
    gate = asyncio.Event()

    async def sleep(s: float) -> None:
        waits.append(s)
        blocked_seen.append(dead.blocked)
        await asyncio.sleep(0)

    async def notify() -> None:
        gate.set()

    async def fail(e: BaseException) -> None:
        raise AssertionError(f"must not fail: {e}")

    dead = DeadLetters(
        producer.send,
        "dlq",
        max_bytes=1024,
        retry_ms=(100, 5000),
        on_sent=lambda p, o: sent.append((p, o)),
        notify=notify,
        fail=fail,
        sleep=sleep,
    )
    await dead.put(rec(9, None, None, p=2), ValueError("null"))
    await asyncio.wait_for(gate.wait(), 5)
    assert sent == [(2, 9)] and producer.attempts == 5 and dead.retries == 4
    assert waits == [0.1, 0.2, 0.4, 0.8]
    assert all(b == {2} for b in blocked_seen)
    assert dead.blocked == frozenset() and dead.pending == 0
    (dlq,) = [(k, v) for t, k, v in producer.sent if t == "dlq"]
    assert dlq == (NULL_KEY, b"")


async def test_the_loop_pauses_a_partition_while_its_dead_letter_fails_and_resumes() -> None:
    service, consumer, _ = make_service(dlq_retry_initial_ms=1, dlq_retry_max_ms=4)
    producer = FlakyProducer(6)
    service.send = producer.send
    await assign(service, consumer, {0, 1})
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    bad = service._ingest({tp0: [rec(0, ev("a", NOW)), rec(1, b"{bad"), rec(2, ev("b", NOW))]}, NOW)
    await service._dead_letter(bad)
    for _ in range(100):  # the first failure, in the dead letter's task
        if service.dead.blocked:
            break
        await asyncio.sleep(0)
    service._backpressure()
    assert consumer.paused() == {tp0}, "only the dead letter's partition"
    await service._commit_safe()
    assert all(c[tp0][0] <= 0 for c in consumer.commits if tp0 in c)
    service.acks.check()  # a failing DLQ is no error: serve goes on
    await service.acks.wait_until(lambda: service.offsets.in_flight() == 0)
    service._backpressure()
    assert consumer.paused() == set() and tp1 not in consumer.paused()
    assert producer.attempts == 7 and service.offsets.in_flight() == 0
    assert service.metrics.dlq._value.get() == 1
    # Backpressure's resume leaves a blocked partition paused.
    producer.failures_left = 1_000_000
    await service._dead_letter(service._ingest({tp0: [rec(3, b"{bad")]}, NOW))
    await asyncio.sleep(0.01)
    service._paused = True  # as backpressure leaves it: every partition paused
    consumer.pause(tp0, tp1)
    service._backpressure()  # the backlog is empty: backpressure resumes
    assert consumer.paused() == {tp0}
    service.dead.forget()
    await asyncio.sleep(0)


async def test_an_event_from_2300_is_a_dead_letter_and_windows_after_it_are_normal() -> None:
    service, consumer, producer = make_service(gap_ms=1000)
    await assign(service, consumer, {0})
    task = asyncio.create_task(service.worker.run())
    tp = TopicPartition(TOPIC, 0)
    recs, off = [], 0
    for i in range(40):
        if i == 5:
            recs.append(rec(off, ev("future", YEAR_2300_MS)))
            off += 1
        for j in range(3):  # each session: 3 events, 100 ms apart; sessions 2 s apart
            recs.append(rec(off, ev(f"s{i}", NOW + i * 2000 + j * 100)))
            off += 1
    bad = service._ingest({tp: recs}, NOW)
    assert [(r.offset, type(e)) for r, e in bad] == [(15, FutureEvent)]
    wm = service.sessions.min_watermark({0})
    assert wm is not None and wm <= NOW + service.s.dead_letters.max_future_skew_ms
    await service._dead_letter(bad)
    service._submit(service.sessions.flush_all())
    await service.acks.wait_until(lambda: service.offsets.in_flight() == 0)
    service.worker.stop()
    await task
    scores = [v for t, _k, v in producer.sent if t == "scores"]
    assert len(scores) == 40, "one window per session, not one per event"
    assert all(s["n_events"] == 3 and not s["late"] for s in scores)
    (dlq,) = [
        h for (t, _k, _v), h in zip(producer.sent, producer.headers, strict=True) if t == "dlq"
    ]
    h = dict(dlq or [])
    assert h["error.type"] == b"FutureEvent" and h["source.offset"] == b"15"


async def test_every_poison_kind_is_dead_lettered_and_fits_a_request() -> None:
    service, consumer, producer = make_service()
    await assign(service, consumer, {0})
    corpus = poison_corpus(NOW)
    assert len(corpus) >= 40
    recs = [rec(i, p.value, p.key) for i, p in enumerate(corpus)]
    bad = service._ingest({TopicPartition(TOPIC, 0): recs}, NOW)
    assert [r.offset for r, _e in bad] == list(range(len(corpus)))
    await service._dead_letter(bad)
    await service.acks.wait_until(lambda: service.offsets.in_flight() == 0)
    assert len(producer.headers) == len(corpus)
    for (_t, key, value), headers in zip(producer.sent, producer.headers, strict=True):
        raw = value if isinstance(value, bytes) else b"?" * 100  # JSON decoded: small
        size = len(key or b"") + len(raw) + sum(len(k) + len(v) for k, v in headers or [])
        assert size < 300_000 and dict(headers or [])["error"]
