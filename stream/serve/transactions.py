"""Exactly-once publishing (`--exactly-once`): results and offsets in one Kafka transaction.

aiokafka speaks the v0 transaction APIs, whose offset commits carry no group generation, so
zombie fencing comes from the transactional id instead: one per input partition
(`<group>.<topic>.<partition>`). Its producer starts when the partition is assigned, which
aborts whatever a previous owner left open, and stops when it is revoked.

A window's Score and Alert wait in the partition's outbox until the commit point passes the
window's first offset; they are then sent in the same transaction that commits that offset
(with the metadata naming the windows the commit cuts through, see stream.serve.offsets). After a
crash the new owner re-reads from the committed offset and re-forms exactly the windows that
were never published, so a `read_committed` reader sees each window once. The price is
latency: a result waits until every window that started before it has closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition

from stream.serve.kafka_io import Message
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import client_options
from stream.serve.settings import ServeSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Item:
    first: int
    """Lowest input offset behind these messages: they go out once the commit passes it."""
    messages: tuple[Message, ...]


def transactional_id(settings: ServeSettings, partition: int) -> str:
    return f"{settings.consumer.group_id}.{settings.topics.input_topic}.{partition}"


class TxnOutbox:
    def __init__(self, settings: ServeSettings) -> None:
        self._s = settings
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._items: dict[int, list[_Item]] = {}

    @property
    def partitions(self) -> set[int]:
        return set(self._producers)

    @property
    def size(self) -> int:
        return sum(len(items) for items in self._items.values())

    async def open(self, partitions: set[int]) -> None:
        """Start a transactional producer per partition, fencing off any previous owner."""
        for p in sorted(partitions):
            producer = AIOKafkaProducer(
                bootstrap_servers=self._s.kafka.bootstrap,
                client_id=f"{self._s.kafka.client_id}-txn-{p}",
                transactional_id=transactional_id(self._s, p),
                enable_idempotence=True,
                acks="all",
                linger_ms=self._s.publish.linger_ms,
                max_batch_size=256 * 1024,
                transaction_timeout_ms=self._s.publish.transaction_timeout_ms,
                **client_options(self._s.kafka),
            )
            watch_client(producer)
            # Held before it starts, so that close() stops it even when starting fails.
            self._producers[p] = producer
            self._items[p] = []
            await producer.start()

    async def close(self, partitions: set[int]) -> None:
        for p in partitions:
            producer = self._producers.pop(p, None)
            left = self._items.pop(p, [])
            if left:  # only after a failure: the next owner re-forms them
                log.warning("outbox_dropped", partition=p, items=len(left))
            if producer is not None:
                await producer.stop()

    def add(self, partition: int, first: int, messages: tuple[Message, ...]) -> None:
        self._items[partition].append(_Item(first, messages))

    async def commit(self, partition: int, offset: int, metadata: str) -> int:
        """Send the results below `offset` and commit `offset`, atomically; returns how many
        results went out."""
        items = self._items[partition]
        due = [i for i in items if i.first < offset]
        producer = self._producers[partition]
        async with producer.transaction():
            acks = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for item in due
                for topic, key, value, headers in item.messages
            ]
            # aiokafka commits a transaction even when the broker refused one of its records
            # (a dead letter too large for its topic): the record would vanish. Awaiting the
            # acks fails the transaction instead, which aborts it.
            for ack in acks:
                await ack
            tp = TopicPartition(self._s.topics.input_topic, partition)
            await producer.send_offsets_to_transaction(
                {tp: (offset, metadata)}, self._s.consumer.group_id
            )
        self._items[partition] = [i for i in items if i.first >= offset]
        return len(due)
