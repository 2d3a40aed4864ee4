"""serve's topics at start (docs/operations.md, "Topics").

The topics serve writes (scores, alerts, dead letters) are created when missing, with
`topic_partitions` and `topic_replication`, if `create_topics` allows it; otherwise a missing
one stops serve with one error line. The input topic is never created: while it does not
exist, serve says so once and asks for it every `input_topic_check_ms`, and subscribes once it
is there. Subscribed to a missing topic, aiokafka's consumer gets no partitions and asks again
only at its next metadata refresh (5 minutes): sessions produced meanwhile would wait
unscored, and nothing in the log would say why.

Every look is a metadata request with auto-creation off: on a broker with
auto.create.topics.enable, aiokafka's own `describe_topics` would create the input topic
itself, with the broker's default partition count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.metadata import MetadataRequest

from schemas.errors import ConfigError, LogadError
from stream.serve.kafka_io import make_admin
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import start_client
from stream.serve.metrics import Health
from stream.serve.settings import ServeSettings, TopicSettings

log = structlog.get_logger(__name__)

T = TypeVar("T")

_UNKNOWN_TOPIC = 3
_LEADER_NOT_AVAILABLE = 5  # at topic level: the topic is being created
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicState:
    """What the brokers say about a topic: `ready` (it exists, with `partitions`),
    `missing`, `pending` (being created, no partitions yet) or `error` (`error` says why:
    not authorized, ...)."""

    status: Literal["ready", "missing", "pending", "error"]
    partitions: int = 0
    error: str = ""


def broker_error(code: int, message: str | None = None) -> str:
    """A Kafka error code as one readable phrase (the broker's own message when it sent one)."""
    cls = for_code(code)
    return f"{cls.__name__}: {message or cls.description}"


def topic_states(
    topics: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> dict[str, TopicState]:
    """The state of each of `names` from a metadata response's `topics`.

    A topic with partitions is ready even when some lack a leader: the consumer waits for a
    leader as it does during any broker restart, and waiting here for all of them would let
    one offline partition keep serve from reading the others."""
    found = {t["topic"]: t for t in topics}
    out: dict[str, TopicState] = {}
    for name in names:
        t = found.get(name)
        code = _UNKNOWN_TOPIC if t is None else int(t["error_code"])
        if code == _UNKNOWN_TOPIC:
            out[name] = TopicState("missing")
        elif code == _LEADER_NOT_AVAILABLE:
            out[name] = TopicState("pending")
        elif code != 0:
            out[name] = TopicState("error", error=broker_error(code))
        else:
            assert t is not None
            n = len(t["partitions"])
            out[name] = TopicState("ready", n) if n else TopicState("pending")
    return out


def owned_topics(t: TopicSettings) -> dict[str, str]:
    """The topics serve writes, each with the setting that names it."""
    return {
        t.scores_topic: "scores_topic",
        t.alerts_topic: "alerts_topic",
        t.dlq_topic: "dlq_topic",
    }


class TopicAdmin(Protocol):
    async def states(self, names: Sequence[str]) -> dict[str, TopicState]: ...

    async def create(
        self, names: Sequence[str], partitions: int, replication: int
    ) -> dict[str, tuple[int, str | None]]:
        """Create `names`; each one's error code (0: created) and the broker's message."""
        ...


class KafkaTopicAdmin:
    """`TopicAdmin` on aiokafka's admin client."""

    def __init__(self, admin: AIOKafkaAdminClient) -> None:
        self._admin = admin

    async def states(self, names: Sequence[str]) -> dict[str, TopicState]:
        # Not `describe_topics`: it allows auto-creation (see the module doc).
        request = MetadataRequest(list(names), allow_auto_topic_creation=False)
        response = await self._admin._send_request(request)
        return topic_states(response.to_object()["topics"], names)

    async def create(
        self, names: Sequence[str], partitions: int, replication: int
    ) -> dict[str, tuple[int, str | None]]:
        response = await self._admin.create_topics(
            [NewTopic(n, partitions, replication) for n in names]
        )
        return {
            e["topic"]: (int(e["error_code"]), e.get("error_message"))
            for e in response.to_object()["topic_errors"]
        }


async def ensure_owned(admin: TopicAdmin, t: TopicSettings) -> None:
    """Create the owned topics that are missing, when allowed; a LogadError (ConfigError when
    `create_topics` is off) names every one that is missing and cannot be made."""
    owned = owned_topics(t)

    def named(names: Sequence[str]) -> str:
        return ", ".join(f"{n} ({owned[n]})" for n in names)

    states = await admin.states(list(owned))
    for name, state in states.items():
        if state.status == "error":
            raise LogadError(f"topic {named([name])}: {state.error}")
    missing = [n for n, s in states.items() if s.status == "missing"]
    if not missing:
        return
    if not t.create_topics:
        raise ConfigError(
            f"missing topic{'s' if len(missing) > 1 else ''} {named(missing)}: create "
            "them, or set create_topics = true for serve to create them"
        )
    results = await admin.create(missing, t.topic_partitions, t.topic_replication)
    # Already there: another replica starting at the same time created it.
    failed = {
        n: broker_error(code, message)
        for n, (code, message) in results.items()
        if code not in (0, _TOPIC_ALREADY_EXISTS)
    }
    if failed:
        why = "; ".join(f"{named([n])}: {e}" for n, e in failed.items())
        raise LogadError(
            f"cannot create topic {why} (create it, or check topic_partitions and "
            "topic_replication)"
        )
    created = [n for n, (code, _) in results.items() if code == 0]
    log.info(
        "topics_created",
        topics=created,
        partitions=t.topic_partitions,
        replication=t.topic_replication,
    )


async def wait_for_input(
    admin: TopicAdmin, t: TopicSettings, stop: asyncio.Event, health: Health
) -> bool:
    """Return once the input topic exists (True), or once `stop` is set (False). Ticks
    `health` at every check: a serve waiting for its input is alive, only not ready."""
    name, every_s = t.input_topic, t.input_topic_check_ms / 1000
    started = time.monotonic()
    warned = failing = False
    while not stop.is_set():
        health.tick()
        states: dict[str, TopicState] | None
        try:
            states = await _unless_stopped(admin.states([name]), stop)
        except KafkaError as e:  # the brokers away a while: kafka_logs reports the outage
            if not failing:
                log.warning("input_topic_check_failed", topic=name, error=str(e))
            failing = True
            states = {}
        else:
            failing = False
        if states is None:
            break
        state = states.get(name)
        if state is not None and state.status == "ready":
            if warned:
                waited = round(time.monotonic() - started, 1)
                log.info(
                    "input_topic_found", topic=name, partitions=state.partitions, waited_s=waited
                )
            return True
        if state is not None and state.status == "error":
            raise LogadError(f"input topic {name} (input_topic): {state.error}")
        if state is not None and state.status == "missing" and not warned:
            warned = True
            log.warning(
                "input_topic_missing",
                topic=name,
                check_ms=t.input_topic_check_ms,
                action="waiting for it to be created (serve does not create it); nothing is "
                "consumed until then",
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
    return False


async def _unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`await aw`, or None once `stop` is set first (a request to a broker that is away
    takes up to its request timeout)."""
    task = asyncio.ensure_future(aw)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def prepare_topics(settings: ServeSettings, stop: asyncio.Event, health: Health) -> bool:
    """The start-up checks (see the module doc), with an admin client connected as the
    others are; False when `stop` was set while waiting for the input topic."""
    client = make_admin(settings)
    watch_client(client)
    try:
        await start_client(client, settings.kafka, settings.kafka.bootstrap)
        admin = KafkaTopicAdmin(client)
        await ensure_owned(admin, settings.topics)
        return await wait_for_input(admin, settings.topics, stop, health)
    finally:
        await client.close()
