"""Fixtures for integration tests: one real Kafka broker for the whole test session.

Every test in tests/integration is marked `integration` automatically.

Fixtures for test authors:
- `kafka_bootstrap` (session): "127.0.0.1:PORT" of a broker started by `stream.devtools.broker` on a
  free port with a temporary data dir, stopped at session end. Topics are auto-created with
  one partition; use `create_topic` for more. A broker that cannot start fails the session's
  tests (it never skips them).
- `topic_name`: a fresh, unique topic name per test.
- `create_topic`: an async function `await create_topic(name, partitions=1) -> name` that
  creates the topic and returns once every partition has a leader.
- `bundle` (session): a tiny trained model bundle for the serve and replay tests
  (`serve_support.tiny_bundle`), trained once per session.
- `fault_counts`: the `FaultCounts` of a test of the fault suite (fault_report.py): what it
  fills in is printed at the end of the session and written to build/fault-suite.json.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fault_report import RESULTS, FaultCounts, summary
from serve_support import CreateTopic, MakeTopics, Topics, create_topics, tiny_bundle

from stream.devtools import broker

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def fault_counts(request: pytest.FixtureRequest) -> Iterator[FaultCounts]:
    counts = FaultCounts(request.node.nodeid)
    start = time.monotonic()
    yield counts
    counts.seconds = time.monotonic() - start
    RESULTS.append(counts)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    summary(terminalreporter)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of the session's broker (raises if it cannot start)."""
    data_dir = tmp_path_factory.mktemp("kafka")

    def stop() -> None:
        broker.stop(data_dir=data_dir)

    atexit.register(stop)  # also at interpreter exit, so an aborted session leaves no java
    info = broker.start(port=broker.free_port(), data_dir=data_dir, timeout_s=90.0)
    try:
        yield info.bootstrap
    finally:
        stop()
        atexit.unregister(stop)


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test run: test-<test name>-<random hex>."""
    base = re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:100]
    return f"test-{base}-{uuid.uuid4().hex[:8]}"


async def create_topic_on(
    bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> str:
    """Create `name` with `partitions` partitions (replication 1) and topic `configs`, and
    wait for its leaders."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topic = NewTopic(name, partitions, replication_factor=1, topic_configs=configs or {})
        resp = await admin.create_topics([topic])
        for err in resp.to_object()["topic_errors"]:
            if err["error_code"] != 0:
                raise RuntimeError(f"cannot create topic {name}: {err['error_message']}")
        for _ in range(100):
            (desc,) = await admin.describe_topics([name])
            parts = desc.get("partitions", [])
            led = len(parts) == partitions and all(p["leader"] >= 0 for p in parts)
            if desc["error_code"] == 0 and led:
                return name
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {name} has no leader for every partition after 10 s")
    finally:
        await admin.close()


@pytest.fixture
def create_topic(kafka_bootstrap: str) -> CreateTopic:
    """`await create_topic(name, partitions=1, configs=None)` on the session broker; returns
    the name."""

    async def create(name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        return await create_topic_on(kafka_bootstrap, name, partitions, configs)

    return create


@pytest.fixture
def serve_topics(topic_name: str, create_topic: CreateTopic) -> MakeTopics:
    """`await serve_topics(partitions)`: serve's input topic (with `partitions`) and its
    scores, alerts and dead-letter topics, named for this test and created."""

    async def make(partitions: int) -> Topics:
        topics = Topics.for_test(topic_name)
        await create_topics(create_topic, topics, partitions)
        return topics

    return make


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.getbasetemp() / "serve-tiny")


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back after a test that configured logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
