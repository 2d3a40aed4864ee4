"""serve's topic checks at start (stream/serve/topics.py) against a fake admin: which topics
are created, the errors that stop serve, and the wait for the input topic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from schemas.errors import ConfigError, LogadError
from schemas.runtime.settings import build_settings
from stream.serve.metrics import Health
from stream.serve.settings import ServeSettings, TopicSettings
from stream.serve.topics import TopicState, ensure_owned, topic_states, wait_for_input

READY, MISSING = TopicState("ready", 1), TopicState("missing")
OWNED = ["logad.scores", "logad.alerts", "logad.events.dlq"]


@pytest.fixture(autouse=True)
def _every_level() -> Iterator[None]:
    """capture_logs sees info lines only if no earlier test left a level filter configured."""
    before = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**before)


class FakeAdmin:
    """Answers each look from `answers` (a topic's last answer repeats); `create` answers
    with `created` codes (0 by default) and records its calls."""

    def __init__(
        self,
        answers: dict[str, list[TopicState | Exception]],
        created: dict[str, tuple[int, str | None]] | None = None,
    ) -> None:
        self.answers = answers
        self.created = created or {}
        self.looks = 0
        self.creates: list[tuple[list[str], int, int]] = []

    async def states(self, names: Sequence[str]) -> dict[str, TopicState]:
        self.looks += 1
        out = {}
        for n in names:
            queue = self.answers.get(n, [READY])
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, Exception):
                raise answer
            out[n] = answer
        return out

    async def create(
        self, names: Sequence[str], partitions: int, replication: int
    ) -> dict[str, tuple[int, str | None]]:
        self.creates.append((list(names), partitions, replication))
        return {n: self.created.get(n, (0, None)) for n in names}


class CountingHealth(Health):
    ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        super().tick()


def _partition(leader: int) -> dict[str, Any]:
    return {"error_code": 0, "partition": 0, "leader": leader, "replicas": [1], "isr": [1]}


def test_topic_states_from_metadata() -> None:
    topics = [
        {"error_code": 0, "topic": "a", "partitions": [_partition(1), _partition(2)]},
        {"error_code": 3, "topic": "b", "partitions": []},
        {"error_code": 5, "topic": "c", "partitions": []},
        {"error_code": 29, "topic": "d", "partitions": []},
        {"error_code": 0, "topic": "e", "partitions": [_partition(-1), _partition(1)]},
        {"error_code": 0, "topic": "f", "partitions": []},
    ]
    states = topic_states(topics, ["a", "b", "c", "d", "e", "f", "g"])
    assert states["a"] == TopicState("ready", 2)
    assert states["b"] == states["g"] == MISSING
    assert states["c"] == states["f"] == TopicState("pending")
    assert states["d"].status == "error"
    assert states["d"].error.startswith("TopicAuthorizationFailedError: ")
    # A partition without a leader is the consumer's to wait for, not a reason to hold off.
    assert states["e"] == TopicState("ready", 2)


async def test_existing_owned_topics_are_left_alone() -> None:
    admin = FakeAdmin({})
    await ensure_owned(admin, TopicSettings())
    assert admin.creates == []


async def test_missing_owned_topics_are_created_with_the_settings() -> None:
    admin = FakeAdmin({"logad.alerts": [MISSING], "logad.events.dlq": [MISSING]})
    with capture_logs() as logs:
        await ensure_owned(admin, TopicSettings(topic_partitions=6, topic_replication=3))
    assert admin.creates == [(["logad.alerts", "logad.events.dlq"], 6, 3)]
    (line,) = [e for e in logs if e["event"] == "topics_created"]
    assert line["topics"] == ["logad.alerts", "logad.events.dlq"]


async def test_a_topic_another_replica_just_created_is_fine() -> None:
    admin = FakeAdmin(
        {t: [MISSING] for t in OWNED},
        created={"logad.alerts": (36, "Topic 'logad.alerts' already exists.")},
    )
    with capture_logs() as logs:
        await ensure_owned(admin, TopicSettings())
    (line,) = [e for e in logs if e["event"] == "topics_created"]
    assert line["topics"] == ["logad.scores", "logad.events.dlq"]


async def test_a_failed_creation_names_the_topic_and_the_broker_reason() -> None:
    admin = FakeAdmin(
        {"logad.scores": [MISSING]},
        created={"logad.scores": (38, "Replication factor: 3 larger than available brokers: 1.")},
    )
    with pytest.raises(LogadError) as e:
        await ensure_owned(admin, TopicSettings(topic_replication=3))
    text = str(e.value)
    assert "logad.scores (scores_topic)" in text and "larger than available brokers" in text
    assert "InvalidReplicationFactorError" in text and "topic_replication" in text


async def test_without_create_topics_a_missing_topic_is_a_config_error() -> None:
    admin = FakeAdmin({"logad.events.dlq": [MISSING]})
    with pytest.raises(ConfigError, match=r"logad\.events\.dlq \(dlq_topic\).*create_topics"):
        await ensure_owned(admin, TopicSettings(create_topics=False))
    assert admin.creates == []


async def test_an_owned_topic_serve_may_not_see_stops_serve() -> None:
    admin = FakeAdmin({"logad.alerts": [TopicState("error", error="TopicAuthorizationFailed")]})
    with pytest.raises(LogadError, match=r"logad\.alerts \(alerts_topic\): TopicAuthorization"):
        await ensure_owned(admin, TopicSettings())
    assert admin.creates == []


async def test_waits_for_the_input_topic_and_warns_once() -> None:
    answers: list[TopicState | Exception] = [MISSING] * 3 + [TopicState("pending"), READY]
    admin = FakeAdmin({"logad.events": answers})
    health = CountingHealth()
    with capture_logs() as logs:
        found = await wait_for_input(
            admin, TopicSettings(input_topic_check_ms=1), asyncio.Event(), health
        )
    assert found and admin.looks == 5
    assert health.ticks == 5, "alive while waiting"
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [("input_topic_missing", "warning"), ("input_topic_found", "info")]
    assert logs[0]["topic"] == "logad.events"


async def test_an_input_topic_already_there_says_nothing() -> None:
    with capture_logs() as logs:
        assert await wait_for_input(FakeAdmin({}), TopicSettings(), asyncio.Event(), Health())
    assert logs == []


async def test_a_failed_check_is_retried() -> None:
    answers: list[TopicState | Exception] = [KafkaConnectionError("away")] * 2 + [READY]
    with capture_logs() as logs:
        found = await wait_for_input(
            FakeAdmin({"logad.events": answers}),
            TopicSettings(input_topic_check_ms=1),
            asyncio.Event(),
            Health(),
        )
    assert found
    assert [e["event"] for e in logs] == ["input_topic_check_failed"]


async def test_stop_ends_the_wait() -> None:
    stop = asyncio.Event()
    admin = FakeAdmin({"logad.events": [MISSING]})
    waiting = asyncio.create_task(
        wait_for_input(admin, TopicSettings(input_topic_check_ms=10_000), stop, Health())
    )
    await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) is False


async def test_stop_ends_a_check_in_flight() -> None:
    class Hanging(FakeAdmin):
        async def states(self, names: Sequence[str]) -> dict[str, TopicState]:
            await asyncio.Event().wait()  # a broker that never answers
            raise AssertionError

    stop = asyncio.Event()
    waiting = asyncio.create_task(wait_for_input(Hanging({}), TopicSettings(), stop, Health()))
    await asyncio.sleep(0.05)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) is False


async def test_an_input_topic_serve_may_not_read_stops_serve() -> None:
    admin = FakeAdmin({"logad.events": [TopicState("error", error="TopicAuthorizationFailed")]})
    with pytest.raises(LogadError, match=r"input topic logad\.events \(input_topic\)"):
        await wait_for_input(admin, TopicSettings(), asyncio.Event(), Health())


def test_topic_settings_reach_serve() -> None:
    flags = {"model": "m", "create_topics": "false", "topic_partitions": "6"}
    s = build_settings(ServeSettings, flags=flags, environ={"LOGAD_TOPIC_REPLICATION": "3"})
    assert (s.topics.create_topics, s.topics.topic_partitions) == (False, 6)
    assert (s.topics.topic_replication, s.topics.input_topic_check_ms) == (3, 1_000)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"topic_partitions": 0}, "topic_partitions"),
        ({"topic_replication": 0}, "topic_replication"),
        ({"input_topic_check_ms": 0}, "input_topic_check_ms"),
        ({"input_topic_check_ms": 30_000}, "input_topic_check_ms must be below health_stale_s"),
    ],
)
def test_rejects_bad_topic_settings(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(ServeSettings, flags={"model": "m", **flags}, environ={})
