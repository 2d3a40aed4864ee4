"""`logad serve`: consume log events, sessionize, score windows, publish scores and alerts.

`serve()` wires the parts: the model (in a thread or a child process), the Kafka clients,
the metrics endpoint, the topics' start-up checks (stream/serve/topics.py), the hot-reload
watcher, and the consume loop (`Service`, stream/serve/service.py).

The loop: poll -> decode (bad -> dead-letter topic) -> sessionize -> queue windows for the
scoring worker -> commit what is safe. Scoring runs in the worker's thread and publishing
in its task, so the loop keeps polling whatever the model is doing; when too many windows
are in flight, partitions are paused (never the polling).

No data lost: an offset is committed only once every window holding it has its Score
acknowledged by the broker (stream.serve.offsets). On shutdown the open windows are flushed,
scored and acknowledged, then committed; or, with `hand_back`, left open: the commit stays
below them, and whoever reads the partition next (this process after a restart, or another
group member) re-reads them whole. A revoke always hands the partitions' open windows back
so: a rebalance scores no fragment of a session as if it were a whole one.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path

import structlog

from schemas.bundle import read_bundle_templates, verify_bundle
from schemas.registry import is_registry, resolve_model
from schemas.runtime.secret import Secret
from stream.serve.kafka_io import (
    make_consumer,
    make_producer,
)
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import start_client
from stream.serve.metrics import MetricsServer, ServeMetrics
from stream.serve.model_process import start_process_pool
from stream.serve.reload import LoadScorer, ModelWatcher, load_window_scorer
from stream.serve.service import Service, model_threads
from stream.serve.settings import ServeSettings
from stream.serve.topics import prepare_topics
from stream.serve.worker import Scorer, close_scorer
from trainer.gc_tuning import restore_gc, tune_gc

log = structlog.get_logger(__name__)


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    load: LoadScorer | None = None,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Run `logad serve` until `stop` is set. `load` builds a scorer from a bundle dir
    (default: trainer.scoring.WindowScorer); tests pass a fake."""
    assert settings.model is not None  # ServeSettings guarantees it
    load = signed_only(load or load_scorer(settings), settings.signing.bundle_key)
    bundle = resolve_model(settings.model)
    # The clients first (not started: no connection yet), so that a TLS file that cannot be
    # used stops serve before a model or the metrics server needs releasing.
    consumer = make_consumer(settings)
    producer = make_producer(settings)
    watch_client(consumer)
    watch_client(producer)
    loop = asyncio.get_running_loop()
    templates = await loop.run_in_executor(None, read_bundle_templates, bundle)
    scorer = await loop.run_in_executor(None, load, bundle)
    log.info(
        "model_loaded",
        model_version=scorer.model_version,
        bundle=str(bundle),
        templates=len(templates.templates) if templates is not None else None,
    )
    metrics = ServeMetrics(stale_s=settings.metrics.health_stale_s)
    server = None
    if settings.metrics.metrics_port:
        server = MetricsServer(
            metrics, settings.metrics.metrics_host, settings.metrics.metrics_port
        )
        server.start()
    gc_defaults = tune_gc()
    switch_default = sys.getswitchinterval()
    # A thread waiting for the GIL waits up to the switch interval: at Python's 5 ms, the
    # model thread, which needs it back after every torch op, crawls while the loop runs.
    sys.setswitchinterval(settings.runtime.switch_interval_ms / 1000)
    service: Service | None = None
    try:
        await start_client(producer, settings.kafka, settings.kafka.bootstrap)
        await start_client(consumer, settings.kafka, settings.kafka.bootstrap)
        if await prepare_topics(settings, stop, metrics.health):
            service = Service(settings, scorer, consumer, producer, metrics, templates)
            raw = service.raw
            metrics.watch_templates(lambda: raw.new_templates, lambda: raw.over_cap)
            watcher = _watcher(settings.model, bundle, settings, service, load)
            if ready is not None:
                ready.set()
            await service.run(stop, watcher)
    finally:
        # Both clients, also when one failed to start: a half-open client leaks its
        # connections and warns "Unclosed" at exit. Stopping a client never started is a no-op.
        await consumer.stop()
        await producer.stop()
        if server is not None:
            server.stop()
        restore_gc(gc_defaults)
        sys.setswitchinterval(switch_default)
        for s in service.worker.scorers() if service is not None else [scorer]:
            await loop.run_in_executor(None, close_scorer, s)
    log.info("serve_stopped")


def load_scorer(settings: ServeSettings) -> LoadScorer:
    """How serve loads a bundle: in a model process of its own, or in this one."""
    r = settings.runtime
    threads = model_threads(r.score_threads, r.model_processes)
    if r.model_processes:
        return functools.partial(
            start_process_pool,
            device=settings.scoring.device,
            processes=r.model_processes,
            threads=threads,
            explain_known_mixes=settings.scoring.explain_known_mixes,
        )
    return load_window_scorer(
        settings.scoring.device, threads, settings.scoring.explain_known_mixes
    )


def signed_only(load: LoadScorer, key: Secret | None) -> LoadScorer:
    """`load`, refusing (BundleError) a bundle whose signature does not verify under `key`,
    at start and on every hot reload (none: `load` as it is)."""
    if key is None:
        return load

    def checked(bundle: Path) -> Scorer:
        verify_bundle(bundle, key)
        return load(bundle)

    return checked


def _watcher(
    model: Path, bundle: Path, settings: ServeSettings, service: Service, load: LoadScorer
) -> ModelWatcher | None:
    """A pointer watcher when --model names a registry (the bundle is then its child)."""
    if bundle == model or not is_registry(model) or settings.reload_check_s <= 0:
        return None
    return ModelWatcher(
        model,
        bundle.name,
        load,
        service.offer_model,
        service.metrics,
        settings.reload_check_s,
    )
