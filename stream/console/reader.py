"""Reads serve's alerts and scores topics into the store: with no consumer group (every
partition assigned, nothing committed, so any number of consoles may run and serve's group
never sees them), from `window_minutes` back (by the records' timestamps), then live.

Until both topics exist (a console started before serve) it waits, and says so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.errors import DecodeError, LogadError
from schemas.scores import Alert, Score
from stream.console.settings import ConsoleSettings
from stream.console.store import Store
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import client_options, start_client
from stream.serve.topics import KafkaTopicAdmin

log = structlog.get_logger(__name__)

_TOPIC_CHECK_S = 2.0
_EVICT_S = 1.0


def wall_ms() -> int:
    return int(time.time() * 1000)


class TopicReader:
    """`state` is what the page shows about the reading: connecting, waiting for topics,
    reading."""

    def __init__(
        self, settings: ConsoleSettings, store: Store, clock: Callable[[], int] = wall_ms
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.state = "connecting"
        self.waiting_for: list[str] = []
        self.partitions: dict[str, int] = {}

    @property
    def topics(self) -> tuple[str, str]:
        t = self.settings.topics
        return t.alerts_topic, t.scores_topic

    async def run(self) -> None:
        parts = await self._wait_for_topics()
        kafka = self.settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=kafka.client_id,
            auto_offset_reset="latest",
            # serve may publish in transactions (exactly_once): never show what it aborted.
            isolation_level="read_committed",
            **client_options(kafka),
        )
        watch_client(consumer)
        await start_client(consumer, kafka, kafka.bootstrap)
        try:
            tps = [TopicPartition(t, p) for t, ps in parts.items() for p in ps]
            consumer.assign(tps)
            await self._seek_back(consumer, tps)
            self.state = "reading"
            log.info("console_reading", partitions={t: len(p) for t, p in parts.items()})
            await self._follow(consumer)
        finally:
            await consumer.stop()

    async def _wait_for_topics(self) -> dict[str, list[int]]:
        """Each topic's partitions, once both exist. Asked with auto-creation off (serve's
        `KafkaTopicAdmin`): the console must never create serve's topics itself."""
        kafka = self.settings.kafka
        admin = AIOKafkaAdminClient(
            bootstrap_servers=kafka.bootstrap, client_id=kafka.client_id, **client_options(kafka)
        )
        await start_client(admin, kafka, kafka.bootstrap)
        try:
            while True:
                states = await KafkaTopicAdmin(admin).states(list(self.topics))
                if failed := {t: s.error for t, s in states.items() if s.status == "error"}:
                    raise LogadError(
                        f"cannot read {', '.join(f'{t} ({e})' for t, e in failed.items())}"
                    )
                missing = [t for t, s in states.items() if s.status != "ready"]
                if not missing:
                    self.waiting_for = []
                    self.partitions = {t: s.partitions for t, s in states.items()}
                    return {t: list(range(s.partitions)) for t, s in states.items()}
                if self.state != "waiting":
                    log.info("console_waiting_for_topics", missing=missing)
                self.state = "waiting"
                self.waiting_for = missing
                await asyncio.sleep(_TOPIC_CHECK_S)
        finally:
            await admin.close()

    async def _seek_back(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        since = self.clock() - self.settings.window_ms
        found = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            at = found.get(tp)
            consumer.seek(tp, at.offset if at is not None else ends[tp])

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        alerts_topic = self.settings.topics.alerts_topic
        last_evict = 0.0
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
            for tp, records in batch.items():
                for r in records:
                    if r.value is not None:
                        self.take(r.value, alert=tp.topic == alerts_topic)
            now = time.monotonic()
            if now - last_evict >= _EVICT_S:
                self.store.evict(self.clock())
                last_evict = now

    def take(self, value: bytes, *, alert: bool) -> None:
        """One record's value into the store (an undecodable one is counted, not kept)."""
        try:
            if alert:
                self.store.add_alert(Alert.decode(value))
            else:
                self.store.add_score(Score.decode(value))
        except DecodeError as e:
            self.store.undecodable += 1
            if self.store.undecodable == 1:
                log.warning("console_undecodable_record", alert=alert, error=str(e))
