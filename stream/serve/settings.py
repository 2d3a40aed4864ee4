"""`ServeSettings`: every knob of `logad serve`, built from file < LOGAD_* env < flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigError
from schemas.windows import MAX_EVENTS, MAX_TOKENS

# Help text per field, shared by the CLI flags and the README settings table.
SERVE_HELP: dict[str, str] = {
    "model": "model bundle directory, or a registry directory with a 'current' pointer",
    "bootstrap": "Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]",
    "input_topic": "topic of LogEvent JSON messages, keyed by session id",
    "scores_topic": "topic for one Score per window, keyed by session id",
    "alerts_topic": "topic for an Alert per window over the bundle's threshold",
    "dlq_topic": "dead-letter topic for messages that fail to decode",
    "group_id": "consumer group id",
    "client_id": "Kafka client id prefix",
    "poll_timeout_ms": "longest wait of one poll for new records",
    "poll_max_records": "most records returned by one poll",
    "max_partition_fetch_bytes": "most bytes one fetch request brings back per partition",
    "max_poll_interval_ms": "the group evicts a consumer that does not poll for this long",
    "session_timeout_ms": "the group evicts a consumer whose heartbeats stop for this long",
    "heartbeat_interval_ms": "heartbeat period (well under session_timeout_ms)",
    "commit_interval_ms": "how often safe offsets are committed",
    "commit_metadata_max_bytes": "room for commit metadata (the broker's "
    "offset.metadata.max.bytes); it lists scored windows the commit cuts through",
    "max_batch_tokens": "most tokens in one scoring batch (windows x padded length)",
    "max_batch_wait_ms": "longest a window waits for its batch to fill",
    "length_buckets": "window lengths (in tokens) at which batches are bucketed",
    "score_cache_size": "model outputs memoized by (model version, window events), reused "
    "for repeated windows; LRU, cleared on model switch (0 = off)",
    "queue_max_windows": "windows in flight (batching, scoring, awaiting acks) before "
    "partitions are paused",
    "gap_ms": "a session closes after this much event time without events",
    "max_events": "events per window; a longer session goes on in a new window",
    "max_duration_ms": "a window is closed after spanning this much event time",
    "idle_timeout_ms": "wall-clock time after which a quiet partition's sessions are flushed",
    "max_open_sessions": "open sessions held in memory; past it the oldest is flushed",
    "allowed_lateness_ms": "event-time slack before the watermark closes sessions",
    "linger_ms": "producer linger before sending a batch of scores",
    "metrics_port": "port of the /metrics, /healthz and /readyz endpoint (0 = off)",
    "metrics_host": "address the metrics endpoint binds to",
    "health_stale_s": "/healthz fails when the consume loop has not ticked for this long",
    "exactly_once": "publish results and commit offsets in one transaction per input "
    "partition; read results with isolation_level=read_committed (adds latency)",
    "transaction_timeout_ms": "the broker aborts a transaction left open this long",
    "device": "scoring device: auto, cpu, cuda, cuda:N",
    "score_threads": "CPU threads for the model (0 = every core the process may use but one, "
    "left to the consume loop; at least 1)",
    "score_threads_idle": "CPU threads for the model while the consume loop is idle (its "
    "last poll brought no records, as in the tail of a backlog; 0 = every core the process "
    "may use; never fewer than score_threads; the model in a thread only)",
    "model_process": "run the model in a child process of its own (stream/serve/model_process.py), "
    "so that it never waits for the consume loop's GIL, instead of a thread of serve's process",
    "switch_interval_ms": "Python's GIL switch interval while serving (its default is 5): "
    "the model thread gets the GIL back after each torch op sooner while the consume loop "
    "runs",
    "explain_known_mixes": "run the model on windows their known mix scores 0, to list "
    "their surprising events in the scores topic (off: no forward pass for them, and no "
    "explanation)",
    "reload_check_s": "how often a registry's 'current' pointer is checked (0 = never)",
    "hand_back": "on shutdown and partition revoke, leave open windows to whoever reads the "
    "partition next (the commit stays before them, so they are re-read whole) instead of "
    "flushing them as cut windows; avoids the cut and continuation windows a restart or "
    "rebalance makes",
    "archive_dir": "append every scored window, as a Session line with its score, to "
    "DIR/preprocessed_logs_YYYY-MM-DD.jsonl, and mark days complete (.done) as the "
    "watermark passes them (unset = no archive)",
}


@dataclass(frozen=True)
class ServeSettings:
    model: Path | None = None
    bootstrap: str = "127.0.0.1:9092"
    input_topic: str = "logad.events"
    scores_topic: str = "logad.scores"
    alerts_topic: str = "logad.alerts"
    dlq_topic: str = "logad.events.dlq"
    group_id: str = "logad"
    client_id: str = "logad-serve"
    poll_timeout_ms: int = 100
    poll_max_records: int = 10_000
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    commit_interval_ms: int = 1_000
    commit_metadata_max_bytes: int = 4_096
    max_batch_tokens: int = 16_384
    max_batch_wait_ms: int = 50
    length_buckets: tuple[int, ...] = (32, 64, 128, 256, MAX_TOKENS)
    queue_max_windows: int = 32_768
    score_cache_size: int = 100_000
    gap_ms: int = 30_000
    max_events: int = MAX_EVENTS
    max_duration_ms: int = 3_600_000
    idle_timeout_ms: int = 60_000
    max_open_sessions: int = 100_000
    allowed_lateness_ms: int = 0
    linger_ms: int = 5
    metrics_port: int = 9108
    metrics_host: str = "0.0.0.0"
    health_stale_s: float = 30.0
    exactly_once: bool = False
    transaction_timeout_ms: int = 60_000
    device: str = "auto"
    score_threads: int = 0
    score_threads_idle: int = 0
    model_process: bool = False
    switch_interval_ms: float = 0.2
    explain_known_mixes: bool = False
    reload_check_s: float = 5.0
    hand_back: bool = False
    archive_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            raise ConfigError("no model: pass --model BUNDLE_OR_REGISTRY (or set LOGAD_MODEL)")
        for name in (
            "poll_timeout_ms",
            "poll_max_records",
            "max_partition_fetch_bytes",
            "max_poll_interval_ms",
            "session_timeout_ms",
            "heartbeat_interval_ms",
            "commit_interval_ms",
            "queue_max_windows",
            "gap_ms",
            "max_events",
            "max_duration_ms",
            "idle_timeout_ms",
            "max_open_sessions",
            "transaction_timeout_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_events > MAX_EVENTS:
            raise ValueError(f"max_events must be at most {MAX_EVENTS}, got {self.max_events}")
        if self.max_batch_tokens < MAX_TOKENS:
            # A full window must fit in one batch.
            raise ValueError(f"max_batch_tokens must be at least {MAX_TOKENS}")
        if not self.length_buckets or list(self.length_buckets) != sorted(set(self.length_buckets)):
            raise ValueError("length_buckets must be strictly increasing")
        if self.length_buckets[0] < 3 or self.length_buckets[-1] != MAX_TOKENS:
            raise ValueError(f"length_buckets must start at >= 3 and end at {MAX_TOKENS}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.poll_timeout_ms >= self.max_poll_interval_ms:
            raise ValueError("poll_timeout_ms must be below max_poll_interval_ms")
        if not 0 <= self.metrics_port <= 65_535:
            raise ValueError(f"metrics_port out of range: {self.metrics_port}")
        if self.commit_metadata_max_bytes < 0:
            raise ValueError("commit_metadata_max_bytes must be >= 0")
        if self.score_cache_size < 0:
            raise ValueError("score_cache_size must be >= 0")
        if min(self.score_threads, self.score_threads_idle) < 0:
            raise ValueError("score_threads and score_threads_idle must be >= 0")
        if not 0 < self.switch_interval_ms <= 1000:
            raise ValueError("switch_interval_ms must be in (0, 1000]")
        if min(self.allowed_lateness_ms, self.linger_ms, self.max_batch_wait_ms) < 0:
            raise ValueError("allowed_lateness_ms, linger_ms and max_batch_wait_ms must be >= 0")
        if self.reload_check_s < 0:
            raise ValueError("reload_check_s must be >= 0")
        if self.health_stale_s <= 0:
            raise ValueError("health_stale_s must be positive")
        topics = [self.input_topic, self.scores_topic, self.alerts_topic, self.dlq_topic]
        if len(set(topics)) != len(topics):
            raise ValueError("input, scores, alerts and dlq topics must all differ")
