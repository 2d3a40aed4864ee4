"""Prometheus metrics and health for `logad serve`, on a small HTTP endpoint of its own.

    /metrics   Prometheus text format (the process's own registry only)
    /healthz   200 while the consume loop has ticked within `stale_s`, else 503
    /readyz    200 once partitions are assigned and a model is loaded, else 503

The server runs in a daemon thread so a scrape never waits on the asyncio loop; the loop
only writes plain attributes that the handler reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = structlog.get_logger(__name__)


@dataclass
class Health:
    stale_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    last_tick: float = field(default_factory=time.monotonic)
    assigned: int = 0
    model_loaded: bool = False

    def tick(self) -> None:
        self.last_tick = self.clock()

    def alive(self) -> bool:
        return self.clock() - self.last_tick < self.stale_s

    def ready(self) -> bool:
        return self.assigned > 0 and self.model_loaded

    def tick_age(self) -> float:
        """Seconds since the consume loop last ticked (/healthz fails past `stale_s`)."""
        return max(0.0, self.clock() - self.last_tick)


class ServeMetrics:
    def __init__(self, stale_s: float = 30.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.health = Health(stale_s=stale_s)
        self.events = Counter("logad_events", "Input messages consumed", registry=r)
        self.windows = Counter("logad_windows", "Windows closed and queued for scoring", registry=r)
        self.scored = Counter("logad_windows_scored", "Windows scored and acknowledged", registry=r)
        self.alerts = Counter("logad_alerts", "Alerts produced", registry=r)
        self.dlq = Counter("logad_dlq", "Messages sent to the dead-letter topic", registry=r)
        self.lag = Gauge(
            "logad_consumer_lag", "Highwater minus position", ["partition"], registry=r
        )
        self.open_sessions = Gauge("logad_open_sessions", "Sessions held open", registry=r)
        self.open_events = Gauge("logad_open_events", "Events held in open sessions", registry=r)
        self.backlog = Gauge(
            "logad_backlog_windows", "Windows batching, scoring or awaiting acks", registry=r
        )
        self.paused = Gauge("logad_paused", "1 while partitions are paused", registry=r)
        self.pauses = Counter(
            "logad_pauses", "Times partitions were paused for a full scoring queue", registry=r
        )
        self.batch_windows = Histogram(
            "logad_batch_windows",
            "Windows per scoring batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.batch_latency = Histogram(
            "logad_batch_latency_seconds",
            "Model time per scoring batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # Hit rate = hits / (hits + misses); a repeat within one batch counts as a hit.
        self.cache_hits = Counter(
            "logad_score_cache_hits", "Windows whose model output came from the cache", registry=r
        )
        self.cache_misses = Counter(
            "logad_score_cache_misses", "Windows the model scored (cache on)", registry=r
        )
        self.model_version = Gauge(
            "logad_model_info", "1 for the model version now serving", ["version"], registry=r
        )
        self.model_loaded = Gauge(
            "logad_model_loaded", "1 once a model is loaded and serving", registry=r
        )
        self.model_loaded.set_function(lambda: float(self.health.model_loaded))
        self.window_score = Histogram(
            "logad_window_score",
            "Score of each window scored (higher is more anomalous)",
            buckets=(0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.threshold = Gauge(
            "logad_threshold", "Alert threshold of the model that scored last", registry=r
        )
        # Read at scrape time: a stuck consume loop cannot update a gauge itself, and the
        # scrape runs in the server's own thread.
        self.tick_age = Gauge(
            "logad_last_tick_age_seconds",
            "Seconds since the consume loop last ticked (/healthz is 503 past health_stale_s)",
            registry=r,
        )
        self.tick_age.set_function(self.health.tick_age)
        self.ready = Gauge(
            "logad_ready", "1 while /readyz answers 200 (partitions and a model)", registry=r
        )
        self.ready.set_function(lambda: float(self.health.ready()))
        self.model_switches = Counter("logad_model_switches", "Hot reloads done", registry=r)
        self.model_refused = Counter(
            "logad_model_refused", "Bundles refused on reload (load or verify failed)", registry=r
        )
        self.templates_new = Gauge(
            "logad_templates_new", "Templates mined from raw lines, new to the model", registry=r
        )
        self.raw_over_cap = Gauge(
            "logad_raw_lines_over_cap",
            "Raw lines given T0 because max_new_templates were mined (only grows)",
            registry=r,
        )

    def watch_templates(self, new: Callable[[], float], over_cap: Callable[[], float]) -> None:
        """Read the raw-event counts at each scrape (the consume loop only counts)."""
        self.templates_new.set_function(new)
        self.raw_over_cap.set_function(over_cap)

    def observe_scores(self, scores: Iterable[tuple[float, float]]) -> None:
        """Each scored window's (score, threshold)."""
        for score, threshold in scores:
            self.window_score.observe(score)
            self.threshold.set(threshold)

    def set_model(self, version: str) -> None:
        self.model_version.clear()
        self.model_version.labels(version=version).set(1)
        self.health.model_loaded = True

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


class MetricsServer:
    """The HTTP endpoint, in a daemon thread. `port=0` in the constructor picks a free port."""

    def __init__(self, metrics: ServeMetrics, host: str, port: int) -> None:
        handler = _handler_for(metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="logad-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        self._thread.start()
        log.info("metrics_listening", port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(metrics: ServeMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = metrics.health.alive()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"stale\n")
            elif path == "/readyz":
                h = metrics.health
                ok = h.ready()
                body = f"assigned={h.assigned} model_loaded={str(h.model_loaded).lower()}\n"
                self._reply(200 if ok else 503, body.encode())
            else:
                self._reply(404, b"not found\n")

        def _reply(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the structured logs

    return Handler
