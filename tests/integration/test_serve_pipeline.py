"""`logad serve` end to end on the real broker: scores, alerts, dead letters, commits, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from serve_support import (
    MakeTopics,
    committed_and_end,
    covers,
    http_get,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    traffic,
)

from schemas.scores import Alert
from stream.devtools import broker
from stream.devtools.simulate import malformed_message


@pytest.mark.slow
async def test_serve_scores_every_session_and_commits_behind_scores(
    kafka_bootstrap: str, serve_topics: MakeTopics, bundle: Path
) -> None:
    topics = await serve_topics(3)
    sessions = traffic(300, anomaly_rate=0.2, seed=11)
    bad = [(f"bad-{i}".encode(), malformed_message(i)) for i in range(5)]
    msgs = messages(sessions)
    # Malformed messages in the middle of the stream, so good offsets lie on both sides.
    await produce(kafka_bootstrap, topics.input, msgs[:1000] + bad + msgs[1000:])
    ids = {s.session_id for s in sessions}
    port = broker.free_port()
    # A small queue, so the consumer has to pause and resume partitions along the way.
    settings = settings_for(
        kafka_bootstrap, topics, bundle, metrics_port=port, queue_max_windows=32
    )

    async with serving(settings):
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 90)
        dlq = await read_topic(kafka_bootstrap, topics.dlq, lambda r: len(r) >= len(bad), 30)
        loop = asyncio.get_running_loop()
        health = await loop.run_in_executor(None, http_get, port, "/healthz")
        ready = await loop.run_in_executor(None, http_get, port, "/readyz")
        # The paused gauge is refreshed on the loop's next tick after the queue drains.
        for _ in range(50):
            metrics = await loop.run_in_executor(None, http_get, port, "/metrics")
            if "logad_paused 0.0" in metrics[1]:
                break
            await asyncio.sleep(0.2)
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 3)

    scores = scores_of(records)
    assert {s.session_id for s in scores} == ids, "every session is scored"
    assert all(r.key == s.session_id.encode() for r, s in zip(records, scores, strict=True))
    version = scores[0].model_version
    assert {s.model_version for s in scores} == {version}

    # Injected anomalies alert at a clearly higher rate than normal traffic.
    anomalous = {s.session_id for s in sessions if s.anomaly}
    alerted = {s.session_id for s in scores if s.anomalous}
    rate_anomalous = len(alerted & anomalous) / len(anomalous)
    rate_normal = len(alerted - anomalous) / (len(ids) - len(anomalous))
    assert rate_anomalous > max(0.3, 2 * rate_normal), (rate_anomalous, rate_normal)
    alerts = [
        Alert.decode(r.value)
        for r in await read_topic(
            kafka_bootstrap, topics.alerts, lambda r: len(r) >= len(alerted), 30
        )
    ]
    assert {a.session_id for a in alerts} == alerted
    assert all(a.events and a.model_version == version and a.surprising for a in alerts)

    # The malformed messages sit in the DLQ, byte for byte, with their reason and origin.
    assert sorted(r.value for r in dlq) == sorted(v for _k, v in bad)
    for r in dlq:
        h = dict(r.headers)
        assert h["error"] and h["error.type"] == b"DecodeError"
        assert h["source.topic"] == topics.input.encode()
        assert int(h["source.partition"]) in range(3) and int(h["source.offset"]) >= 0

    # A clean shutdown commits exactly the end of every partition: all of it was scored.
    assert committed == end

    assert health[0] == 200
    assert ready[0] == 200
    assert metrics[0] == 200
    text = metrics[1]
    assert f"logad_events_total {float(len(msgs) + len(bad))}" in text
    assert "logad_dlq_total 5.0" in text
    assert f'logad_model_info{{version="{version}"}} 1.0' in text
    assert "logad_batch_latency_seconds_count" in text
    assert 'logad_consumer_lag{partition="0"} 0.0' in text
    pauses = [ln for ln in text.splitlines() if ln.startswith("logad_pauses_total ")]
    assert float(pauses[0].split()[1]) >= 1, "backpressure paused the partitions"
    assert "logad_paused 0.0" in text


def test_serve_refuses_a_model_that_fails_verification(
    kafka_bootstrap: str, topic_name: str, tmp_path: Path, bundle: Path
) -> None:
    from stream.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    rc = main(["serve", "--model", str(bad), "--bootstrap", kafka_bootstrap,
               "--metrics-port", "0", "--input-topic", topic_name])  # fmt: skip
    assert rc == 2  # a one-line BundleError, not a traceback and not a serving process
