"""Dead letters: records serve cannot use, sent to the dead-letter topic so that no record
ever stops its partition.

- `dead_letter` shapes the record the DLQ gets: always sendable (a null key and value gets
  `NULL_KEY` and an empty value; an oversized key or value is cut, its original size and
  sha256 in headers), with the reason and the source in headers.
- `DeadLetters` sends them, retrying a failed send with bounded exponential backoff for as
  long as it takes. The record's offset stays held meanwhile (nothing is committed past it)
  and its partition is reported `blocked`, for the consume loop to pause: a DLQ outage
  stops reading, never the process, and loses or skips nothing.
- `FutureEvent`: the reason for an event dated too far ahead of the wall clock. Such an
  event is dead-lettered rather than clamped: clamped, it would land in a window it does
  not belong to; kept, it would move the partition's watermark past every open session.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from schemas.errors import DecodeError
from stream.serve.kafka_io import Headers, Send, dlq_headers

log = structlog.get_logger(__name__)

NULL_KEY = b"logad.null"
"""The key of a dead letter whose record had neither key nor value (Kafka's producer
refuses a record with neither)."""


class FutureEvent(DecodeError):
    """An event dated more than `max_future_skew_ms` ahead of the wall clock."""


def future_event(ts: int, now_ms: int, skew_ms: int) -> FutureEvent:
    return FutureEvent(
        f"event time {ts} is {ts - now_ms} ms ahead of the wall clock {now_ms}, "
        f"over max_future_skew_ms={skew_ms}",
        "ts",
    )


def _cut(data: bytes, name: str, limit: int, headers: Headers) -> bytes:
    headers.append((f"original.{name}.size", str(len(data)).encode()))
    headers.append((f"original.{name}.sha256", hashlib.sha256(data).hexdigest().encode()))
    if len(data) > limit:
        headers.append((f"truncated.{name}", b"true"))
        return data[:limit]
    return data


def dead_letter(
    record: ConsumerRecord[bytes, bytes], error: BaseException, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of `record`'s dead letter: the reason and source headers of
    `dlq_headers`, the original size and sha256 of the key and value, each cut to
    `max_bytes` (`truncated.key`/`truncated.value` say so); a record with neither key nor
    value gets `NULL_KEY`, an empty value and `original.null`."""
    headers = dlq_headers(record, error)
    key, value = record.key, record.value
    if key is None and value is None:
        headers.append(("original.null", b"key,value"))
        return NULL_KEY, b"", headers
    if value is not None:
        value = _cut(value, "value", max_bytes, headers)
    if key is not None and len(key) > max_bytes:
        key = _cut(key, "key", max_bytes, headers)
    return key, value, headers


def backoff_ms(attempt: int, initial_ms: int, max_ms: int) -> int:
    """The wait after failed attempt number `attempt` (1-based): doubling, capped."""
    return min(max_ms, initial_ms << min(attempt - 1, 32))


class DeadLetters:
    """Sends dead letters, each in a task of its own that retries until the broker takes
    it; `on_sent(partition, offset)` runs once it has, then `notify()`. A bookkeeping error
    in `on_sent` goes to `fail` (it must stop the service, not hang it)."""

    def __init__(
        self,
        send: Send,
        topic: str,
        *,
        max_bytes: int,
        retry_ms: tuple[int, int],
        on_sent: Callable[[int, int], None],
        notify: Callable[[], Awaitable[None]],
        fail: Callable[[BaseException], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._send, self._topic, self._max_bytes = send, topic, max_bytes
        self._retry = retry_ms
        self._on_sent, self._notify, self._fail, self._sleep = on_sent, notify, fail, sleep
        self._tasks: dict[asyncio.Task[None], int] = {}
        self._failing: Counter[int] = Counter()
        self._paused: set[int] = set()
        self.retries = 0
        """Failed sends so far (each retried)."""

    @property
    def blocked(self) -> frozenset[int]:
        """Partitions with a dead letter whose last send failed: to be paused."""
        return frozenset(p for p, n in self._failing.items() if n > 0)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def put(self, record: ConsumerRecord[bytes, bytes], error: BaseException) -> None:
        """Send `record`'s dead letter (its offset must already be held): the first attempt
        now, so dead letters go out in order; the ack and any retries in a task."""
        key, value, headers = dead_letter(record, error, self._max_bytes)
        first = await self._attempt(key, value, headers)
        task = asyncio.create_task(
            self._deliver(record.partition, record.offset, key, value, headers, first)
        )
        self._tasks[task] = record.partition
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _attempt(
        self, key: bytes | None, value: bytes | None, h: Headers
    ) -> asyncio.Future[Any] | BaseException:
        """One send: the future of its ack, or what the producer raised at once."""
        try:
            return await self._send(self._topic, key, value, h)
        except Exception as e:
            return e

    async def _deliver(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        h: Headers,
        sent: asyncio.Future[Any] | BaseException,
    ) -> None:
        failing = False
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    if attempt > 1:
                        sent = await self._attempt(key, value, h)
                    if isinstance(sent, BaseException):
                        raise sent
                    await sent
                    break
                except Exception as e:  # any failure: retry, never stop the partition for good
                    self.retries += 1
                    if not failing:
                        failing = True
                        self._failing[partition] += 1
                    wait = backoff_ms(attempt, *self._retry)
                    log.warning(
                        "dlq_send_failed",
                        partition=partition,
                        offset=offset,
                        attempt=attempt,
                        retry_in_ms=wait,
                        error=str(e)[:500],
                        error_type=type(e).__name__,
                    )
                    await self._sleep(wait / 1000)
        finally:
            if failing:
                self._failing[partition] -= 1
                if self._failing[partition] <= 0:
                    del self._failing[partition]
        if failing:
            log.info("dlq_send_recovered", partition=partition, offset=offset, attempts=attempt)
        try:
            self._on_sent(partition, offset)
        except Exception as e:
            log.error("dlq_ack_handling_failed", error=str(e), error_type=type(e).__name__)
            await self._fail(e)
            return
        await self._notify()

    def steer(self, consumer: AIOKafkaConsumer, topic: str, backpressured: bool) -> None:
        """Pause the assigned partitions of `topic` that are blocked; resume those no longer
        blocked, unless backpressure holds every partition (its resume does it then)."""
        blocked = self.blocked
        tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        if blocked:
            consumer.pause(*(tp for tp in tps if tp.partition in blocked))
            if blocked - self._paused:
                log.warning("partitions_paused_dlq", partitions=sorted(blocked - self._paused))
        freed = self._paused - blocked
        if freed and not backpressured:
            consumer.resume(*(tp for tp in tps if tp.partition in freed))
            log.info("partitions_resumed_dlq", partitions=sorted(freed))
        self._paused = set(blocked)

    def forget(self, partitions: set[int] | frozenset[int] | None = None) -> None:
        """Stop sending the dead letters of `partitions` (default: all): revoked, so their
        next owner re-reads and dead-letters them again (their offsets were never passed)."""
        for task, p in list(self._tasks.items()):
            if partitions is None or p in partitions:
                task.cancel()
