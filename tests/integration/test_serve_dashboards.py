"""Every metric that deploy/'s Grafana dashboard and Prometheus rules query is on a live
`logad serve`'s /metrics, after it scored windows from two partitions (labelled metrics
such as the per-partition lag and the model version only have samples by then)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from serve_support import MakeTopics, covers, http_get, produce, read_topic, settings_for

from schemas.bundle import write_manifest
from schemas.events import LogEvent
from stream.devtools import broker
from stream.serve.app import serve
from tests.fakes import FakeScorer, event_count
from tests.promql_names import PROMETHEUS_BUILTINS, deploy_references, exposed_names

WANTED = (
    "logad_consumer_lag{",
    'logad_model_info{version="fake"} 1.0',
    "logad_model_loaded 1.0",
    "logad_ready 1.0",
    "logad_threshold 2.5",
)


def fake_bundle(root: Path) -> Path:
    bundle = root / "fake-bundle"
    bundle.mkdir()
    for name in ("config.json", "model.safetensors", "vocab.json", "calibration.json"):
        (bundle / name).write_bytes(b"{}")  # a manifest's files: the fake scorer reads none
    write_manifest(bundle, "fake", None, None, preset="tiny")
    return bundle


async def test_dashboard_and_rules_name_only_metrics_serve_exposes(
    kafka_bootstrap: str, serve_topics: MakeTopics, tmp_path: Path
) -> None:
    topics = await serve_topics(2)
    now = int(time.time() * 1000)
    ids = {f"s{i}" for i in range(8)}
    msgs = [
        (sid.encode(), LogEvent(now - 60_000 + j * 10, "svc", sid, f"E{j}").encode())
        for sid in sorted(ids)
        for j in range(1 + int(sid[1:]) % 4)  # 1 to 4 events: scores 1 to 4, some alerts
    ]
    await produce(kafka_bootstrap, topics.input, msgs)
    port = broker.free_port()
    settings = settings_for(
        kafka_bootstrap, topics, fake_bundle(tmp_path), metrics_port=port, reload_check_s=0
    )
    scorer = FakeScorer("fake", threshold=2.5, rule=event_count)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, lambda _b: scorer, ready=ready))
    loop = asyncio.get_running_loop()
    text = ""
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await read_topic(kafka_bootstrap, topics.scores, covers(ids), timeout_s=40)
        # Scores are published before the worker observes them; the lag gauge is set on a
        # loop tick. Scrape until both show.
        for _ in range(50):
            code, text = await loop.run_in_executor(None, http_get, port, "/metrics")
            assert code == 200
            if all(w in text for w in WANTED) and f"logad_window_score_count {len(ids)}.0" in text:
                break
            await asyncio.sleep(0.2)
        assert not task.done(), "serve stays up"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    for wanted in WANTED:
        assert wanted in text, wanted
    exposed = exposed_names(text)
    refs = deploy_references()
    missing = {n: sorted(w) for n, w in refs.items() if n not in exposed | PROMETHEUS_BUILTINS}
    assert not missing, f"queried by deploy/ but not on /metrics: {missing}"
    assert "logad_window_score_bucket" in refs and "logad_consumer_lag" in refs
    assert f"logad_window_score_count {len(ids)}.0" in text
    assert 'logad_window_score_bucket{le="2.0"} 4.0' in text  # the 1- and 2-event sessions
