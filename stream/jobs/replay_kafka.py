"""Replay's Kafka source: a topic between two times, read with no consumer group.

Partitions are assigned (not subscribed) and nothing is committed, so the live group's
committed offsets never move. Start and end offsets come from `offsets_for_times` (the
messages' own timestamps); each partition is read from its start to its end offset, and
only messages stamped within [from, to) are kept (a producer's timestamps need not follow
its offsets). A message stamped before `to` but written after the first one stamped at or
after it lies past the end offset and is not read.
Events come in (partition, offset) order, a deterministic one, and are handed over as
they are read (a background thread runs the consumer), so a long range never sits in memory.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from schemas.errors import DataError, DecodeError
from schemas.events import LogEvent
from stream.jobs.replay import Item, Progress, _noop
from stream.serve.kafka_io import kafka_failure
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import client_options, start_client
from stream.serve.settings import KafkaSettings

log = structlog.get_logger(__name__)

_BATCH = 5000  # records per fetch
_QUEUED = 4  # batches waiting for the sessionizer at most


async def offset_range(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], from_ms: int, to_ms: int
) -> dict[TopicPartition, tuple[int, int]]:
    """[start, end) offsets per partition for messages stamped in [from_ms, to_ms)."""
    ends = await consumer.end_offsets(tps)
    starts_at = await consumer.offsets_for_times(dict.fromkeys(tps, from_ms))
    ends_at = await consumer.offsets_for_times(dict.fromkeys(tps, to_ms))
    out = {}
    for tp in tps:
        a, b = starts_at.get(tp), ends_at.get(tp)
        start = a.offset if a is not None else ends[tp]
        end = b.offset if b is not None else ends[tp]
        out[tp] = (start, max(start, end))
    return out


async def deleted_before_range(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], from_ms: int
) -> dict[int, int | None]:
    """Partitions whose deleted messages (retention, delete-records) may have been stamped
    in the range: partition -> the stamp of its first message still held (None: it holds
    none). A log that still starts at offset 0 lost nothing."""
    begins = await consumer.beginning_offsets(tps)
    firsts = await consumer.offsets_for_times(dict.fromkeys(tps, 0))
    out: dict[int, int | None] = {}
    for tp in tps:
        first = firsts.get(tp)
        if begins[tp] > 0 and (first is None or first.timestamp > from_ms):
            out[tp.partition] = first.timestamp if first is not None else None
    return out


async def topic_partitions(kafka: KafkaSettings, topic: str) -> list[int]:
    """The topic's partition ids, from the broker's metadata (raises DataError if none)."""
    # A group-less consumer's own metadata holds only assigned topics, so ask directly.
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap, client_id=kafka.client_id, **client_options(kafka)
    )
    try:
        await start_client(admin, kafka, kafka.bootstrap)
        descs = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in descs if d["error_code"] == 0 for p in d["partitions"]]
    if not parts:
        raise DataError(f"topic {topic} does not exist on {kafka.bootstrap}")
    return sorted(parts)


def kafka_items(
    kafka: KafkaSettings, topic: str, from_ms: int, to_ms: int, progress: Progress = _noop
) -> Iterator[Item]:
    """The range's events in (partition, offset) order, as they are read: a background
    thread reads one partition after the other and hands over batches through a short
    queue, so memory holds a few batches, not the range."""
    batches: queue.Queue[list[Item] | BaseException | None] = queue.Queue(maxsize=_QUEUED)
    stop = threading.Event()

    def hand_over(item: list[Item] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the reader went away

    def read() -> None:
        try:
            asyncio.run(_read(kafka, topic, from_ms, to_ms, hand_over, progress))
            hand_over(None)
        except BaseException as e:  # handed to the reader, raised there
            hand_over(e)

    thread = threading.Thread(target=read, name="logad-replay-kafka", daemon=True)
    thread.start()
    try:
        while (got := batches.get()) is not None:
            if isinstance(got, KafkaError):
                raise kafka_failure(kafka.bootstrap, got) from None
            if isinstance(got, BaseException):
                raise got
            yield from got
    finally:
        stop.set()
        thread.join(timeout=30)


async def _read(
    kafka: KafkaSettings,
    topic: str,
    from_ms: int,
    to_ms: int,
    hand_over: Callable[[list[Item]], bool],
    progress: Progress,
) -> None:
    parts = await topic_partitions(kafka, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=kafka.client_id,
        auto_offset_reset="earliest",
        **client_options(kafka),
    )
    watch_client(consumer)
    try:
        await start_client(consumer, kafka, kafka.bootstrap)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        ranges = await offset_range(consumer, tps, from_ms, to_ms)
        log.info("replay_kafka_ranges", ranges={tp.partition: r for tp, r in ranges.items()})
        if gone := await deleted_before_range(consumer, tps, from_ms):
            log.warning(
                "replay_kafka_range_partly_deleted",
                first_held_ms=gone,
                hint="the topic no longer holds the range's oldest messages (retention.ms?); "
                "replay the archive's daily files (--days-dir) for those days",
            )
        consumer.pause(*tps)
        for tp in tps:  # one partition at a time: (partition, offset) order without a sort
            start, end = ranges[tp]
            if end <= start:
                continue
            consumer.seek(tp, start)
            consumer.resume(tp)
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=_BATCH)
                recs = batch.get(tp, [])
                items: list[Item] = []
                for r in recs:
                    if r.offset >= end:
                        break
                    if not from_ms <= r.timestamp < to_ms:
                        continue  # written in the range's offsets, stamped outside its times
                    try:
                        event = LogEvent.decode(r.value or b"")
                    except DecodeError as e:
                        log.warning("replay_event_undecodable", offset=r.offset, error=str(e))
                        continue
                    items.append((event, tp.partition, r.offset, event.label))
                progress(len(recs), f"{topic}[{tp.partition}]")
                if items and not hand_over(items):
                    return
            consumer.pause(tp)
    finally:
        await consumer.stop()
