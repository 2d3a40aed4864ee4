"""`Service`: serve's consume loop and what it does with each poll.

The loop: poll -> decode (bad -> dead-letter topic) -> sessionize -> queue windows for the
scoring worker -> commit what is safe. Scoring runs in the worker's thread and publishing
in its task, so the loop keeps polling whatever the model is doing; when too many windows
are in flight, partitions are paused (never the polling). Revokes and assignments flush or
hand back the partitions' open windows (stream/serve/app.py has the guarantees).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError

from schemas.errors import DecodeError
from schemas.events import decode_fields, label_of
from schemas.templates import TemplateSet
from schemas.windows import Window
from stream.serve.adaptive_threshold import AdaptiveThreshold, bundle_calibrations
from stream.serve.archive import ArchiveTap, DailyArchive
from stream.serve.batcher import Batcher
from stream.serve.dead_letters import DeadLetters, dead_letter, future_event
from stream.serve.kafka_io import (
    Acks,
    Message,
    committed_with_metadata,
    producer_send,
)
from stream.serve.metrics import ServeMetrics
from stream.serve.offsets import OffsetTracker
from stream.serve.raw_events import RawEvents
from stream.serve.reload import ModelWatcher
from stream.serve.score_cache import ScoreCache
from stream.serve.sessionizer import Sessionizer
from stream.serve.settings import ServeSettings
from stream.serve.transactions import TxnOutbox
from stream.serve.worker import Scorer, ScoringWorker, monotonic_ms, wall_ms
from trainer.mining.matcher import event_id_for

log = structlog.get_logger(__name__)

Records = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
Undecodable = list[tuple[ConsumerRecord[bytes, bytes], DecodeError]]


def model_threads(configured: int, processes: int = 0) -> int:
    """CPU threads for the model (each of its `processes`, when it runs in child processes):
    as configured, or for 0 every core this process may use but one, which the consume loop
    needs, shared among the processes. Torch's own default (one per core) makes the model's
    threads and the loop fight for the cores (bench/stream_e2e.py measures both)."""
    if configured > 0:
        return configured
    return max(1, (len(os.sched_getaffinity(0)) - 1) // max(1, processes))


def model_threads_idle(configured: int, busy: int) -> int:
    """CPU threads for the model while the consume loop is idle: as configured, or for 0
    every core this process may use; never fewer than while it is busy."""
    return max(busy, configured or len(os.sched_getaffinity(0)))


def adaptive_threshold(s: ServeSettings) -> AdaptiveThreshold | None:
    """Serve's online threshold when the runtime setting asks for it."""
    r = s.runtime
    if not r.adaptive_threshold or s.model is None:
        return None
    calibrations = bundle_calibrations(s.model)
    return AdaptiveThreshold(calibrations, r.adaptive_refit_every, r.adaptive_drift_depth)


class Service:
    def __init__(
        self,
        settings: ServeSettings,
        scorer: Scorer,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        metrics: ServeMetrics,
        templates: TemplateSet | None = None,
    ) -> None:
        """`templates`: the bundle's template set, for raw events (None: it has none)."""
        self.s = settings
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics
        self.sessions = Sessionizer(settings.sessionizer)
        self.offsets = OffsetTracker(settings.consumer.commit_metadata_max_bytes)
        self.acks = Acks()
        self.send = producer_send(producer)
        s = settings
        batcher = Batcher(
            s.scoring.max_batch_tokens, s.batching.max_batch_wait_ms, s.batching.length_buckets
        )
        busy = model_threads(s.runtime.score_threads)
        self.raw = RawEvents(templates, s.archive_dir, s.max_new_templates)
        self.archive: ArchiveTap | None = None
        if s.archive_dir is not None:
            # A day is whole once the watermark is past its end by a gap (its last sessions
            # have closed) plus the lateness the watermark allows.
            grace = s.sessionizer.gap_ms + s.sessionizer.allowed_lateness_ms
            archive = DailyArchive(s.archive_dir, grace_ms=grace, templates=self.raw.snapshot)
            self.archive = ArchiveTap(archive)
        self.worker = ScoringWorker(
            scorer,
            batcher,
            self.send,
            self.acks,
            scores_topic=settings.topics.scores_topic,
            alerts_topic=settings.topics.alerts_topic,
            on_done=self._scored,
            metrics=metrics,
            outbox=self._to_outbox if settings.publish.exactly_once else None,
            on_scored=self.archive.append if self.archive is not None else None,
            cache=ScoreCache(s.runtime.score_cache_size) if s.runtime.score_cache_size else None,
            threads=(busy, model_threads_idle(s.runtime.score_threads_idle, busy)),
            annotate=self.raw.annotate,
            judge=adaptive_threshold(s),
        )
        self.txn = TxnOutbox(settings) if settings.publish.exactly_once else None
        d = s.dead_letters
        self.dead = DeadLetters(
            lambda *m: self.send(*m),  # late-bound: tests swap `send`
            s.topics.dlq_topic,
            max_bytes=d.dlq_max_value_bytes,
            retry_ms=(d.dlq_retry_initial_ms, d.dlq_retry_max_ms),
            on_sent=self._dead_lettered,
            notify=self.acks.notify,
            fail=self.acks.fail,
        )
        self._revoking: set[int] = set()
        # Partitions whose commit metadata is being read; their records wait here meanwhile.
        self._restoring: dict[int, list[ConsumerRecord[bytes, bytes]]] = {}
        self._paused = False
        self._next_commit = 0

    async def run(self, stop: asyncio.Event, watcher: ModelWatcher | None = None) -> None:
        """Consume until `stop` is set, then flush, score, produce and commit everything."""
        self.consumer.subscribe([self.s.topics.input_topic], listener=_Listener(self))
        tasks = [asyncio.create_task(self.worker.run(), name="logad-worker")]
        if watcher is not None:
            tasks.append(asyncio.create_task(watcher.run(), name="logad-reload"))
        try:
            while not stop.is_set():
                self._check(tasks)
                records = await self.consumer.getmany(
                    timeout_ms=self.s.consumer.poll_timeout_ms,
                    max_records=self.s.consumer.poll_max_records,
                )
                now = wall_ms()
                # An idle loop leaves its core to the model (the tail of a backlog).
                self.worker.loop_idle = not records
                bad = self._ingest(records, now)
                self._submit(self.sessions.advance(now))
                await self._dead_letter(bad)
                self._backpressure()
                if monotonic_ms() >= self._next_commit:
                    await self._commit_safe()
                self._observe()
                # getmany returns buffered records without suspending: without a yield here
                # a backlog starves the worker's task, and every window waits for the end.
                await asyncio.sleep(0)
            self._check(tasks)
            self.worker.loop_idle = True  # no more polls: the final flush may use every core
            assigned = set(self.offsets.assigned)
            watermark = self.sessions.min_watermark(assigned, wall_ms())
            await self._finish(assigned, [] if self.s.hand_back else self.sessions.flush_all())
            if self.txn is not None:
                await self.txn.close(assigned)
            self.worker.stop()
            await tasks[0]
            if self.archive is not None:  # every window is scored and appended by now
                self.archive.close(watermark, mark=not self.s.hand_back)
                self.archive = None
        finally:
            self.dead.forget()
            if self.archive is not None:  # after a failure: fsync what was written
                with contextlib.suppress(Exception):
                    self.archive.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.txn is not None:  # after a failure; the broker or the next owner aborts
                with contextlib.suppress(Exception):
                    await self.txn.close(self.txn.partitions)

    def _check(self, tasks: list[asyncio.Task[None]]) -> None:
        """Surface a failed worker, watcher or send: its offsets must not be committed."""
        self.acks.check()
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    def _ingest(self, records: Records, now: int) -> Undecodable:
        bad: Undecodable = []
        windows: list[Window] = []
        for tp, recs in records.items():
            p = tp.partition
            if p not in self.offsets.assigned or p in self._revoking:
                continue  # fetched before a revoke: the next owner reads it again
            if p in self._restoring:
                self._restoring[p].extend(recs)
                continue
            start = self.offsets.last_committed(p) or 0
            # Only a restore adds skips: not within this loop.
            scored = self.offsets.already_scored if self.offsets.has_skips(p) else None
            # The per-event hot loop: no LogEvent, just the fields the sessionizer uses.
            add, decode = self.sessions.add_fields, decode_fields
            matcher = self.raw.matcher
            # Later events would move the watermark past every open session (dead letters).
            horizon = now + self.s.dead_letters.max_future_skew_ms
            last = -1
            for r in recs:
                offset = r.offset
                if offset < start:
                    continue  # committed by a previous owner after our fetch position was set
                last = offset
                try:
                    ts, sid, eid, message, attrs = decode(r.value)
                    if eid is None:  # a raw event: its message names the template
                        eid = event_id_for(eid, message, ts, matcher)
                except DecodeError as e:
                    bad.append((r, e))
                    continue
                if ts > horizon:
                    bad.append((r, future_event(ts, now, horizon - now)))
                    continue
                if scored is not None and scored(p, sid, offset):
                    continue
                label = attrs.get("label") if attrs else None
                if label is not None and not (label.__class__ is int and 0 <= label <= 1):
                    label = label_of(attrs)  # anything but a plain 0 or 1: the exact rule
                add(windows, ts, sid, eid, p, offset, now, label)
            if last >= 0:  # records come in offset order: the last is the highest
                self.offsets.consumed(p, last)
            self.metrics.events.inc(len(recs))
        self._submit(windows)
        return bad

    def offer_model(self, scorer: Scorer, templates: TemplateSet | None) -> None:
        """Hot reload: the worker scores with `scorer` from its next batch, and raw events
        map with `templates` from the next poll."""
        self.worker.offer(scorer)
        self.raw.switch(templates)

    def _to_outbox(self, w: Window, messages: tuple[Message, ...]) -> None:
        assert self.txn is not None
        self.txn.add(w.partition, w.first_offset, messages)

    def _scored(self, w: Window) -> None:
        self.offsets.finished(w.partition, w.first_offset, w.last_offset, w.session_id)

    def _submit(self, windows: list[Window]) -> None:
        for w in windows:
            self.offsets.hold(w.partition, w.first_offset)
        if self.archive is not None:
            self.archive.submitted(windows)
        self.worker.submit(windows, monotonic_ms())

    async def _dead_letter(self, bad: Undecodable) -> None:
        """Send undecodable messages as they came (stream/serve/dead_letters.py); their
        offsets count as done once acked (or, exactly once, go out in the transaction that
        commits past them). A failed send is retried, its partition paused meanwhile."""
        limit = self.s.dead_letters.dlq_max_value_bytes
        for r, e in bad:
            log.warning("event_undecodable", partition=r.partition, offset=r.offset, error=str(e))
            if self.txn is not None:
                key, value, headers = dead_letter(r, e, limit)
                self.txn.add(
                    r.partition, r.offset, ((self.s.topics.dlq_topic, key, value, headers),)
                )
                self.metrics.dlq.inc()
            else:
                self.offsets.hold(r.partition, r.offset)  # no commit past it until acked
                await self.dead.put(r, e)

    def _dead_lettered(self, partition: int, offset: int) -> None:
        self.offsets.release(partition, offset)
        self.metrics.dlq.inc()

    def _backpressure(self) -> None:
        """Pause every assigned partition while the worker is full; resume at half."""
        backlog = self.worker.backlog + (self.txn.size if self.txn is not None else 0)
        if not self._paused and backlog >= self.s.batching.queue_max_windows:
            self._paused = True
            self.metrics.pauses.inc()
            log.info("partitions_paused", backlog=backlog)
        elif self._paused and backlog <= self.s.batching.queue_max_windows // 2:
            self._paused = False
            blocked = self.dead.blocked  # a DLQ outage keeps its partitions paused
            self.consumer.resume(*(t for t in self.consumer.paused() if t.partition not in blocked))
            log.info("partitions_resumed", backlog=backlog)
        if self._paused:
            self.consumer.pause(*self.consumer.assignment())  # also newly assigned ones
        self.dead.steer(self.consumer, self.s.topics.input_topic, self._paused)
        self.metrics.paused.set(int(self._paused))

    async def _commit_safe(self, partitions: set[int] | None = None) -> None:
        self._next_commit = monotonic_ms() + self.s.consumer.commit_interval_ms
        if self.archive is not None and partitions is None:
            self.archive.tick(self.sessions.min_watermark(self.offsets.assigned, wall_ms()))
        offsets = self.offsets.to_commit(self.sessions.min_open_offset, partitions)
        if not offsets:
            return
        if self.txn is not None:
            for p, (offset, metadata) in offsets.items():
                sent = await self.txn.commit(p, offset, metadata)  # a failure is fatal
                self.offsets.committed({p: (offset, metadata)})
                log.debug("transaction_committed", partition=p, offset=offset, results=sent)
            return
        topic = self.s.topics.input_topic
        try:
            await self.consumer.commit({TopicPartition(topic, p): om for p, om in offsets.items()})
        except (KafkaError, IllegalStateError) as e:
            # The group moved on: whoever owns the partitions now re-reads from the last
            # commit, so nothing is lost (at least once).
            log.warning("commit_failed", error=str(e), partitions=sorted(offsets))
            return
        self.offsets.committed(offsets)
        log.debug("offsets_committed", offsets={p: om[0] for p, om in offsets.items()})

    async def _finish(self, partitions: frozenset[int] | set[int], windows: list[Window]) -> None:
        """Score and publish `windows`, wait for every ack of `partitions`, then commit."""
        self._revoking |= set(partitions)
        self._submit(windows)
        self.worker.flush()
        await self.acks.wait_until(lambda: self.offsets.in_flight(partitions) == 0)
        await self._commit_safe(set(partitions))
        log.info("partitions_finished", partitions=sorted(partitions), windows=len(windows))

    async def on_revoked(self, partitions: set[int]) -> None:
        """A rebalance hands the partitions' open windows to their next owner, whatever
        `hand_back` says: flushed, each would be scored as a cut window now and its rest as
        a fragment that looks like a whole new session (and alerts). Commit below the open
        windows, then forget them (whatever happened): the next owner (this process again,
        after an eager rebalance) re-reads them whole from the commit."""
        try:
            try:
                await self._finish(partitions, [])
            finally:
                dropped = self.sessions.flush_partitions(partitions)
            log.info("windows_handed_back", partitions=sorted(partitions), windows=len(dropped))
        except Exception as e:  # an exception here would be swallowed by aiokafka
            log.error("revoke_failed", error=str(e), error_type=type(e).__name__)
        finally:
            if self.txn is not None:
                await self.txn.close(partitions)
            self.dead.forget(partitions)
            self.offsets.revoke(partitions)
            self._revoking -= partitions
            for p in partitions:
                with contextlib.suppress(KeyError):
                    self.metrics.lag.remove(str(p))
            self.metrics.health.assigned = len(self.offsets.assigned)

    async def on_assigned(self, partitions: set[int]) -> None:
        """Take up partitions at their commits, skipping what the last owner already scored."""
        self.offsets.assign(partitions)
        self.sessions.assign(partitions, wall_ms())
        self._restoring.update({p: [] for p in partitions})
        tps = [TopicPartition(self.s.topics.input_topic, p) for p in sorted(partitions)]
        if self.txn is not None:
            # First fence off a previous owner (aborting its open transaction), so the
            # committed offsets read next are final.
            await self.txn.open(partitions)
        try:
            committed = await committed_with_metadata(self.consumer, tps)
        except KafkaError as e:  # without the metadata, fragments may be re-scored; no loss
            log.warning("commit_metadata_unavailable", error=str(e))
            committed = {}
        skipping = {p: self.offsets.restore(p, *committed.get(p, (None, ""))) for p in partitions}
        held = {tp: self._restoring.pop(tp.partition) for tp in tps}
        await self._dead_letter(self._ingest(held, wall_ms()))
        self.metrics.health.assigned = len(self.offsets.assigned)
        log.info("partitions_assigned", partitions=sorted(partitions), skip_sessions=skipping)

    def _observe(self) -> None:
        m = self.metrics
        m.health.tick()
        m.open_sessions.set(self.sessions.open_sessions)
        m.open_events.set(self.sessions.open_events)
        m.backlog.set(self.worker.backlog)
        for tp in self.consumer.assignment():
            hw, pos = self.consumer.highwater(tp), self.offsets.next_offset(tp.partition)
            if hw is not None and pos is not None:
                m.lag.labels(partition=str(tp.partition)).set(max(0, hw - pos))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: Service) -> None:
        self._service = service
        self._topic = service.s.topics.input_topic

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        parts = {tp.partition for tp in revoked if tp.topic == self._topic}
        if parts:
            log.info("partitions_revoked", partitions=sorted(parts))
            await self._service.on_revoked(parts)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._service.on_assigned(
            {tp.partition for tp in assigned if tp.topic == self._topic}
        )
