"""`logad serve` against a poison corpus on the real broker: every poison record lands in the
DLQ with its reason, serve stays up, and every valid session around them is scored with a
normal window (the event dated 2300 does not move the watermark)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from fault_report import FaultCounts
from serve_support import CreateTopic, Topics, covers, read_topic, scores_of, settings_for

from schemas.bundle import write_manifest
from schemas.events import LogEvent
from stream.serve.app import serve
from tests.fakes import FakeScorer
from tests.poison import poison_corpus


@pytest.mark.fault
async def test_serve_dead_letters_every_poison_kind_and_scores_the_rest(
    kafka_bootstrap: str,
    topic_name: str,
    create_topic: CreateTopic,
    tmp_path: Path,
    fault_counts: FaultCounts,
) -> None:
    topics = Topics.for_test(topic_name)
    # The input topic takes the 1 MiB poison record as the probe's broker did.
    await create_topic(topics.input, 1, {"max.message.bytes": str(2 * 1024 * 1024)})
    for t in (topics.scores, topics.alerts, topics.dlq):
        await create_topic(t, 1)
    bundle = tmp_path / "fake-bundle"
    bundle.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "calibration.json"):
        (bundle / name).write_bytes(b"{}")  # a manifest's files: the fake scorer reads none
    write_manifest(bundle, "fake", None, None, preset="tiny")

    now = int(time.time() * 1000)
    corpus = poison_corpus(now)
    base = now - 120_000
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    poison_at: dict[int, str] = {}  # source offset -> kind
    ids: set[str] = set()
    produced = 0
    try:
        for i in range(len(corpus) + 1):
            sid = f"valid-{i}"
            ids.add(sid)
            for j in range(3):  # a valid session of 3 events before (and after) each poison
                e = LogEvent(base + i * 500 + j * 10, "svc", sid, f"E{j}")
                await (await producer.send(topics.input, e.encode(), sid.encode()))
                produced += 1
            if i < len(corpus):
                p = corpus[i]
                # A batch of its own: `send` refuses a record with neither key nor value,
                # which other clients produce.
                batch = producer.create_batch()
                batch.append(key=p.key, value=p.value, timestamp=None, headers=list(p.headers))
                batch.close()
                meta = await (await producer.send_batch(batch, topics.input, partition=0))
                poison_at[meta.offset] = p.kind
                produced += 1
    finally:
        await producer.stop()

    settings = settings_for(kafka_bootstrap, topics, bundle, reload_check_s=0)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, lambda _b: FakeScorer("fake"), ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        dlq = await read_topic(
            kafka_bootstrap, topics.dlq, lambda r: len(r) >= len(corpus), timeout_s=40
        )
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), timeout_s=30)
        assert not task.done(), "serve stays up"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    by_offset = {int(dict(r.headers)["source.offset"]): dict(r.headers) for r in dlq}
    missing = sorted(k for off, k in poison_at.items() if off not in by_offset)
    assert not missing, f"not dead-lettered: {missing}"
    for off, kind in poison_at.items():
        h = by_offset[off]
        assert h["error"] and h["error.type"], kind
        assert h["source.topic"] == topics.input.encode()
    assert (
        by_offset[min(o for o, k in poison_at.items() if k == "ts_2300_future")]["error.type"]
        == b"FutureEvent"
    )
    scores = scores_of(records)
    fault_counts.record_scores(ids, scores)
    fault_counts.dead_lettered = len(dlq)
    fault_counts.pytest_rss()
    assert {s.session_id for s in scores} == ids, "every valid session is scored"
    assert len(dlq) == len(by_offset) == len(corpus), "each poison record dead-lettered once"
    # One normal window each: not the one-event late windows a runaway watermark makes.
    assert sorted((s.n_events, s.late) for s in scores) == [(3, False)] * len(ids)
    print(
        f"poison: produced={produced} scored_sessions={len(ids)} scores={len(scores)} "
        f"dead_lettered={len(by_offset)} kinds={len(corpus)}"
    )
