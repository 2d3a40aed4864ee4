"""Raw log lines end to end on the real broker: Spring Boot text -> `logad parse` -> a tiny
bundle that carries the templates -> `logad serve` fed raw LogEvents (a message, no event id)
-> a Score for every trace, and alerts that name a line the model never saw."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from serve_support import (
    MakeTopics,
    covers,
    http_get,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
)

from schemas.bundle import TEMPLATES, read_bundle_templates, write_manifest
from schemas.daily_files import find_daily_files, read_sessions
from schemas.events import LogEvent
from schemas.scores import Alert
from schemas.templates import read_templates
from stream.cli import main
from stream.devtools import broker
from tests.raw_spring import NEVER_SEEN_TEMPLATE, RawLine, interleaved, trace, traces
from trainer.mining.matcher import NO_TEMPLATES

START_MS = int(datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def raw_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny bundle trained on days `logad parse` mined from a raw Spring Boot log."""
    from trainer.dataset import DataSelection
    from trainer.settings import TrainSettings
    from trainer.train import TrainRequest, run_training

    root = tmp_path_factory.mktemp("raw-bundle")
    log = root / "shop.log"
    lines = interleaved(traces(random.Random(7), 600, START_MS - 86_400_000))
    log.write_text("".join(x.text() + "\n" for x in lines))
    parsed = root / "parsed"
    argv = ["--log-level", "warning", "parse", str(log), "--session-key", "trace_id"]
    assert main([*argv, "--out", str(parsed)]) == 0
    settings = TrainSettings(
        preset="tiny",
        epochs=3,
        lr=1e-3,
        tokens_per_batch=4096,
        num_workers=0,
        device="cpu",
        token_cache_dir=root / "tokens",
        threshold_quantile=0.99,
        checkpoint_every_steps=0,
    )
    run_training(settings, TrainRequest(DataSelection((parsed,)), root / "bundle"))
    return root / "bundle"


def _messages(lines: list[RawLine]) -> list[tuple[bytes, bytes]]:
    return [(x.trace_id.encode(), x.event().encode()) for x in lines]


@pytest.mark.slow
async def test_serve_scores_raw_events_and_names_a_never_seen_line(
    kafka_bootstrap: str, serve_topics: MakeTopics, raw_bundle: Path, tmp_path: Path
) -> None:
    topics = await serve_topics(2)
    rng = random.Random(11)
    normal = traces(rng, 60, START_MS)
    broken = [trace(rng, "place-order", START_MS + 500 + 97 * i, broken=True) for i in range(8)]
    ids = {t[0].trace_id for t in normal + broken}
    await produce(kafka_bootstrap, topics.input, _messages(interleaved(normal + broken)))
    archive = tmp_path / "archive"
    port = broker.free_port()
    settings = settings_for(
        kafka_bootstrap, topics, raw_bundle, archive_dir=archive, metrics_port=port
    )

    async with serving(settings):
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 60)
        alerted = {s.session_id for s in scores_of(records) if s.anomalous}
        alert_records = await read_topic(
            kafka_bootstrap, topics.alerts, lambda r: len(r) >= len(alerted), 20
        )
        status, body = http_get(port, "/metrics")
    assert status == 200
    metric = {
        line.split()[0]: float(line.split()[1])
        for line in body.splitlines()
        if line.startswith(("logad_templates_new", "logad_raw_lines_over_cap"))
    }
    assert metric == {"logad_templates_new": 1.0, "logad_raw_lines_over_cap": 0.0}

    scores = scores_of(records)
    assert {s.session_id for s in scores} == ids, "every trace is scored"
    assert not await read_topic(kafka_bootstrap, topics.dlq, lambda r: bool(r), 1)
    known = {t.id for t in read_bundle_templates(raw_bundle).templates}  # type: ignore[union-attr]
    alerts = [Alert.decode(r.value) for r in alert_records]
    named = [e for a in alerts for e in a.surprising if e.template is not None]
    assert named, "an alert names the never-seen line's template"
    assert {e.template for e in named} == {NEVER_SEEN_TEMPLATE}
    (new_id,) = {e.event_id for e in named}
    assert new_id not in known
    broken_ids = {t[0].trace_id for t in broken}
    assert {a.session_id for a in alerts if new_id in a.events} <= broken_ids

    # The archive holds the mined id in its lines and the set that defines it.
    archived = read_templates(archive / "templates.json")
    assert {t.id: t.template for t in archived.templates}[new_id] == NEVER_SEEN_TEMPLATE
    lines = [s for f in find_daily_files([archive]) for s in read_sessions(f.path)]
    assert {s.session_id for s in lines if new_id in s.events} == broken_ids


async def test_a_raw_event_without_templates_is_a_dead_letter(
    kafka_bootstrap: str, serve_topics: MakeTopics, raw_bundle: Path, tmp_path: Path
) -> None:
    # The same model without its templates.json (and a manifest that no longer lists it).
    bare = tmp_path / "bare"
    shutil.copytree(raw_bundle, bare)
    (bare / TEMPLATES).unlink()
    (bare / "manifest.json").unlink()
    write_manifest(bare, "v-bare", None, None, preset="tiny")
    topics = await serve_topics(1)
    (first, *_) = traces(random.Random(3), 1, START_MS)
    raw_value = first[0].event().encode()
    with_id = LogEvent(START_MS, "gateway", "with-id", "T1").encode()
    await produce(kafka_bootstrap, topics.input, [(b"t", raw_value), (b"with-id", with_id)])

    async with serving(settings_for(kafka_bootstrap, topics, bare)):
        dlq = await read_topic(kafka_bootstrap, topics.dlq, lambda r: len(r) >= 1, 30)
        scored = await read_topic(kafka_bootstrap, topics.scores, covers({"with-id"}), 30)

    assert [r.value for r in dlq] == [raw_value]
    headers = dict(dlq[0].headers)
    assert headers["error"] == NO_TEMPLATES.encode() and headers["error.type"] == b"DecodeError"
    assert {s.session_id for s in scores_of(scored)} == {"with-id"}
