"""Kafka security end to end: a second real broker with a SASL_SSL listener (SCRAM-SHA-512
login over TLS, certificates made here with openssl), serve through it, a wrong password as
one error line, and a broker outage under serve as a few log lines.

The broker's PLAINTEXT listener stays for its own readiness probe and the controller; every
client of the tests here uses the SASL_SSL one. Its keystore is PEM inline in
server.properties (the key unencrypted, as Kafka accepts it only inline), its truststore a
PEM file.
"""

from __future__ import annotations

import asyncio
import atexit
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fault_report import FaultCounts, duplicate_scores
from serve_support import Topics, messages, settings_for, traffic

from schemas.bundle import BUNDLE_FILES, write_manifest
from schemas.runtime.logs import configure_logging
from schemas.runtime.settings import build_settings
from schemas.scores import Score
from stream.cli import main
from stream.devtools import broker
from stream.devtools.broker_config import Listener
from stream.serve import app
from stream.serve.app import serve
from stream.serve.kafka_logs import kafka_log_filter
from stream.serve.kafka_security import client_options
from stream.serve.settings import KafkaSettings, ServeSettings
from tests.fakes import FakeScorer, event_count
from tests.tls import Pki, make_pki

USER, PASSWORD = "alice", "alice-pw-7f3a"
_LISTENER = "listener.name.sasl_ssl."


@dataclass(frozen=True)
class SecureBroker:
    data_dir: Path
    port: int
    """The PLAINTEXT port (the broker's own probe)."""
    sasl_port: int
    extra: dict[str, str]
    pki: Pki
    password_file: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def security(self, password_file: Path | None = None) -> dict[str, Any]:
        """serve's flags for the SASL_SSL listener."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": USER,
            "sasl_password": f"file:{password_file or self.password_file}",
            "ssl_cafile": str(self.pki.ca),
        }

    def kafka(self) -> KafkaSettings:
        """The tests' own clients' connection (the same settings as serve's)."""
        flags = {"model": "m", "bootstrap": self.bootstrap, **self.security()}
        s: ServeSettings = build_settings(ServeSettings, flags=flags, environ={})
        return s.kafka

    def start(self) -> None:
        broker.start(
            self.port,
            self.data_dir,
            timeout_s=90.0,
            listeners=[Listener("SASL_SSL", self.sasl_port, "SASL_SSL")],
            extra=self.extra,
            scram_users=[f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"],
        )

    def stop(self) -> None:
        broker.stop(data_dir=self.data_dir)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    root = tmp_path_factory.mktemp("secure-kafka")
    pki = make_pki(root / "pki")
    password_file = root / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    extra = {
        _LISTENER + "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        _LISTENER + "scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        _LISTENER + "ssl.keystore.type": "PEM",
        _LISTENER + "ssl.keystore.key": pki.key.read_text(),
        _LISTENER + "ssl.keystore.certificate.chain": pki.cert.read_text() + pki.ca.read_text(),
        _LISTENER + "ssl.truststore.type": "PEM",
        _LISTENER + "ssl.truststore.location": str(pki.ca),
    }
    b = SecureBroker(
        root / "broker", broker.free_port(), broker.free_port(), extra, pki, password_file
    )
    atexit.register(b.stop)  # also at interpreter exit, so an aborted session leaves no java
    b.start()
    try:
        yield b
    finally:
        b.stop()
        atexit.unregister(b.stop)


def fake_bundle(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        (path / name).write_bytes(name.encode())
    write_manifest(path, "v-fake", None, None)
    return path


async def _create(kafka: KafkaSettings, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **client_options(kafka))
    await admin.start()
    try:
        names = [topics.input, topics.scores, topics.alerts, topics.dlq]
        await admin.create_topics([NewTopic(n, 1, replication_factor=1) for n in names])
    finally:
        await admin.close()


async def _produce(kafka: KafkaSettings, topic: str, msgs: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **client_options(kafka))
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value=v, key=k) for k, v in msgs])
    finally:
        await producer.stop()


async def _scored(kafka: KafkaSettings, topic: str, sessions: set[str]) -> list[Score]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        auto_offset_reset="earliest",
        **client_options(kafka),
    )
    await consumer.start()
    scores: list[Score] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while {s.session_id for s in scores} < sessions and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                scores += [Score.decode(r.value) for r in recs if r.value is not None]
    finally:
        await consumer.stop()
    return scores


async def _count(kafka: KafkaSettings, topic: str, seconds: float = 2.0) -> int:
    """The records in `topic`, read from the start for `seconds`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, auto_offset_reset="earliest",
        **client_options(kafka),
    )  # fmt: skip
    await consumer.start()
    try:
        n, deadline = 0, asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            n += sum(map(len, (await consumer.getmany(timeout_ms=200)).values()))
    finally:
        await consumer.stop()
    return n


class _Serving:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Serving:
        ready = asyncio.Event()
        load = lambda _bundle: FakeScorer(rule=event_count)  # noqa: E731
        self.task = asyncio.create_task(serve(self.settings, self.stop, load, ready=ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({self.task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task.done():
            self.task.result()
        assert ready.is_set(), "serve was not ready within 60 s"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


def _serve_settings(b: SecureBroker, topics: Topics, model: Path, **more: Any) -> ServeSettings:
    return settings_for(b.bootstrap, topics, model, **b.security(), **more)


async def test_serve_round_trips_through_sasl_ssl(
    secure_broker: SecureBroker, topic_name: str, tmp_path: Path
) -> None:
    topics = Topics.for_test(topic_name)
    kafka = secure_broker.kafka()
    await _create(kafka, topics)
    sessions = traffic(20, 0.0, seed=5)
    settings = _serve_settings(secure_broker, topics, fake_bundle(tmp_path / "bundle"))
    assert settings.kafka.sasl_password is not None
    async with _Serving(settings):
        await _produce(kafka, topics.input, messages(sessions))
        scores = await _scored(kafka, topics.scores, {s.session_id for s in sessions})
    assert {s.session_id for s in scores} == {s.session_id for s in sessions}
    assert sum(s.n_events for s in scores) == sum(len(s.events) for s in sessions)


@pytest.mark.usefixtures("_restore_logging")
def test_a_wrong_password_is_one_error_line_and_exit_2(
    secure_broker: SecureBroker,
    topic_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-" + PASSWORD)
    # No model to load: the Kafka login is what is tested.
    monkeypatch.setattr(app, "load_scorer", lambda s: lambda bundle: FakeScorer())
    flags = secure_broker.security(wrong)
    argv = ["--log-level", "error", "serve", "--model", str(fake_bundle(tmp_path / "b"))]
    argv += ["--bootstrap", secure_broker.bootstrap, "--input-topic", topic_name]
    argv += ["--metrics-port", "0"]
    for name, value in flags.items():
        argv += ["--" + name.replace("_", "-"), value]
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"logad: error: Kafka at {secure_broker.bootstrap}: ")
    assert "SaslAuthenticationFailed" in lines[0] and "sasl_password" in lines[0]
    assert PASSWORD not in captured.err + captured.out


async def _until_logged(
    capsys: pytest.CaptureFixture[str], seen: list[dict[str, Any]], event: str, timeout_s: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not any(line.get("event") == event for line in seen):
        assert loop.time() < deadline, f"no {event} within {timeout_s} s: {seen[-5:]}"
        await asyncio.sleep(0.2)
        text = capsys.readouterr().err
        seen += [orjson.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


@pytest.mark.fault
@pytest.mark.usefixtures("_restore_logging")
async def test_a_broker_outage_under_serve_is_a_few_log_lines(
    secure_broker: SecureBroker,
    topic_name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault_counts: FaultCounts,
) -> None:
    # Last in this module: it stops and restarts the module's broker.
    configure_logging("info", json=True)
    topics = Topics.for_test(topic_name)
    kafka = secure_broker.kafka()
    await _create(kafka, topics)
    settings = _serve_settings(secure_broker, topics, fake_bundle(tmp_path / "bundle"))
    # After the outage: event time now (serve dead-letters events dated past wall clock + skew).
    now_ms = int(time.time() * 1000) - 60_000
    before, after = traffic(5, 0.0, seed=6), traffic(5, 0.0, seed=7, start_ms=now_ms)
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    with kafka_log_filter(every_s=2.0, quiet_s=1.0):
        async with _Serving(settings):
            await _produce(kafka, topics.input, messages(before))
            await _scored(kafka, topics.scores, {s.session_id for s in before})
            down_at = loop.time()
            await asyncio.to_thread(secure_broker.stop)
            await _until_logged(capsys, seen, "kafka_unreachable", 30)
            await asyncio.sleep(5)  # an outage long enough for a few summaries
            await asyncio.to_thread(secure_broker.start)
            await _until_logged(capsys, seen, "kafka_reachable_again", 60)
            down_s = loop.time() - down_at
            await _produce(kafka, topics.input, messages(after))
            scored = await _scored(kafka, topics.scores, {s.session_id for s in before + after})
        seen += [orjson.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln[:1] == "{"]
    ids = {s.session_id for s in before + after}
    fault_counts.produced, fault_counts.scored = len(ids), len({s.session_id for s in scored})
    fault_counts.duplicates = duplicate_scores(scored)
    fault_counts.dead_lettered = await _count(kafka, topics.dlq)
    fault_counts.pytest_rss()
    assert {s.session_id for s in scored} == ids  # serve rode it out, nothing lost
    events = [line["event"] for line in seen]
    assert events.count("kafka_unreachable") == 1 and events.count("kafka_reachable_again") == 1
    summaries = [line for line in seen if line["event"] == "kafka_still_unreachable"]
    assert 1 <= len(summaries) <= down_s / 2 + 1
    held = sum(s["suppressed"] for s in summaries)
    raw = [line for line in seen if str(line.get("logger", "")).startswith("aiokafka")]
    # aiokafka's own lines: the first of each other kind of warning, no flood.
    assert len(raw) <= 10, raw
    assert held > len(raw)
