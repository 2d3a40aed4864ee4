"""The scoring worker: batches windows, scores them off the event loop, publishes the results.

The model runs in dedicated threads (`run_in_executor`), so the asyncio loop keeps polling
Kafka while a batch is scored: one thread, or one per model process when the scorer is a
pool of them (its `parallel`), each batch scored by an idle process. One batch more than
that is queued, so the model does not wait for the publishing. Each batch's Scores
(and Alerts) are sent keyed by session id; when the broker has acknowledged all of them,
`on_done` is called for each window so its offsets may be committed. A new model offered by
hot reload replaces the old one between two batches, never within one. With a `ScoreCache`,
a window whose events were already scored by the same model version takes that output
instead of a model pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from schemas.scores import Alert, Score
from schemas.windows import Window
from stream.serve.batcher import Batch, Batcher
from stream.serve.kafka_io import Acks, Message, Send
from stream.serve.metrics import ServeMetrics
from stream.serve.score_cache import ScoreCache

log = structlog.get_logger(__name__)


class Scorer(Protocol):
    """What the worker needs of a model: trainer.scoring.WindowScorer, or a test fake."""

    @property
    def model_version(self) -> str: ...

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]: ...


def close_scorer(scorer: Scorer) -> None:
    """Release a scorer's resources (a model process stops); most scorers hold none."""
    close = getattr(scorer, "close", None)
    if close is not None:
        close()


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def parallelism(scorer: Scorer) -> int:
    """How many batches `scorer` can score at once (a pool of model processes says)."""
    return max(1, int(getattr(scorer, "parallel", 1)))


@dataclass(frozen=True)
class _InFlight:
    batch: Batch
    scorer: Scorer
    future: asyncio.Future[tuple[list[Score], float]]


class ScoringWorker:
    def __init__(
        self,
        scorer: Scorer,
        batcher: Batcher,
        send: Send,
        acks: Acks,
        *,
        scores_topic: str,
        alerts_topic: str,
        on_done: Callable[[Window], None],
        metrics: ServeMetrics,
        outbox: Callable[[Window, tuple[Message, ...]], None] | None = None,
        on_scored: Callable[[list[tuple[Window, Score]]], None] | None = None,
        cache: ScoreCache | None = None,
        threads: tuple[int, int] | None = None,
        annotate: Callable[[Score], Score] | None = None,
        judge: Callable[[list[Score]], list[Score]] | None = None,
    ) -> None:
        self.scorer = scorer
        self._batcher = batcher
        self._send = send
        self._acks = acks
        self._scores_topic = scores_topic
        self._alerts_topic = alerts_topic
        self._on_done = on_done
        self._metrics = metrics
        self._outbox = outbox
        """Exactly-once mode: results wait there for their transaction instead of being sent."""
        self._on_scored = on_scored
        """Called in the scoring thread with each batch's results, before they are sent
        (the daily archive); an exception there fails the worker like a scoring error."""
        self._cache = cache
        """Memo of model outputs by (model version, events); None scores every window."""
        self._threads = threads
        """CPU threads for the model while the consume loop is busy and while it is idle,
        set before each batch in the scoring thread (scorers with `use_threads` only);
        None leaves the scorer's as loaded."""
        self._annotate = annotate
        self._judge = judge
        """Re-judges each batch's scores in the scoring thread, before `on_scored` (serve's
        adaptive threshold); None keeps the scorer's verdicts."""
        """Applied to each Score before it is published, on the event loop (serve names
        new log templates in it)."""
        self.loop_idle = False
        """Set by the consume loop: its last poll brought nothing, so its core is free."""
        self._ready: deque[Batch] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._offered: Scorer | None = None
        self._retired: list[Scorer] = []
        self._parallel = parallelism(scorer)
        """Batches scored at once (one per model process; 1 for the model in a thread)."""
        self._executor = ThreadPoolExecutor(
            max_workers=self._parallel, thread_name_prefix="logad-score"
        )
        self._serial = threading.Lock()
        """Held by a scoring thread for what must not overlap: the re-judging, the archive."""
        self._uses: dict[int, int] = {}
        """Batches in flight per scorer (by id): a replaced one closes once it has none."""
        self._cache_reported = (0, 0)
        self.backlog = 0
        """Windows submitted and not yet acknowledged: batching, scoring or being sent."""
        metrics.set_model(scorer.model_version)

    def submit(self, windows: Sequence[Window], now_ms: int) -> None:
        """Queue windows for scoring (`now_ms` on the monotonic clock, for batch waits)."""
        for w in windows:
            self._ready.extend(self._batcher.add(w, now_ms))
        self.backlog += len(windows)
        if windows:
            self._metrics.windows.inc(len(windows))
            self._wake.set()

    def flush(self) -> None:
        """Send every waiting window to scoring now, full batch or not."""
        self._ready.extend(self._batcher.flush())
        self._wake.set()

    def offer(self, scorer: Scorer) -> None:
        """Use `scorer` from the next batch on (hot reload)."""
        if self._offered is not None:  # offered and never used: nothing queued holds it
            self._retire(self._offered)
        self._offered = scorer
        self._wake.set()

    def scorers(self) -> list[Scorer]:
        """Every scorer not yet closed (serving, offered, or replaced and waiting for its
        queued batches): what to close on shutdown."""
        offered = [self._offered] if self._offered is not None else []
        return [self.scorer, *offered, *self._retired]

    def _retire(self, scorer: Scorer) -> None:
        """Close `scorer` once no batch in flight uses it, in a scoring thread. Until then
        `scorers` lists it, in case shutdown comes first."""
        self._retired.append(scorer)
        if not self._uses.get(id(scorer)):
            self._executor.submit(self._close_retired, scorer)

    def _close_retired(self, scorer: Scorer) -> None:
        close_scorer(scorer)
        self._retired.remove(scorer)

    def stop(self) -> None:
        """Finish what is queued, then return from `run`."""
        self._stopping = True
        self.flush()

    async def run(self) -> None:
        # Batches handed to the model threads and not yet published, oldest first. One more
        # than the model scores at once keeps it busy while a batch's results are published.
        in_flight: deque[_InFlight] = deque()
        try:
            while True:
                if len(in_flight) <= self._parallel and (batch := self._take_ready()) is not None:
                    in_flight.append(self._start(batch))
                elif in_flight:
                    await self._publish(in_flight.popleft())
                elif (batch := await self._next_batch()) is not None:
                    in_flight.append(self._start(batch))
                else:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("scoring_failed", error=str(e), error_type=type(e).__name__)
            await self._acks.fail(e)
            raise
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _take_ready(self) -> Batch | None:
        """A batch that is ready now (full, or past its wait), without waiting."""
        if not self._ready:
            self._ready.extend(self._batcher.due(monotonic_ms()))
        return self._ready.popleft() if self._ready else None

    async def _next_batch(self) -> Batch | None:
        """Wait for the next batch (nothing is in flight meanwhile); None once stopping and
        nothing is left."""
        while True:
            if (batch := self._take_ready()) is not None:
                return batch
            # Idle, so between batches: a model offered now takes over at once, rather than
            # when traffic next comes (the model_info metric then shows it without traffic).
            self._switch_model()
            if self._stopping and not len(self._batcher):
                return None
            now = monotonic_ms()
            deadline = self._batcher.next_deadline()
            self._wake.clear()
            timeout = None if deadline is None else max(0, deadline - now) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _switch_model(self) -> Scorer:
        if self._offered is not None:
            old, self.scorer, self._offered = self.scorer, self._offered, None
            log.info("model_switched", old=old.model_version, new=self.scorer.model_version)
            self._retire(old)
            self._metrics.set_model(self.scorer.model_version)
            self._metrics.model_switches.inc()
        return self.scorer

    def _start(self, batch: Batch) -> _InFlight:
        """Queue `batch` in the model thread, with the model current now (a hot reload takes
        effect here, between two batches)."""
        scorer = self._switch_model()
        self._uses[id(scorer)] = self._uses.get(id(scorer), 0) + 1
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._score_batch, scorer, batch.windows, wall_ms()
        )
        return _InFlight(batch, scorer, future)

    def _finished(self, scorer: Scorer) -> None:
        """A batch of `scorer` is back: close it if it was replaced and this was its last."""
        left = self._uses[id(scorer)] - 1
        if left:
            self._uses[id(scorer)] = left
            return
        del self._uses[id(scorer)]
        if any(r is scorer for r in self._retired):
            self._executor.submit(self._close_retired, scorer)

    async def _publish(self, job: _InFlight) -> None:
        """Wait for a batch's results, then send them (or hand them to the outbox)."""
        batch = job.batch
        try:
            scores, latency = await job.future
        finally:
            self._finished(job.scorer)
        if self._annotate is not None:
            scores = [self._annotate(s) for s in scores]
        n_alerts = sum(s.anomalous for s in scores)
        messages = [self._messages(w, s) for w, s in zip(batch.windows, scores, strict=True)]
        if self._outbox is not None:
            for window, msgs in zip(batch.windows, messages, strict=True):
                self._outbox(window, msgs)
            self._done(batch.windows, n_alerts)
            await self._acks.notify()
        else:
            futures: list[asyncio.Future[Any]] = [
                await self._send(*m) for msgs in messages for m in msgs
            ]
            self._acks.track(futures, lambda: self._done(batch.windows, n_alerts))
        self._metrics.batch_windows.observe(len(batch.windows))
        self._metrics.batch_latency.observe(latency)
        self._metrics.observe_scores((s.score, s.threshold) for s in scores)
        log.info(
            "batch_scored",
            windows=len(batch.windows),
            events=batch.events,
            padded_tokens=batch.padded_tokens,
            bucket=batch.bucket,
            latency_ms=round(latency * 1000, 2),
            alerts=n_alerts,
            model_version=job.scorer.model_version,
            backlog=self.backlog,
        )

    def _score_batch(
        self, scorer: Scorer, windows: Sequence[Window], now_ms: int
    ) -> tuple[list[Score], float]:
        """In the scoring thread: score, then hand the results to `on_scored`. Returns the
        scores and the seconds spent scoring."""
        t0 = time.perf_counter()
        use_threads = getattr(scorer, "use_threads", None)
        if self._threads is not None and use_threads is not None:
            busy, idle = self._threads
            use_threads(idle if self.loop_idle else busy)
        if self._cache is None:
            scores = scorer.score_windows(windows, now_ms)
        else:
            scores = self._cache.score(scorer, windows, now_ms)
        if len(scores) != len(windows):
            raise RuntimeError(f"scorer returned {len(scores)} scores for {len(windows)}")
        with self._serial:
            if self._cache is not None:
                self._count_cache(self._cache)
            if self._judge is not None:
                scores = self._judge(scores)
            latency = time.perf_counter() - t0
            if self._on_scored is not None:
                self._on_scored(list(zip(windows, scores, strict=True)))
        return scores, latency

    def _count_cache(self, cache: ScoreCache) -> None:
        """Bring the cache metrics up to the cache's own counts (under `_serial`)."""
        hits, misses = cache.hits, cache.misses
        reported_hits, reported_misses = self._cache_reported
        self._metrics.cache_hits.inc(hits - reported_hits)
        self._metrics.cache_misses.inc(misses - reported_misses)
        self._cache_reported = (hits, misses)

    def _messages(self, window: Window, score: Score) -> tuple[Message, ...]:
        """The Score, and the Alert when anomalous, keyed by session id."""
        key = window.session_id.encode()
        out: tuple[Message, ...] = ((self._scores_topic, key, score.encode(), None),)
        if score.anomalous:
            alert = Alert.from_score(score, window.events).encode()
            out += ((self._alerts_topic, key, alert, None),)
        return out

    def _done(self, windows: Sequence[Window], n_alerts: int) -> None:
        for w in windows:
            self._on_done(w)
        self.backlog -= len(windows)
        self._metrics.scored.inc(len(windows))
        self._metrics.alerts.inc(n_alerts)
