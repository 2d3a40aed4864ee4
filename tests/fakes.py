"""Fakes shared by the tests: a model-free scorer, a Kafka producer and a consumer.

Each stands in for one port of the pipeline (the `Scorer` protocol, the producer's `send`,
the consumer's assignment/pause/commit) so the plumbing is tested without a broker or a
model. Tests import them from here; a test that needs a variant subclasses one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import TopicPartition

from schemas.scores import Expected, Score, SurprisingEvent
from schemas.windows import Window
from stream.serve.kafka_io import Headers


def bad_marker(w: Window) -> float:
    """1 for a window holding the event "BAD", else 0."""
    return 1.0 if "BAD" in w.events else 0.0


def event_count(w: Window) -> float:
    """The window's number of events: longer windows score higher."""
    return float(len(w.events))


class FakeScorer:
    """Scores each window by `rule`, anomalous above `threshold`; records the batch sizes
    it was asked to score and the threads it ran on."""

    def __init__(
        self,
        version: str = "fake",
        *,
        threshold: float = 0.5,
        rule: Callable[[Window], float] = bad_marker,
    ) -> None:
        self.model_version = version
        self.threshold = threshold
        self.rule = rule
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        self.calls.append(len(windows))
        self.threads.add(threading.current_thread().name)
        out = []
        for w in windows:
            score = self.rule(w)
            out.append(
                Score(
                    window_id=w.window_id,
                    session_id=w.session_id,
                    window_index=w.index,
                    model_version=self.model_version,
                    score=score,
                    threshold=self.threshold,
                    anomalous=score > self.threshold,
                    n_events=len(w.events),
                    first_ts=w.first_ts,
                    last_ts=w.last_ts,
                    scored_at=now_ms,
                    late=w.late,
                    label=w.label,
                )
            )
        return out


class FakeProducer:
    """Records what is sent (JSON decoded where it is JSON); sends to `fail_topic` fail."""

    def __init__(self, fail_topic: str | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, Any]] = []
        self.fail_topic = fail_topic
        self.headers: list[Headers | None] = []

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.fail_topic:
            fut.set_exception(RuntimeError("broker said no"))
        else:
            assert value is not None
            try:
                self.sent.append((topic, key, orjson.loads(value)))
            except orjson.JSONDecodeError:
                self.sent.append((topic, key, value))  # a dead letter's raw bytes
            self.headers.append(headers)
            fut.set_result(None)
        return fut


class FakeConsumer:
    """The consumer calls the serve loop makes besides polling: assignment, pause and
    resume, high-water marks, commits (recorded)."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.paused_tps: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, tuple[int, str]]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    async def commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> None:
        self.commits.append(offsets)


class SurprisedScorer(FakeScorer):
    """Flags a window holding an event outside `known`, naming those events as surprising."""

    def __init__(self, known: frozenset[str]) -> None:
        super().__init__("v1", rule=lambda w: float(any(e not in known for e in w.events)))
        self.known = known
        self.windows: list[Window] = []

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        self.windows += windows
        out = []
        for w, s in zip(windows, super().score_windows(windows, now_ms), strict=True):
            odd = tuple(
                SurprisingEvent(i, e, 9.0, (Expected("T1", 0.9),))
                for i, e in enumerate(w.events)
                if e not in self.known
            )
            out.append(dataclasses.replace(s, surprising=odd))
        return out
