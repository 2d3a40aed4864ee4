"""Kafka I/O for `logad serve`: client construction, dead-letter records, and ack tracking.

Commits are manual (`enable_auto_commit=False`): the serve loop commits only offsets whose
results the broker has acknowledged. `Acks` is where those acknowledgements land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schemas.errors import LogadError
from stream.serve.kafka_security import KafkaStartError, client_options
from stream.serve.settings import ServeSettings

log = structlog.get_logger(__name__)

Headers = list[tuple[str, bytes]]
Message = tuple[str, bytes | None, bytes | None, Headers | None]
"""(topic, key, value, headers): a record to produce."""
# `await send(topic, key, value, headers)` returns the future of the broker's ack.
Send = Callable[[str, bytes | None, bytes | None, Headers | None], Awaitable["asyncio.Future[Any]"]]


def kafka_failure(bootstrap: str, e: KafkaError) -> LogadError:
    """The one-line error for a Kafka client that failed (aiokafka's messages often hold
    their class name already; a `KafkaStartError` says which broker and why)."""
    if isinstance(e, KafkaStartError):
        where = bootstrap if e.address == bootstrap else f"{bootstrap} ({e.address})"
        return LogadError(f"Kafka at {where}: {e.reason}")
    text, name = str(e), type(e).__name__
    if name not in text:
        text = f"{name}: {text}"
    return LogadError(f"Kafka at {bootstrap}: {text}")


def make_consumer(settings: ServeSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=settings.consumer.group_id,
        client_id=f"{settings.kafka.client_id}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.consumer.poll_max_records,
        # Bigger fetches than aiokafka's default (1 MiB a partition): fewer round trips
        # while a backlog drains.
        max_partition_fetch_bytes=settings.consumer.max_partition_fetch_bytes,
        max_poll_interval_ms=settings.consumer.max_poll_interval_ms,
        # Upstream may write transactionally too; never score what it aborted.
        isolation_level="read_committed" if settings.publish.exactly_once else "read_uncommitted",
        session_timeout_ms=settings.consumer.session_timeout_ms,
        heartbeat_interval_ms=settings.consumer.heartbeat_interval_ms,
        **client_options(settings.kafka),
    )


def make_producer(settings: ServeSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap,
        client_id=f"{settings.kafka.client_id}-producer",
        acks="all",
        linger_ms=settings.publish.linger_ms,
        max_batch_size=256 * 1024,
        **client_options(settings.kafka),
    )


def make_admin(settings: ServeSettings) -> AIOKafkaAdminClient:
    """The admin client that checks (and creates) serve's topics at start."""
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap,
        client_id=f"{settings.kafka.client_id}-admin",
        **client_options(settings.kafka),
    )


async def committed_with_metadata(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[int, tuple[int | None, str]]:
    """Committed offset and metadata per partition (None, "" where nothing was committed).

    aiokafka's public `committed()` drops the metadata, so this asks its group coordinator
    directly, as `committed()` itself does."""
    found = await consumer._coordinator.fetch_committed_offsets(list(partitions))
    out: dict[int, tuple[int | None, str]] = {tp.partition: (None, "") for tp in partitions}
    for tp, om in found.items():
        if om.offset >= 0:
            out[tp.partition] = (om.offset, om.metadata or "")
    return out


def producer_send(producer: AIOKafkaProducer) -> Send:
    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = await producer.send(topic, value=value, key=key, headers=headers)
        return fut

    return send


def dlq_headers(record: ConsumerRecord[bytes, bytes], error: BaseException) -> Headers:
    """Why and where from: the reason, its type, and the source topic, partition and offset."""
    return [
        ("error", str(error).encode("utf-8", "replace")[:4096]),
        ("error.type", type(error).__name__.encode()),
        ("source.topic", record.topic.encode()),
        ("source.partition", str(record.partition).encode()),
        ("source.offset", str(record.offset).encode()),
    ]


class Acks:
    """Broker acknowledgements in flight. `track` runs `on_ok` once all of a group's futures
    succeed; a failed send is kept as `error` and raised by `wait_until` and `check`, since
    the offsets behind it must never be committed."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.error: BaseException | None = None

    def track(self, futures: Sequence[Awaitable[Any]], on_ok: Callable[[], None]) -> None:
        task = asyncio.create_task(self._await(futures, on_ok))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, futures: Sequence[Awaitable[Any]], on_ok: Callable[[], None]) -> None:
        try:
            await asyncio.gather(*futures)
        except Exception as e:
            log.error("produce_failed", error=str(e), error_type=type(e).__name__)
            if self.error is None:
                self.error = e
        else:
            try:
                on_ok()
            except Exception as e:  # a bookkeeping bug must stop the service, not hang it
                log.error("ack_handling_failed", error=str(e), error_type=type(e).__name__)
                if self.error is None:
                    self.error = e
        await self.notify()

    async def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        await self.notify()

    async def notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds (re-checked after every ack), or raise the send error."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.error is not None or done())
        self.check()
