"""`logad console` in a real browser: the session's broker, `logad serve` with the tiny
model, and the console (in this process); anomalous sessions produced; Debian's chromium,
headless, opens the page. The alert must appear in the rendered DOM, its session view
must show the session's events in order with what the model expected, Acknowledge must
hide its group, and "Confirm anomalous" must reach the feedback file.

Without chromium this test fails (it never skips): `make chromium` installs it.

And a console started before serve waits for the topics without creating them (the local
broker auto-creates a topic that a metadata request names)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from chromium_cdp import MISSING, Page, chromium_binary, chromium_page
from serve_support import (
    CreateTopic,
    MakeTopics,
    messages,
    produce,
    serving,
    settings_for,
    traffic,
    wait_until,
)

from schemas.feedback import read_feedback
from schemas.runtime.settings import build_settings
from stream.console.server import Console
from stream.console.settings import ConsoleSettings
from stream.devtools import broker
from stream.serve.topics import KafkaTopicAdmin


@pytest.mark.slow
async def test_alert_and_its_session_view_render_in_chromium(
    kafka_bootstrap: str, serve_topics: MakeTopics, bundle: Path, tmp_path: Path
) -> None:
    if chromium_binary() is None:
        pytest.fail(MISSING)
    topics = await serve_topics(2)
    metrics_port = broker.free_port()
    serve_settings = settings_for(kafka_bootstrap, topics, bundle, metrics_port=metrics_port)
    feedback = tmp_path / "feedback.jsonl"
    console_settings = build_settings(
        ConsoleSettings,
        flags={
            "port": 0,
            "bootstrap": kafka_bootstrap,
            "alerts_topic": topics.alerts,
            "scores_topic": topics.scores,
            "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "scrape_interval_s": 1.0,
            "feedback": feedback,
            "poll_ms": 500,
        },
        environ={},
    )
    sessions = traffic(60, anomaly_rate=0.5, seed=22)
    anomalous = {s.session_id for s in sessions if s.label == 1}
    async with serving(serve_settings):
        console = Console(console_settings)
        await console.start()
        try:
            await wait_until(lambda: console.reader.state == "reading", 30, "the console reading")
            await produce(kafka_bootstrap, topics.input, messages(sessions))
            await wait_until(lambda: len(console.store) > 0, 90, "an alert in the console")
            async with chromium_page(tmp_path / "chromium", log=tmp_path / "chromium.log") as page:
                await _check_page(page, console, anomalous, feedback)
        finally:
            await console.stop()


async def _check_page(page: Page, console: Console, anomalous: set[str], feedback: Path) -> None:
    await page.goto(console.url)
    # The live table and a group show the alert; its session id is one that was produced.
    sid = await page.wait_for(
        "document.querySelector('#live-body tr.alert-row')?.dataset.session",
        30,
        "an alert row in the live table",
    )
    assert sid in {a.session_id for a in console.store.alerts()}
    assert any(a.session_id in anomalous for a in console.store.alerts()), (
        "alerts on labelled sessions"
    )
    groups = await page.evaluate("document.querySelectorAll('#groups .group').length")
    assert groups >= 1
    row = await page.evaluate(
        f"document.querySelector('#live-body tr[data-session={json.dumps(sid)}]').textContent"
    )
    # The session may have more than one alerted window; the row is one of them.
    alerts = console.store.session_alerts(sid)
    alert = next(a for a in alerts if f"{a.score:.2f} / {a.threshold:.2f}" in row)
    assert alert.model_version in row

    # The session view: the window's events in order, the surprising ones with expectations.
    await page.goto(console.url + "#session=" + sid)
    window = f"#session-body .window[data-window='{alert.window_index}']"
    events = await page.wait_for(
        f'Array.from(document.querySelectorAll("{window} .event:not(.end)"))'
        ".map(e => e.dataset.event)",
        30,
        f"the session view of {sid}",
    )
    assert events == list(alert.events)
    title = await page.evaluate("document.getElementById('session-title').textContent")
    assert title == sid
    surprising = await page.evaluate(
        f'Array.from(document.querySelectorAll("{window} .event.surprising:not(.end)"))'
        ".map(e => Number(e.dataset.position))"
    )
    assert sorted(surprising) == sorted(
        s.position for s in alert.surprising if s.position < len(alert.events)
    )
    dom = await page.dom()
    top = max(alert.surprising, key=lambda s: s.nll)
    assert f"expected: {top.expected[0].event_id}" in dom

    # An event a rule scored (an unknown event, say) is shown with the rule's words.
    ruled = [a for a in console.store.alerts() if any(s.reason_text for s in a.surprising)]
    assert ruled, "an alert with a rule-scored event (the traffic has unknown events)"
    reason = next(s.reason_text for s in ruled[0].surprising if s.reason_text)
    await page.goto(console.url + "#session=" + ruled[0].session_id)
    shown = await page.wait_for(
        'Array.from(document.querySelectorAll("#session-body .reason")).map(e => e.textContent)',
        30,
        f"the rule named in the session view of {ruled[0].session_id}",
    )
    assert f"scored by a rule: {reason}" in shown

    # Confirm anomalous: a verdict line in the feedback file.
    await page.evaluate("document.getElementById('session-anomalous').click()")
    await wait_until(lambda: feedback.is_file() and feedback.stat().st_size > 0, 10, "a verdict")
    (verdict,) = read_feedback(feedback)
    assert (verdict.session_id, verdict.verdict) == (sid, "anomalous")

    # Acknowledge the first group: it leaves the open groups.
    key = await page.evaluate("document.querySelector('#groups .group').dataset.key")
    await page.evaluate("document.querySelector('#groups .group button.ack').click()")
    await page.wait_for(
        f"!document.querySelector('#groups .group[data-key=\"{key}\"]')"
        f" && !!document.querySelector('#acked-groups .group[data-key=\"{key}\"]')",
        10,
        "the acknowledged group hidden",
    )
    # The pipeline panel scraped serve's /metrics: the model serving is named.
    await page.wait_for(
        f"document.getElementById('model').textContent.includes({json.dumps(alert.model_version)})"
        " && document.getElementById('pipeline-stats').textContent.includes('events/s')",
        15,
        "the pipeline panel with the model version",
    )


async def test_console_waits_for_serves_topics_and_never_creates_them(
    kafka_bootstrap: str, topic_name: str, create_topic: CreateTopic
) -> None:
    alerts, scores = f"{topic_name}.alerts", f"{topic_name}.scores"
    settings = build_settings(
        ConsoleSettings,
        flags={
            "port": 0,
            "bootstrap": kafka_bootstrap,
            "alerts_topic": alerts,
            "scores_topic": scores,
        },
        environ={},
    )
    console = Console(settings)
    await console.start()
    try:
        await wait_until(lambda: console.reader.state == "waiting", 20, "the console waiting")
        await asyncio.sleep(3)  # a few more looks at the topics
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            states = await KafkaTopicAdmin(admin).states([alerts, scores])
        finally:
            await admin.close()
        assert {s.status for s in states.values()} == {"missing"}  # the broker auto-creates
        assert console.reader.waiting_for == [alerts, scores]
        await create_topic(alerts, 3)
        await create_topic(scores, 2)
        await wait_until(lambda: console.reader.state == "reading", 20, "the console reading")
        assert console.reader.partitions == {alerts: 3, scores: 2}
    finally:
        await console.stop()
