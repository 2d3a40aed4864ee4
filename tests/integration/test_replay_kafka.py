"""`logad replay --topic`: a time range of a topic matches the archive's replay, per session,
and moves no consumer group's offsets."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import OffsetAndMetadata
from serve_support import DAY, DAY_MS, CreateTopic
from structlog.testing import capture_logs

from schemas.daily_files import daily_file_name, write_sessions
from schemas.errors import LogadError
from schemas.scores import Score
from stream.cli import main
from stream.devtools.simulate import SimSession, interleave, simulate_day
from stream.jobs.replay_kafka import kafka_items
from stream.serve.archive import DAY_MS as ONE_DAY_MS
from stream.serve.settings import KafkaSettings


async def _produce_at_event_time(bootstrap: str, topic: str, sessions: list[SimSession]) -> None:
    """Keyed by session id, each message stamped with its event's own time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, e.encode(), key=e.session_id.encode(), timestamp_ms=e.ts)
            for e in interleave(sessions)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# Messages are stamped with DAY's event times, weeks old by now: the broker's default 7-day
# retention would delete them at its next check (30 s after start, then every 5 min).
KEEP_FOREVER = {"retention.ms": "-1"}


async def _loaded_topic(
    bootstrap: str, create_topic: CreateTopic, topic: str, partitions: int, seed: int, n: int
) -> list[SimSession]:
    """A fresh topic kept forever, holding `n` simulated sessions of DAY at event time."""
    await create_topic(topic, partitions, KEEP_FOREVER)
    sessions = simulate_day(random.Random(seed), DAY_MS, n, 0.0)
    await _produce_at_event_time(bootstrap, topic, sessions)
    return sessions


async def _groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()


async def _committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> list[int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return [await consumer.committed(tp) for tp in tps]
    finally:
        await consumer.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """A live group's position, as `logad serve` would have committed it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


def _verdicts(path: Path) -> dict[str, bool]:
    """Per session: did any of its windows score as anomalous."""
    out: dict[str, bool] = {}
    for line in path.read_bytes().splitlines():
        s = Score.decode(line)
        out[s.session_id] = out.get(s.session_id, False) or s.anomalous
    return out


@pytest.mark.slow
async def test_replay_from_kafka_matches_replay_from_the_archive(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic, bundle: Path, tmp_path: Path
) -> None:
    await create_topic(topic_name, 2, KEEP_FOREVER)
    days = [DAY, DAY + timedelta(days=1)]
    per_day = [
        simulate_day(random.Random(70 + i), DAY_MS + i * ONE_DAY_MS, 120, 0.15) for i in (0, 1)
    ]
    archive = tmp_path / "archive"
    archive.mkdir()
    for day, sims in zip(days, per_day, strict=True):
        write_sessions(archive / daily_file_name(day), [s.to_session() for s in sims])
    sessions = per_day[0] + per_day[1]
    await _produce_at_event_time(kafka_bootstrap, topic_name, sessions)
    # Outside the range: the day before, which the replay must leave out.
    before = simulate_day(random.Random(69), DAY_MS - ONE_DAY_MS, 20, 0.0)
    await _produce_at_event_time(kafka_bootstrap, topic_name, before)
    tps = [TopicPartition(topic_name, p) for p in (0, 1)]
    live = f"{topic_name}.live"
    await _commit(kafka_bootstrap, live, {tps[0]: 7, tps[1]: 3})
    groups = await _groups(kafka_bootstrap)

    loop = asyncio.get_running_loop()
    from_kafka, from_days = tmp_path / "kafka.jsonl", tmp_path / "days.jsonl"
    d1, d3 = (str(d) + "T00:00:00Z" for d in (days[0], days[0] + timedelta(days=2)))
    common = ["--model", str(bundle), "--device", "cpu"]
    argv = ["replay", *common, "--topic", topic_name, "--bootstrap", kafka_bootstrap]
    argv += ["--from-time", d1, "--to-time", d3, "--out", str(from_kafka)]
    assert await loop.run_in_executor(None, main, argv) == 0
    argv = ["replay", *common, "--days-dir", str(archive), "--out", str(from_days)]
    assert await loop.run_in_executor(None, main, argv) == 0

    kafka, archived = _verdicts(from_kafka), _verdicts(from_days)
    assert set(kafka) == {s.session_id for s in sessions}, "exactly the range's sessions"
    assert kafka == archived, "same sessions, same verdicts"
    assert any(kafka.values()) and not all(kafka.values())
    # Read with no group: no group appeared and the live group's commits did not move.
    assert await _groups(kafka_bootstrap) == groups
    assert await _committed(kafka_bootstrap, live, tps) == [7, 3]
    assert date.fromisoformat(d1[:10]) == DAY


@pytest.mark.slow
async def test_kafka_source_streams_in_partition_offset_order(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    sessions = await _loaded_topic(kafka_bootstrap, create_topic, topic_name, 3, 71, 150)
    n_events = sum(len(s.events) for s in sessions)
    loop = asyncio.get_running_loop()

    def read_all() -> list[tuple[int, int]]:
        return [
            (p, o)
            for _, p, o, _ in kafka_items(
                KafkaSettings(bootstrap=kafka_bootstrap), topic_name, 0, 2**62
            )
        ]

    got = await loop.run_in_executor(None, read_all)
    assert len(got) == n_events
    assert got == sorted(got) and len({p for p, _ in got}) == 3

    def read_a_few() -> tuple[int, bool]:
        items = kafka_items(KafkaSettings(kafka_bootstrap), topic_name, 0, 2**62)
        first = list(itertools.islice(items, 10))
        items.close()  # the reader thread stops and closes its consumer
        alive = any(t.name == "logad-replay-kafka" for t in threading.enumerate())
        return len(first), alive

    assert await loop.run_in_executor(None, read_a_few) == (10, False)


async def test_a_range_older_than_what_the_topic_holds_is_warned_of(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await _loaded_topic(kafka_bootstrap, create_topic, topic_name, 2, 72, 30)
    tps = [TopicPartition(topic_name, p) for p in (0, 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # what retention does to old segments, on partition 0 only
        await admin.delete_records({tps[0]: RecordsToDelete(5)})
    finally:
        await admin.close()
    loop = asyncio.get_running_loop()

    def read(from_ms: int) -> tuple[list[int], list[dict[str, object]]]:
        with capture_logs() as logs:
            offsets = [
                o
                for _, p, o, _ in kafka_items(
                    KafkaSettings(bootstrap=kafka_bootstrap), topic_name, from_ms, 2**62
                )
                if p == 0
            ]
        return offsets, [e for e in logs if e["event"] == "replay_kafka_range_partly_deleted"]

    offsets, warned = await loop.run_in_executor(None, read, DAY_MS - ONE_DAY_MS)
    assert offsets and min(offsets) >= 5
    (warning,) = warned
    held = warning["first_held_ms"]
    assert isinstance(held, dict) and list(held) == [0] and held[0] >= DAY_MS
    # A range that starts after partition 0's first held message lost nothing to the deletion.
    assert (await loop.run_in_executor(None, read, held[0] + 1))[1] == []


def test_unreachable_broker_is_one_error() -> None:
    with pytest.raises(LogadError, match=r"^Kafka at 127\.0\.0\.1:1: "):
        next(kafka_items(KafkaSettings(bootstrap="127.0.0.1:1"), "t", 0, 1))


async def _produce_now(bootstrap: str, topic: str, sessions: list[SimSession]) -> None:
    """Keyed by session id, stamped by the broker's clock as produced (now), not event time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, e.encode(), key=e.session_id.encode())
            for e in interleave(sessions)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_an_event_time_range_of_a_topic_and_a_replay_of_nothing_exiting_2(
    kafka_bootstrap: str,
    topic_name: str,
    create_topic: CreateTopic,
    bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await create_topic(topic_name, 1, KEEP_FOREVER)
    sessions = simulate_day(random.Random(73), DAY_MS, 30, 0.0)  # DAY's events, produced now
    await _produce_now(kafka_bootstrap, topic_name, sessions)
    loop = asyncio.get_running_loop()
    out = tmp_path / "scores.jsonl"
    argv = ["replay", "--model", str(bundle), "--device", "cpu", "--topic", topic_name]
    argv += ["--bootstrap", kafka_bootstrap, "--out", str(out)]
    argv += ["--from-time", str(DAY_MS), "--to-time", str(DAY_MS + ONE_DAY_MS)]

    # By the broker's clock DAY holds nothing: one clear line naming the clock, exit 2.
    capsys.readouterr()
    assert await loop.run_in_executor(None, main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("logad: error: replay read 0 usable events from topic ")
    assert "broker time" in err and "--time-field event" in err
    assert not out.exists()

    # By event time it holds every session.
    assert await loop.run_in_executor(None, main, [*argv, "--time-field", "event"]) == 0
    got = {Score.decode(line).session_id for line in out.read_bytes().splitlines()}
    assert got == {s.session_id for s in sessions}
