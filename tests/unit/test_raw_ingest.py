"""Raw events in `logad serve`, without a broker: messages mapped to template ids, a line
unlike any template gets a new id that alerts name, raw events without templates go to the
DLQ, a reload switches templates without renumbering, and the archive keeps the set."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from schemas.daily_files import read_sessions
from schemas.events import LogEvent
from schemas.scores import Expected, Score, SurprisingEvent
from schemas.templates import TemplateSet, read_templates, write_templates
from stream.serve.archive import DAY_MS, DailyArchive
from tests.fakes import FakeScorer, SurprisedScorer
from tests.raw_spring import KNOWN, NEW, bundle_set
from tests.unit.test_serve_loop import TOPIC, assign, make_service, record
from trainer.mining.matcher import NO_TEMPLATES


def raw(sid: str, ts: int, message: str) -> bytes:
    return LogEvent(ts, "gateway", sid, None, "INFO", message).encode()


def serve_with(templates: TemplateSet | None, **overrides: Any) -> Any:
    service, consumer, producer = make_service(**overrides)
    ids = frozenset(t.id for t in templates.templates) if templates else frozenset()
    scorer = SurprisedScorer(ids)
    service.worker.scorer = scorer
    service.raw.switch(templates)
    return service, consumer, producer, scorer


async def test_raw_events_map_to_ids_and_a_new_template_is_named_in_the_alert() -> None:
    templates = bundle_set()
    service, consumer, producer, scorer = serve_with(templates)
    await assign(service, consumer, {0})
    task = asyncio.create_task(service.worker.run())
    recs = [record(0, i, raw("t1", 1000 + i, m)) for i, m in enumerate(KNOWN)]
    recs += [record(0, 3, raw("t2", 1100, KNOWN[0])), record(0, 4, raw("t2", 1101, NEW))]
    recs.append(record(0, 5, raw("t3", 9000, "Order 7 loaded in 3 ms")))  # closes t1, t2
    assert service._ingest({TopicPartition(TOPIC, 0): recs}, now=0) == []
    await service.acks.wait_until(lambda: len(scorer.windows) == 2 and not service.worker.backlog)
    known = [t.id for t in templates.templates]
    new_id = f"T{len(known) + 1}"
    assert {w.session_id: w.events for w in scorer.windows} == {
        "t1": tuple(known),
        "t2": (known[0], new_id),
    }
    alerts = [v for t, _k, v in producer.sent if t == "alerts"]
    assert [a["session_id"] for a in alerts] == ["t2"]
    (odd,) = alerts[0]["surprising"]
    assert odd["event_id"] == new_id
    assert odd["template"] == "Bank gateway refused the connection: TLS handshake failed after <*>"
    assert service.raw.matcher is not None and service.raw.matcher.new_templates == 1
    service.worker.stop()
    await task


async def test_without_templates_a_raw_event_is_a_dead_letter_with_its_reason() -> None:
    service, consumer, producer, _ = serve_with(None)
    await assign(service, consumer, {0})
    ok = LogEvent(1000, "svc", "a", "E1").encode()
    bad = service._ingest(
        {TopicPartition(TOPIC, 0): [record(0, 0, ok), record(0, 1, raw("b", 1001, NEW))]}, now=0
    )
    assert [(r.offset, str(e)) for r, e in bad] == [(1, NO_TEMPLATES)]
    await service._dead_letter(bad)
    (headers,) = [
        dict(h or [])
        for (t, _k, _v), h in zip(producer.sent, producer.headers, strict=True)
        if t == "dlq"
    ]
    assert headers["error"] == NO_TEMPLATES.encode()
    assert headers["error.type"] == b"DecodeError"


async def test_a_reload_brings_the_new_templates_and_keeps_the_mined_ids() -> None:
    service, consumer, _, _ = serve_with(bundle_set())
    await assign(service, consumer, {0})
    tp = TopicPartition(TOPIC, 0)
    service._ingest({tp: [record(0, 0, raw("a", 1000, NEW))]}, now=0)
    old = service.raw.matcher
    assert old is not None
    new_id = old.id_of(NEW, 0)
    archived = old.to_set()  # what the nightly retrain trains the next bundle with
    cache = "Cache miss for key user:42"
    service._ingest({tp: [record(0, 1, raw("a", 1001, cache))]}, now=0)  # mined after that
    later_id = old.id_of(cache, 0)
    service.offer_model(FakeScorer("v2"), archived)
    m = service.raw.matcher
    assert m is not old and m is not None
    # The retrained bundle knows the first new template; the later one keeps its id.
    assert m.id_of(NEW, 0) == new_id and new_id in m.known and m.new_template(new_id) is None
    assert m.id_of("Cache miss for key user:7", 0) == later_id
    assert m.new_template(later_id) == "Cache miss for key user:<*>"
    service.offer_model(FakeScorer("v3"), None)  # a bundle without templates
    bad = service._ingest({tp: [record(0, 2, raw("b", 1002, NEW))]}, now=0)
    assert [str(e) for _r, e in bad] == [NO_TEMPLATES]


async def test_the_archive_keeps_the_mined_set_and_a_restart_reads_it_back(tmp_path: Path) -> None:
    templates = bundle_set()
    service, consumer, _, scorer = serve_with(templates, archive_dir=tmp_path, gap_ms=1000)
    await assign(service, consumer, {0})
    day = 20454 * DAY_MS  # 2026-01-01
    task = asyncio.create_task(service.worker.run())
    recs = [record(0, 0, raw("a", day + 10, KNOWN[0])), record(0, 1, raw("a", day + 20, NEW))]
    service._ingest({TopicPartition(TOPIC, 0): recs}, now=day)  # wall clock: that day
    service._submit(service.sessions.flush_all())
    await service.acks.wait_until(lambda: len(scorer.windows) == 1 and not service.worker.backlog)
    service.worker.stop()
    await task
    assert service.archive is not None
    service.archive.close(day + DAY_MS + 5000)
    assert service.raw.matcher is not None
    new_id = service.raw.matcher.id_of(NEW, 0)
    (line,) = read_sessions(tmp_path / "preprocessed_logs_2026-01-01.jsonl")
    assert line.events == (templates.templates[0].id, new_id)
    assert (tmp_path / "preprocessed_logs_2026-01-01.jsonl.done").exists()
    archived = read_templates(tmp_path / "templates.json")
    assert archived == service.raw.matcher.to_set() and archived.templates[-1].id == new_id
    # A restart on the same bundle and archive gives the line the same id again.
    again, _, _, _ = serve_with(templates, archive_dir=tmp_path)
    assert again.raw.matcher is not None and again.raw.matcher.id_of(NEW, 0) == new_id


def test_templates_are_written_before_a_day_is_marked(tmp_path: Path) -> None:
    seen: list[bool] = []
    templates = bundle_set()

    def snapshot() -> TemplateSet:
        seen.append((tmp_path / "preprocessed_logs_2026-01-01.jsonl.done").exists())
        return templates

    a = DailyArchive(tmp_path, templates=snapshot)
    write_templates(tmp_path / "unrelated.json", templates)
    from tests.unit.test_archive import D1, _scored

    a.append(*_scored("s1", D1 + 5))
    assert a.mark_complete(D1 + 10) == [] and seen == []  # nothing marked, nothing written
    assert a.mark_complete(D1 + DAY_MS) == [date(2026, 1, 1)]
    assert seen == [False]
    assert read_templates(tmp_path / "templates.json") == templates
    a.close()
    assert seen == [False, True]  # and again at shutdown


def test_a_human_alert_shows_the_new_template() -> None:
    from schemas.scores import Alert
    from stream.devtools.demo import format_alert

    new = SurprisingEvent(
        1, "T9", 12.0, (Expected("T2", 0.7),), template="Disk <*> is full", reason="unseen_event"
    )
    old = SurprisingEvent(0, "T1", 3.0, (Expected("T2", 0.7),))
    score = Score("w", "s", 0, "v1", 12.0, 5.0, True, 2, 0, 1, 2, (new, old))
    text = format_alert(Alert.from_score(score, ("T1", "T9")))
    assert "new log template: Disk <*> is full" in text
    assert text.count("new log template") == 1
    # A new template already says the model never saw the event: no rule line for it.
    assert "scored by a rule" not in text
    ceiling = SurprisingEvent(2, "T1", 20.7, (), reason="past_count_ceiling")
    score = Score("w", "s", 0, "v1", 20.7, 5.0, True, 3, 0, 1, 2, (new, old, ceiling))
    text = format_alert(Alert.from_score(score, ("T1", "T9", "T1")))
    assert "scored by a rule: more of this event than the training windows held" in text
    assert text.count("scored by a rule") == 1


async def test_the_watcher_offers_a_bundle_with_its_templates(tmp_path: Path) -> None:
    from schemas.bundle import TEMPLATES, write_manifest
    from stream.cli import main
    from stream.jobs.registry import add_to_registry
    from stream.serve.metrics import ServeMetrics
    from stream.serve.reload import ModelWatcher
    from tests.unit.test_promote_and_watch import Loaded, fake_bundle

    reg = tmp_path / "registry"
    add_to_registry(fake_bundle(tmp_path / "v1", "v1"), reg)
    v2 = fake_bundle(tmp_path / "v2", "v2")
    write_templates(v2 / TEMPLATES, bundle_set())
    write_manifest(v2, "v2", None, None)  # now listing templates.json
    add_to_registry(v2, reg)
    add_to_registry(fake_bundle(tmp_path / "v3", "v3"), reg)
    main(["promote", "v1", "--registry", str(reg)])
    offered: list[tuple[str, TemplateSet | None]] = []
    loads: list[str] = []

    def load(bundle: Path) -> Any:
        loads.append(bundle.name)
        return Loaded(bundle.name)

    watcher = ModelWatcher(
        reg, "v1", load, lambda s, t: offered.append((s.model_version, t)), ServeMetrics(), 0.01
    )
    main(["promote", "v2", "--registry", str(reg)])
    assert await watcher.check()
    assert offered == [("v2", bundle_set())]
    assert main(["promote", "v3", "--registry", str(reg)]) == 0
    (reg / "v3" / TEMPLATES).write_text("{}")  # slipped in since, not in the manifest
    assert not await watcher.check()  # refused before its model was loaded
    assert loads == ["v2"] and len(offered) == 1
