"""`logad simulate --bootstrap`: simulated traffic produced to a real broker."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from serve_support import CreateTopic

from schemas.errors import DecodeError
from schemas.events import LogEvent
from stream.cli import main
from stream.devtools.simulate import generate_sessions


async def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, bytes, bytes]]:
    """Every (partition, key, value) on the topic, reading each partition to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1_000)
            for tp, records in batch.items():
                for r in records:
                    assert r.key is not None and r.value is not None
                    out.append((tp.partition, r.key, r.value))
        return out
    finally:
        await consumer.stop()


async def test_simulate_produces_labelled_sessions_and_malformed_messages(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=3)
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic_name]
    argv += ["--sessions", "120", "--anomaly-rate", "0.3", "--seed", "5", "--malformed", "4"]
    assert await asyncio.to_thread(main, argv) == 0

    messages = await _read_all(kafka_bootstrap, topic_name, 3)
    events: list[tuple[int, LogEvent]] = []
    malformed = 0
    for partition, key, value in messages:
        try:
            event = LogEvent.decode(value)
        except DecodeError:
            malformed += 1
            assert key.startswith(b"malformed-")
            continue
        assert key == event.session_id.encode()
        events.append((partition, event))
    assert malformed == 4

    # The same seed regenerates the same sessions (event times aside): all of them arrived.
    expected = list(generate_sessions(random.Random(5), 120, 0, 10.0, 0.3))
    assert len(events) == sum(len(s.events) for s in expected)
    by_session: dict[str, list[LogEvent]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for partition, event in events:
        by_session[event.session_id].append(event)
        partitions[event.session_id].add(partition)
    assert set(by_session) == {s.session_id for s in expected}
    assert all(len(p) == 1 for p in partitions.values())  # keyed by session: one partition
    assert len({p for ps in partitions.values() for p in ps}) == 3
    for s in expected:
        got = by_session[s.session_id]
        assert [e.event_id for e in got] == [e.event_id for e in s.events]  # order kept
        assert all(e.attrs == s.events[0].attrs for e in got)
        assert got[0].attrs["label"] == s.label
    assert {s.anomaly for s in expected if s.anomaly} and any(s.label == 0 for s in expected)


async def test_simulate_honours_the_rate_limit(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=1)
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic_name]
    argv += ["--sessions", "40", "--rate", "500", "--seed", "2"]
    t0 = time.monotonic()
    assert await asyncio.to_thread(main, argv) == 0
    elapsed = time.monotonic() - t0
    n = len(await _read_all(kafka_bootstrap, topic_name, 1))
    assert n > 200
    assert elapsed >= 0.9 * n / 500  # paced, not as fast as possible


async def test_simulate_reports_an_unreachable_broker_in_one_line(
    topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 1; the CLI must fail cleanly, not hang or trace back.
    argv = ["simulate", "--bootstrap", "127.0.0.1:1", "--topic", topic_name, "--sessions", "1"]
    assert await asyncio.to_thread(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("logad: error: Kafka at 127.0.0.1:1")


async def test_simulate_produces_raw_events_keyed_by_trace_id(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=2)
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic_name, "--raw"]
    argv += ["--sessions", "50", "--anomaly-rate", "0.3", "--seed", "6", "--malformed", "2"]
    assert await asyncio.to_thread(main, argv) == 0

    messages = await _read_all(kafka_bootstrap, topic_name, 2)
    raw = [(k, orjson.loads(v)) for _, k, v in messages if not k.startswith(b"malformed-")]
    assert len(messages) - len(raw) == 2
    expected = list(generate_sessions(random.Random(6), 50, 0, 10.0, 0.3))
    assert len(raw) == sum(len(s.events) for s in expected)
    by_trace: dict[str, list[dict[str, object]]] = defaultdict(list)
    for key, obj in raw:
        assert "event_id" not in obj and key.decode() == obj["session_id"]
        by_trace[obj["session_id"]].append(obj)
    for s in expected:  # each session's messages, in order, under its trace id
        got = by_trace[s.trace_id]
        assert [o["message"] for o in got] == [e.message for e in s.events]
        assert all(o["attrs"] == s.events[0].attrs for o in got)


async def test_simulate_to_a_topic_starts_event_time_at_start_date_and_runs_at_speed(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    await create_topic(topic_name, partitions=1)
    argv = ["simulate", "--bootstrap", kafka_bootstrap, "--topic", topic_name]
    argv += ["--sessions", "30", "--seed", "6", "--start-date", "2026-03-01"]
    argv += ["--rate", "3000", "--speed", "600"]
    assert await asyncio.to_thread(main, argv) == 0

    events = [LogEvent.decode(v) for _, _, v in await _read_all(kafka_bootstrap, topic_name, 1)]
    start_ms = 1_772_323_200_000  # 2026-03-01T00:00:00Z
    first = min(e.ts for e in events)
    assert start_ms <= first < start_ms + 60_000  # not now: the date asked for
    # 600x the wall clock at 3000 events/s: sessions start about 3 s apart in event time
    starts = sorted(
        min(e.ts for e in events if e.session_id == s) for s in {e.session_id for e in events}
    )
    mean_gap = (starts[-1] - starts[0]) / (len(starts) - 1)
    assert 1_000 < mean_gap < 9_000
