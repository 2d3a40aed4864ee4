"""ScoringWorker with a fake scorer and a fake producer: batching, publishing, acks, reload."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from schemas.scores import Score
from schemas.windows import Window
from stream.serve.batcher import Batcher
from stream.serve.kafka_io import Acks, Headers
from stream.serve.metrics import ServeMetrics
from stream.serve.worker import ScoringWorker, close_scorer
from tests.fakes import FakeProducer, FakeScorer


def win(i: int, events: tuple[str, ...] = ("A", "B")) -> Window:
    return Window.build(f"s{i}", 0, events, 1000 + i, 2000 + i, 0, i, i)


def make_worker(
    scorer: FakeScorer,
    producer: FakeProducer,
    wait_ms: int = 0,
    *,
    max_tokens: int = 4096,
    threads: tuple[int, int] | None = None,
) -> tuple[ScoringWorker, Acks, list[Window]]:
    acks = Acks()
    done: list[Window] = []
    worker = ScoringWorker(
        scorer,
        Batcher(max_tokens=max_tokens, max_wait_ms=wait_ms),
        producer.send,
        acks,
        scores_topic="scores",
        alerts_topic="alerts",
        on_done=done.append,
        metrics=ServeMetrics(),
        threads=threads,
    )
    return worker, acks, done


async def test_scores_every_window_and_alerts_anomalous_ones() -> None:
    scorer, producer = FakeScorer("v1"), FakeProducer()
    worker, acks, done = make_worker(scorer, producer, wait_ms=10_000)
    windows = [win(i, ("A", "BAD") if i % 3 == 0 else ("A", "B")) for i in range(10)]
    worker.submit(windows, now_ms=0)
    assert worker.backlog == 10
    worker.stop()
    await worker.run()
    await acks.wait_until(lambda: worker.backlog == 0)
    scores = [v for t, _k, v in producer.sent if t == "scores"]
    alerts = [v for t, _k, v in producer.sent if t == "alerts"]
    assert sorted(s["window_id"] for s in scores) == sorted(w.window_id for w in windows)
    assert sorted(a["session_id"] for a in alerts) == ["s0", "s3", "s6", "s9"]
    assert all(a["events"] == ["A", "BAD"] for a in alerts)
    assert all(k == v["session_id"].encode() for _t, k, v in producer.sent)
    assert sorted(w.session_id for w in done) == sorted(w.session_id for w in windows)
    assert scorer.threads and all(t.startswith("logad-score") for t in scorer.threads)


async def test_model_switch_happens_between_batches() -> None:
    old, new, producer = FakeScorer("v1"), FakeScorer("v2"), FakeProducer()
    worker, acks, _done = make_worker(old, producer)
    task = asyncio.create_task(worker.run())
    worker.submit([win(1)], now_ms=0)
    await acks.wait_until(lambda: worker.backlog == 0)
    worker.offer(new)
    worker.submit([win(2), win(3)], now_ms=0)
    worker.stop()
    await task
    versions = {v["session_id"]: v["model_version"] for t, _k, v in producer.sent}
    assert versions == {"s1": "v1", "s2": "v2", "s3": "v2"}
    assert worker.scorer is new


async def test_an_idle_worker_switches_to_an_offered_model_at_once() -> None:
    events: list[str] = []
    old, new = ClosingScorer("v1", events), ClosingScorer("v2", events)
    worker, _acks, _done = make_worker(old, FakeProducer())
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.05)
    worker.offer(new)  # no traffic: nothing is in flight, so nothing waits for the switch
    for _ in range(100):
        if worker.scorer is new:
            break
        await asyncio.sleep(0.01)
    assert worker.scorer is new
    worker.stop()
    await task
    for scorer in worker.scorers():  # as serve does on shutdown
        close_scorer(scorer)
    assert "v1 closed" in events and "v2 closed" in events
    assert not [e for e in events if "scor" in e]


async def test_failed_send_surfaces_and_windows_stay_unfinished() -> None:
    scorer, producer = FakeScorer("v1"), FakeProducer(fail_topic="scores")
    worker, acks, done = make_worker(scorer, producer)
    worker.submit([win(1)], now_ms=0)
    worker.stop()
    await worker.run()
    with pytest.raises(RuntimeError, match="broker said no"):
        await acks.wait_until(lambda: worker.backlog == 0)
    assert done == []
    assert worker.backlog == 1


async def test_loop_stays_responsive_while_the_model_runs() -> None:
    gate = threading.Event()

    class SlowScorer(FakeScorer):
        def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
            gate.wait(5)
            return super().score_windows(windows, now_ms)

    producer = FakeProducer()
    worker, acks, _ = make_worker(SlowScorer("v1"), producer)
    task = asyncio.create_task(worker.run())
    worker.submit([win(1)], now_ms=0)
    ticks = 0
    for _ in range(5):  # the loop runs while the scorer blocks its thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and producer.sent == []
    gate.set()
    await acks.wait_until(lambda: worker.backlog == 0)
    worker.stop()
    await task
    assert len(producer.sent) == 1


class GatedProducer(FakeProducer):
    """Sends block until `gate` is set: publishing the first batch takes as long as we like."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> asyncio.Future[Any]:
        await self.gate.wait()
        return await super().send(topic, key, value, headers)


async def test_next_batch_is_scored_while_the_last_one_is_published() -> None:
    scorer, producer = FakeScorer("v1"), GatedProducer()
    scored: list[str] = []
    real = scorer.score_windows

    def recording(windows: Sequence[Window], now_ms: int) -> list[Score]:
        scored.extend(w.session_id for w in windows)
        return real(windows, now_ms)

    scorer.score_windows = recording  # type: ignore[method-assign]
    # One 300-event window per batch.
    worker, acks, _ = make_worker(scorer, producer, max_tokens=512)
    task = asyncio.create_task(worker.run())
    worker.submit([win(i, ("A",) * 300) for i in range(4)], now_ms=0)
    async with asyncio.timeout(10):
        while len(scored) < 2:  # a second batch scored while the first waits to be sent
            await asyncio.sleep(0.01)
    assert producer.sent == []
    producer.gate.set()
    worker.stop()
    await task
    await acks.wait_until(lambda: worker.backlog == 0)
    assert [v["session_id"] for _t, _k, v in producer.sent] == ["s0", "s1", "s2", "s3"]


class ClosingScorer(FakeScorer):
    """Records, in order, each batch it scores and when it is closed; scoring waits for
    `release` when one is given."""

    def __init__(self, version: str, events: list[str], release: threading.Event | None = None):
        super().__init__(version)
        self.events = events
        self.release = release

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        self.events.append(f"{self.model_version} scoring {len(windows)}")
        if self.release is not None:
            assert self.release.wait(10)
        self.events.append(f"{self.model_version} scored {len(windows)}")
        return super().score_windows(windows, now_ms)

    def close(self) -> None:
        self.events.append(f"{self.model_version} closed")


async def test_a_replaced_scorer_is_closed_after_the_batch_it_is_scoring() -> None:
    events: list[str] = []
    release = threading.Event()
    old = ClosingScorer("v1", events, release)
    never_used, new = ClosingScorer("v0", events), ClosingScorer("v2", events)
    worker, acks, _done = make_worker(old, FakeProducer())
    task = asyncio.create_task(worker.run())
    worker.submit([win(1)], now_ms=0)
    for _ in range(1000):
        if "v1 scoring 1" in events:
            break
        await asyncio.sleep(0.01)
    worker.offer(never_used)
    worker.offer(new)  # replaces the offer never switched to, which is closed
    worker.submit([win(2), win(3)], now_ms=0)  # started with v2 while v1 still scores
    await asyncio.sleep(0.05)
    release.set()
    worker.stop()
    await task
    await acks.wait_until(lambda: worker.backlog == 0)
    assert events.index("v1 scored 1") < events.index("v1 closed")
    assert events.index("v0 closed") < events.index("v2 scoring 2")
    assert "v0 scoring 1" not in events and "v2 closed" not in events
    assert worker.scorers() == [new]  # what serve closes on shutdown


class ThreadCountingScorer(FakeScorer):
    def __init__(self, version: str) -> None:
        super().__init__(version)
        self.thread_counts: list[tuple[int, str]] = []

    def use_threads(self, n: int) -> None:
        self.thread_counts.append((n, threading.current_thread().name))


async def test_the_model_gets_more_threads_while_the_consume_loop_is_idle() -> None:
    scorer = ThreadCountingScorer("v1")
    worker, acks, _ = make_worker(scorer, FakeProducer(), threads=(1, 3))
    task = asyncio.create_task(worker.run())
    worker.submit([win(0)], now_ms=0)
    await acks.wait_until(lambda: worker.backlog == 0)
    worker.loop_idle = True
    worker.submit([win(1)], now_ms=0)
    worker.stop()
    await task
    assert [n for n, _ in scorer.thread_counts] == [1, 3]
    assert all(name.startswith("logad-score") for _, name in scorer.thread_counts)


class PoolScorer(ClosingScorer):
    """Like a pool of two model processes: the worker may score two batches at once. The
    first two batches it gets each wait for the other (a barrier), so scoring them one
    after the other fails; then session s0's batch takes longer, to finish last."""

    parallel = 2

    def __init__(self, version: str, events: list[str]) -> None:
        super().__init__(version, events)
        self.barrier = threading.Barrier(2, timeout=10)
        self.n_calls = 0
        self.lock = threading.Lock()

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        with self.lock:
            self.n_calls += 1
            call = self.n_calls
        if call <= 2:
            self.barrier.wait()
            if windows[0].session_id == "s0":
                time.sleep(0.2)
        return super().score_windows(windows, now_ms)


async def test_a_pool_scores_batches_side_by_side_and_publishes_them_in_order() -> None:
    events: list[str] = []
    pool, producer = PoolScorer("v1", events), FakeProducer()
    worker, acks, done = make_worker(pool, producer, max_tokens=512)  # one window per batch
    task = asyncio.create_task(worker.run())
    worker.submit([win(i, ("A",) * 300) for i in range(4)], now_ms=0)
    worker.stop()
    await task
    await acks.wait_until(lambda: worker.backlog == 0)
    assert [v["session_id"] for _t, _k, v in producer.sent] == ["s0", "s1", "s2", "s3"]
    assert [w.session_id for w in done] == ["s0", "s1", "s2", "s3"]


async def test_a_replaced_pool_is_closed_after_every_batch_it_is_scoring() -> None:
    events: list[str] = []
    old, new = PoolScorer("v1", events), ClosingScorer("v2", events)
    worker, acks, _done = make_worker(old, FakeProducer(), max_tokens=512)
    task = asyncio.create_task(worker.run())
    worker.submit([win(i, ("A",) * 300) for i in range(2)], now_ms=0)
    for _ in range(1000):
        if events.count("v1 scoring 1") == 2:
            break
        await asyncio.sleep(0.01)
    worker.offer(new)
    worker.submit([win(2, ("A",) * 300)], now_ms=0)
    worker.stop()
    await task
    await acks.wait_until(lambda: worker.backlog == 0)
    last_scored = max(i for i, e in enumerate(events) if e == "v1 scored 1")
    assert events.count("v1 scored 1") == 2 and events.index("v1 closed") > last_scored
    assert "v2 scored 1" in events and worker.scorers() == [new]
