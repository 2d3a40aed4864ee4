"""A dead-letter topic that refuses every record (its max.message.bytes far too small): serve
retries the dead letter with backoff and never exits, pauses the partition meanwhile (nothing
is read past it, nothing committed past the poison record), and once the topic takes the
record again the dead letter lands and every valid session is scored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from fault_report import FaultCounts
from serve_support import (
    CreateTopic,
    Topics,
    committed_and_end,
    covers,
    produce,
    read_topic,
    scores_of,
    settings_for,
)

from schemas.bundle import write_manifest
from schemas.events import LogEvent
from schemas.runtime.logs import configure_logging
from stream.serve.app import serve
from tests.fakes import FakeScorer

pytestmark = pytest.mark.fault


def _sessions(prefix: str, n: int, base_ms: int) -> list[tuple[bytes, bytes]]:
    """`n` valid sessions of 3 events, as (key, value) messages."""
    sids = [f"{prefix}-{i}" for i in range(n)]
    return [
        (sid.encode(), LogEvent(base_ms + i * 50 + j, "svc", sid, f"E{j}").encode())
        for i, sid in enumerate(sids)
        for j in range(3)
    ]


def _logged(capsys: pytest.CaptureFixture[str], seen: list[dict[str, Any]]) -> list[str]:
    text = capsys.readouterr().err
    seen += [orjson.loads(ln) for ln in text.splitlines() if ln.startswith("{")]
    return [line["event"] for line in seen]


async def _set_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        res = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(value)})
        await admin.alter_configs([res])
    finally:
        await admin.close()


@pytest.mark.usefixtures("_restore_logging")
async def test_an_unreachable_dlq_pauses_the_partition_and_loses_nothing(
    kafka_bootstrap: str,
    topic_name: str,
    create_topic: CreateTopic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault_counts: FaultCounts,
) -> None:
    configure_logging("info", json=True)
    topics = Topics.for_test(topic_name)
    for t in (topics.input, topics.scores, topics.alerts):
        await create_topic(t, 1)
    await create_topic(topics.dlq, 1, {"max.message.bytes": "16"})  # no dead letter fits
    bundle = tmp_path / "fake-bundle"
    bundle.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "calibration.json"):
        (bundle / name).write_bytes(b"{}")
    write_manifest(bundle, "fake", None, None, preset="tiny")

    base = int(time.time() * 1000) - 60_000
    head, tail = _sessions("head", 20, base), _sessions("tail", 20, base + 2_000)
    ids = {k.decode() for k, _v in head + tail}
    settings = settings_for(
        kafka_bootstrap, topics, bundle, reload_check_s=0,
        dlq_retry_initial_ms=50, dlq_retry_max_ms=400,
    )  # fmt: skip
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, lambda _b: FakeScorer("fake"), ready=ready))
    seen: list[dict[str, Any]] = []
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await produce(kafka_bootstrap, topics.input, head[:30])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            poison = await (await producer.send(topics.input, b"{not json", b"poison"))
        finally:
            await producer.stop()
        await produce(kafka_bootstrap, topics.input, head[30:])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while "partitions_paused_dlq" not in _logged(capsys, seen):
            assert loop.time() < deadline, f"never paused: {seen[-5:]}"
            await asyncio.sleep(0.2)
        # Paused: what comes now is not read, and no commit passes the poison record.
        await produce(kafka_bootstrap, topics.input, tail)
        await asyncio.sleep(4)
        events = _logged(capsys, seen)
        assert not task.done(), "serve keeps running while the DLQ refuses"
        assert events.count("dlq_send_failed") >= 3, "retried, with backoff"
        early = scores_of(await read_topic(kafka_bootstrap, topics.scores, bool, 2))
        assert not any(s.session_id.startswith("tail-") for s in early), "partition paused"
        committed, _ = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 1)
        assert (committed[0] or 0) <= poison.offset

        await _set_max_message_bytes(kafka_bootstrap, topics.dlq, 1024 * 1024)
        dlq = await read_topic(kafka_bootstrap, topics.dlq, lambda r: len(r) >= 1, 30)
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 30)
        assert not task.done(), "serve stays up"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    events = _logged(capsys, seen)
    assert "dlq_send_recovered" in events and "partitions_resumed_dlq" in events
    assert [int(dict(r.headers)["source.offset"]) for r in dlq] == [poison.offset]
    scores = scores_of(records)
    fault_counts.record_scores(ids, scores)
    fault_counts.dead_lettered = len(dlq)
    fault_counts.pytest_rss()
    assert fault_counts.produced == fault_counts.scored == len(ids), "nothing skipped or lost"
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 1)
    assert committed == end


async def test_exactly_once_never_commits_past_a_dead_letter_the_dlq_refused(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic, tmp_path: Path
) -> None:
    # aiokafka commits a transaction even when the broker refused one of its records: the
    # dead letter would vanish while the commit moved past it. The transaction must fail.
    topics = Topics.for_test(topic_name)
    for t in (topics.input, topics.scores, topics.alerts):
        await create_topic(t, 1)
    await create_topic(topics.dlq, 1, {"max.message.bytes": "16"})
    bundle = tmp_path / "fake-bundle"
    bundle.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "calibration.json"):
        (bundle / name).write_bytes(b"{}")
    write_manifest(bundle, "fake", None, None, preset="tiny")
    head = _sessions("head", 10, int(time.time() * 1000) - 60_000)
    await produce(kafka_bootstrap, topics.input, [*head, (b"poison", b"{not json")])
    settings = settings_for(kafka_bootstrap, topics, bundle, reload_check_s=0, exactly_once=True)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, lambda _b: FakeScorer("fake")))
    try:
        done, _ = await asyncio.wait({task}, timeout=60)
        assert done, "serve did not stop at the failed transaction"
        assert isinstance(task.exception(), Exception)
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, 30)
    committed, _ = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 1)
    assert (committed[0] or 0) <= len(head), "no commit past the poison record"
    visible = await read_topic(kafka_bootstrap, topics.scores, bool, 3, "read_committed")
    assert not visible, "no result of the aborted transaction is visible"
