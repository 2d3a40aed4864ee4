"""Replay's Kafka source: a topic between two times, read with no consumer group.

Partitions are assigned (not subscribed) and nothing is committed, so the live group's
committed offsets never move. Start and end offsets come from `offsets_for_times` (the
messages' own timestamps); each partition is read from its start to its end offset, and
only messages stamped within [from, to) are kept (a producer's timestamps need not follow
its offsets). A message stamped before `to` but written after the first one stamped at or
after it lies past the end offset and is not read.
Records are returned by (partition, offset), a deterministic order.
"""

from __future__ import annotations

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.errors import DataError, DecodeError
from schemas.events import LogEvent
from stream.replay import Item, Progress, _noop

log = structlog.get_logger(__name__)


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


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partition ids, from the broker's metadata (raises DataError if none)."""
    # A group-less consumer's own metadata holds only assigned topics, so ask directly.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="logad-replay")
    await admin.start()
    try:
        descs = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in descs if d["error_code"] == 0 for p in d["partitions"]]
    if not parts:
        raise DataError(f"topic {topic} does not exist on {bootstrap}")
    return sorted(parts)


async def kafka_items(
    bootstrap: str, topic: str, from_ms: int, to_ms: int, progress: Progress = _noop
) -> list[Item]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="logad-replay",
        auto_offset_reset="earliest",
    )
    parts = await topic_partitions(bootstrap, topic)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        ranges = await offset_range(consumer, tps, from_ms, to_ms)
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        left = {tp for tp, (a, b) in ranges.items() if b > a}
        log.info("replay_kafka_ranges", ranges={tp.partition: r for tp, r in ranges.items()})
        items: list[Item] = []
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000, max_records=5000)
            for tp, recs in batch.items():
                end = ranges[tp][1]
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
                if recs and recs[-1].offset >= end - 1:
                    left.discard(tp)
                    consumer.pause(tp)
        items.sort(key=lambda it: (it[1], it[2]))
        return items
    finally:
        await consumer.stop()
