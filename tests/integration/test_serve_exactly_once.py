"""`--exactly-once`: kill -9 mid-stream and restart; a read_committed reader sees every
window exactly once, and the dead letters once too."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from serve_support import (
    MakeTopics,
    committed_and_end,
    messages,
    produce,
    settings_for,
    start_serve_process,
    traffic,
)

from stream.devtools.simulate import malformed_message


async def read_committed(
    bootstrap: str,
    topic: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float,
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not until(records) and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def sessions_seen(records: list[ConsumerRecord[bytes, bytes]]) -> set[str]:
    return {orjson.loads(r.value)["session_id"] for r in records}


@pytest.mark.slow
async def test_exactly_once_survives_kill_9(
    kafka_bootstrap: str, serve_topics: MakeTopics, bundle: Path, tmp_path: Path
) -> None:
    topics = await serve_topics(2)
    sessions = traffic(400, anomaly_rate=0.1, seed=51)
    ids = {s.session_id for s in sessions}
    bad = [(f"bad-{i}".encode(), malformed_message(i)) for i in range(4)]
    msgs = messages(sessions)
    await produce(kafka_bootstrap, topics.input, msgs[:2000] + bad + msgs[2000:])
    settings = settings_for(
        kafka_bootstrap,
        topics,
        bundle,
        exactly_once=True,
        idle_timeout_ms=5_000,
        max_batch_tokens=512,
        commit_interval_ms=300,
        score_threads=1,
    )

    first = start_serve_process(settings, tmp_path, "first")
    try:
        some = await read_committed(kafka_bootstrap, topics.scores, lambda r: len(r) >= 60, 120)
        assert len(some) >= 60, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)

    second = start_serve_process(settings, tmp_path, "second")
    try:
        records = await read_committed(
            kafka_bootstrap, topics.scores, lambda r: sessions_seen(r) >= ids, 120
        )
    finally:
        second.send_signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, second.wait, 60)
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]
    # Read again after the clean stop: anything duplicated would be committed by now.
    records = await read_committed(kafka_bootstrap, topics.scores, lambda r: False, 5)

    window_ids = Counter(orjson.loads(r.value)["window_id"] for r in records)
    assert sessions_seen(records) == ids, "no session missing"
    assert max(window_ids.values()) == 1, "no window published twice"
    assert len(window_ids) == len(ids), "one window per session: no fragments"
    dlq = await read_committed(kafka_bootstrap, topics.dlq, lambda r: False, 5)
    assert sorted(r.value for r in dlq) == sorted(v for _k, v in bad)
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 2)
    assert committed == end
