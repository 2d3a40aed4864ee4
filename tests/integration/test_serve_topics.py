"""`logad serve` and its topics on the real broker (which auto-creates topics on use).

Started before any of its topics exist, serve creates the scores, alerts and dead-letter
topics, says once that the input topic is missing (without creating it), stays alive but not
ready, and scores every session produced once the topic is created. With create_topics off,
a missing topic stops it with one error line and exit code 2."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from serve_support import (
    CreateTopic,
    Topics,
    covers,
    http_get,
    messages,
    produce,
    read_topic,
    scores_of,
    settings_for,
    traffic,
    wait_until,
)
from structlog.testing import capture_logs

from schemas.bundle import write_manifest
from stream.cli import main
from stream.devtools import broker
from stream.serve import app
from stream.serve.app import serve
from tests.fakes import FakeScorer


def fake_bundle(path: Path) -> Path:
    """A bundle's files for the fake scorer, which reads none of them."""
    path.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "calibration.json"):
        (path / name).write_bytes(b"{}")
    write_manifest(path, "fake", None, None, preset="tiny")
    return path


async def existing_topics(bootstrap: str, names: list[str]) -> dict[str, int]:
    """Partition counts of those of `names` that exist (asking creates none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        listed = set(await admin.list_topics())  # all topics: never auto-creates
        present = [n for n in names if n in listed]
        described = await admin.describe_topics(present) if present else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def test_serve_creates_its_topics_and_waits_for_the_input_topic(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic, tmp_path: Path
) -> None:
    topics = Topics.for_test(topic_name)
    owned = [topics.scores, topics.alerts, topics.dlq]
    port = broker.free_port()
    settings = settings_for(
        kafka_bootstrap,
        topics,
        fake_bundle(tmp_path / "bundle"),
        reload_check_s=0,
        metrics_port=port,
        topic_partitions=2,
    )
    sessions = traffic(60, anomaly_rate=0.0, seed=5)
    ids = {s.session_id for s in sessions}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    with capture_logs() as logs:

        def logged(event: str) -> list[dict[str, object]]:
            return [e for e in logs if e["event"] == event]

        task = asyncio.create_task(serve(settings, stop, lambda _b: FakeScorer("fake")))
        try:
            await wait_until(
                lambda: bool(logged("input_topic_missing")) or task.done(), 60, "the warning"
            )
            assert not task.done(), task.result()
            assert await existing_topics(kafka_bootstrap, owned) == dict.fromkeys(owned, 2)
            await asyncio.sleep(2.5)  # a few more checks: none of them creates the input topic
            assert await existing_topics(kafka_bootstrap, [topics.input]) == {}
            health = await loop.run_in_executor(None, http_get, port, "/healthz")
            ready = await loop.run_in_executor(None, http_get, port, "/readyz")
            assert (health[0], ready[0]) == (200, 503)

            await create_topic(topics.input, 2)
            created = time.monotonic()
            await wait_until(lambda: bool(logged("input_topic_found")), 10, "the input topic")
            found_s = time.monotonic() - created
            await produce(kafka_bootstrap, topics.input, messages(sessions))
            records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 60)
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    assert {s.session_id for s in scores_of(records)} == ids, "every session is scored"
    warnings = logged("input_topic_missing")
    assert len(warnings) == 1 and warnings[0]["topic"] == topics.input
    assert warnings[0]["log_level"] == "warning"
    assert len(logged("input_topic_found")) == 1
    (made,) = logged("topics_created")
    assert sorted(made["topics"]) == sorted(owned)  # type: ignore[arg-type]
    print(f"topics: input topic picked up {found_s:.1f} s after its creation")


def test_serve_without_create_topics_stops_on_a_missing_topic(
    kafka_bootstrap: str,
    topic_name: str,
    create_topic: CreateTopic,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = Topics.for_test(topic_name)
    for t in (topics.input, topics.scores):  # alerts and dead letters are missing
        asyncio.run(create_topic(t))
    monkeypatch.setattr(app, "load_scorer", lambda _s: lambda _b: FakeScorer("fake"))
    argv = [
        "serve",
        "--model",
        str(fake_bundle(tmp_path / "bundle")),
        "--bootstrap",
        kafka_bootstrap,
        "--input-topic",
        topics.input,
        "--scores-topic",
        topics.scores,
        "--alerts-topic",
        topics.alerts,
        "--dlq-topic",
        topics.dlq,
        "--group-id",
        topics.group,
        "--metrics-port",
        "0",
        "--create-topics",
        "false",
    ]
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("logad: error:")]
    assert len(errors) == 1, lines
    assert f"{topics.alerts} (alerts_topic)" in errors[0]
    assert f"{topics.dlq} (dlq_topic)" in errors[0]
    assert topics.scores not in errors[0] and "create_topics" in errors[0]
    print(f"topics: {errors[0]}")
    remaining = asyncio.run(existing_topics(kafka_bootstrap, [topics.alerts, topics.dlq]))
    assert remaining == {}, "nothing was created"
