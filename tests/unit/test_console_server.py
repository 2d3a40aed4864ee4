"""The console's web app in this process (no Kafka: the store is filled by hand): the page
and its vendored chart library are served, the JSON endpoints answer, the buttons
acknowledge and write verdicts, and requests from elsewhere are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.errors import ConfigError
from schemas.feedback import read_feedback
from schemas.runtime.settings import build_settings
from stream.console.server import Console
from stream.console.settings import ConsoleSettings, is_loopback
from tests.unit.console_records import T0, alert, score

JSON = {"Content-Type": "application/json"}


def _console(tmp_path: Path, **flags: Any) -> Console:
    settings = build_settings(ConsoleSettings, flags={"port": 0, **flags}, environ={})
    console = Console(settings, clock=lambda: T0 + 60_000)
    for i in range(3):
        console.store.add_alert(alert(f"req-{i}", i * 10, [(2, "db.timeout", 19.0)]))
        console.store.add_score(score(f"req-{i}", i * 10, 19.0))
    console.store.add_alert(alert("req-9", 40, [(1, "eureka.empty", 20.0)]))
    return console


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    console = _console(tmp_path, feedback=tmp_path / "feedback.jsonl", ack_file=tmp_path / "acks")
    async with TestClient(TestServer(console.app(), host="127.0.0.1")) as c:
        yield c


async def test_page_and_vendored_chart_library_are_served(client: TestClient[Any, Any]) -> None:
    page = await client.get("/")
    assert page.status == 200
    html = await page.text()
    assert "/static/vendor/uPlot.iife.min.js" in html and "/static/console.js" in html
    lib = await client.get("/static/vendor/uPlot.iife.min.js")
    assert lib.status == 200 and (await lib.text()).startswith(
        "/*! https://github.com/leeoniya/uPlot"
    )
    assert (await client.get("/static/console.js")).status == 200


async def test_alerts_are_grouped_and_acknowledging_hides_the_group(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    view = await (await client.get("/api/alerts")).json()
    assert [g["alerts"] for g in view["groups"]] == [1, 3]  # eureka (newest), db.timeout
    key = view["groups"][1]["key"]
    r = await client.post("/api/ack", json={"key": key})
    assert r.status == 200 and (await r.json())["alerts"] == 3
    view = await (await client.get("/api/alerts")).json()
    assert [g["pattern"][0]["event_id"] for g in view["groups"]] == ["eureka.empty"]
    assert [g["key"] for g in view["acknowledged"]] == [key]
    assert '"pattern":["db.timeout"]' in (tmp_path / "acks").read_text()
    assert (await client.post("/api/ack", json={"key": "nope"})).status == 404


async def test_verdict_buttons_append_to_the_feedback_file(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    view = await (await client.get("/api/alerts")).json()
    db = next(g for g in view["groups"] if g["pattern"][0]["event_id"] == "db.timeout")
    r = await client.post("/api/verdict", json={"verdict": "normal", "key": db["key"]})
    assert (await r.json()) == {"verdict": "normal", "sessions": 3}
    r = await client.post("/api/verdict", json={"verdict": "anomalous", "session_id": "req-9"})
    assert r.status == 200
    lines = read_feedback(tmp_path / "feedback.jsonl")
    assert [(f.session_id, f.verdict) for f in lines] == [
        ("req-0", "normal"),
        ("req-1", "normal"),
        ("req-2", "normal"),
        ("req-9", "anomalous"),
    ]
    assert lines[0].by == "logad console" and lines[0].note == "pattern db.timeout"
    session = await (await client.get("/api/session", params={"id": "req-9"})).json()
    assert session["verdict"] == "anomalous" and session["windows"][0]["session_id"] == "req-9"
    bad = await client.post("/api/verdict", json={"verdict": "maybe", "session_id": "req-9"})
    assert bad.status == 400


async def test_without_a_feedback_file_verdicts_are_refused(tmp_path: Path) -> None:
    console = _console(tmp_path)
    async with TestClient(TestServer(console.app(), host="127.0.0.1")) as c:
        r = await c.post("/api/verdict", json={"verdict": "normal", "session_id": "req-1"})
        assert r.status == 409 and "--feedback" in (await r.json())["error"]
        status = await (await c.get("/api/status")).json()
        assert status["feedback"] is None and status["loopback"] is True
        scores = await (await c.get("/api/scores")).json()
        assert scores["scores"] == 3 and scores["anomalous"] == 3


async def test_requests_from_elsewhere_are_refused(client: TestClient[Any, Any]) -> None:
    rebound = await client.get("/api/alerts", headers={"Host": "attacker.example:8770"})
    assert rebound.status == 421
    form = await client.post(
        "/api/ack", data="key=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status == 403
    other_site = await client.post(
        "/api/ack", json={"key": "x"}, headers={"Origin": "http://attacker.example"}
    )
    assert other_site.status == 403


def test_loopback_names_and_a_bad_setting() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ConfigError, match="metrics_url"):
        build_settings(ConsoleSettings, flags={"metrics_url": "127.0.0.1:9108"}, environ={})
