"""The stream's settings sections, and `ServeSettings`, which composes them for `logad serve`.

Each section is declared once and reused: replay composes the sessionizer, scoring and
Kafka connection sections too. A leaf is a flag (`--gap-ms`), a LOGAD_* variable
(`LOGAD_GAP_MS`) and a config key (`gap_ms`, flat or in a `[sessionizer]` table); see
`schemas.runtime.settings` and docs/configuration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.errors import ConfigError
from schemas.runtime.secret import Secret
from schemas.runtime.settings import REQUIRED
from schemas.signing import BundleKeySettings
from schemas.windows import MAX_EVENTS, MAX_TOKENS
from trainer.scorer_settings import ScorerSettings


def _positive(settings: object, *names: str) -> None:
    for name in names:
        if getattr(settings, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class KafkaSettings:
    """Kafka connection

    Where the brokers are and how a client authenticates to them (every Kafka client of
    logad: serve, simulate, replay). A secret is given as file:PATH or env:NAME, or as the
    value itself in its own LOGAD_ variable only; it prints as ***."""

    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, HOST:PORT[,HOST:PORT...]."""
    client_id: str = "logad-serve"
    """Kafka client id prefix."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    """How clients talk to the brokers: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT (a login, no
    TLS) or SASL_SSL (a login over TLS)."""
    sasl_mechanism: SaslMechanism | None = None
    """SASL mechanism of the login (SASL_* protocols only)."""
    sasl_username: str | None = None
    """SASL user name (SASL_* protocols only)."""
    sasl_password: Secret | None = None
    """SASL password: file:PATH, env:NAME, or the value in LOGAD_SASL_PASSWORD."""
    ssl_cafile: Path | None = None
    """PEM file of the CA certificates that signed the brokers' certificates (SSL and
    SASL_SSL; the system bundle, e.g. /etc/ssl/certs/ca-certificates.crt, for a public CA)."""
    ssl_certfile: Path | None = None
    """PEM client certificate chain, for brokers that require client certificates (SSL and
    SASL_SSL)."""
    ssl_keyfile: Path | None = None
    """PEM private key of ssl_certfile (unset: the key is in ssl_certfile)."""
    ssl_key_password: Secret | None = None
    """Password of an encrypted ssl_keyfile: file:PATH, env:NAME, or the value in
    LOGAD_SSL_KEY_PASSWORD."""

    def __post_init__(self) -> None:
        problem = security_problem(self)
        if problem:
            raise ValueError(problem)


SECURITY_FIELDS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_key_password",
)
"""KafkaSettings' security leaves: a process that names its bootstrap otherwise (simulate)
composes the section with `only(*SECURITY_FIELDS)`."""


def security_problem(k: KafkaSettings) -> str | None:
    """Why the security settings do not fit together (None when they do)."""
    sasl = k.security_protocol.startswith("SASL_")
    tls = k.security_protocol.endswith("SSL")
    proto = f"security_protocol {k.security_protocol}"
    given = [n for n in SECURITY_FIELDS[1:] if getattr(k, n) is not None]
    if sasl:
        missing = [
            n for n in ("sasl_mechanism", "sasl_username", "sasl_password") if n not in given
        ]
        if missing:
            return f"{proto} needs {', '.join(missing)}"
    elif stray := [n for n in given if n.startswith("sasl_")]:
        return f"{', '.join(stray)} given, but {proto} has no SASL login (use SASL_SSL)"
    if tls:
        if k.ssl_cafile is None:
            return f"{proto} needs ssl_cafile (the CA that signed the brokers' certificates)"
        if k.ssl_certfile is None and (k.ssl_keyfile or k.ssl_key_password):
            return "ssl_keyfile and ssl_key_password need ssl_certfile (the client certificate)"
    elif stray := [n for n in given if n.startswith("ssl_")]:
        return f"{', '.join(stray)} given, but {proto} has no TLS (use SSL or SASL_SSL)"
    return None


@dataclass(frozen=True)
class TopicSettings:
    """Topics

    The topic serve reads, the ones it writes, and what it does at start when they do not
    exist (docs/operations.md, "Topics")."""

    input_topic: str = "logad.events"
    """Topic of LogEvent JSON messages, keyed by session id."""
    scores_topic: str = "logad.scores"
    """Topic for one Score per window, keyed by session id."""
    alerts_topic: str = "logad.alerts"
    """Topic for an Alert per window over the bundle's threshold."""
    dlq_topic: str = "logad.events.dlq"
    """Dead-letter topic for messages that fail to decode."""
    create_topics: bool = True
    """Create the scores, alerts and dead-letter topics at start when they do not exist
    (off: a missing one stops serve with an error). The input topic is never created:
    serve waits for it."""
    topic_partitions: int = 3
    """Partitions of each topic serve creates."""
    topic_replication: int = 1
    """Replication factor of each topic serve creates (at most the number of brokers; 3 is
    usual on a production cluster)."""
    input_topic_check_ms: int = 1_000
    """While the input topic does not exist, how often serve asks the brokers for it; it
    subscribes once the topic is there."""

    def __post_init__(self) -> None:
        topics = [self.input_topic, self.scores_topic, self.alerts_topic, self.dlq_topic]
        if len(set(topics)) != len(topics):
            raise ValueError("input, scores, alerts and dlq topics must all differ")
        _positive(self, "topic_partitions", "topic_replication", "input_topic_check_ms")


@dataclass(frozen=True)
class ConsumerSettings:
    """Consumer group

    How the input topic is polled, and how often offsets are committed behind the scores."""

    group_id: str = "logad"
    """Consumer group id."""
    poll_timeout_ms: int = 100
    """Longest wait of one poll for new records."""
    poll_max_records: int = 10_000
    """Most records returned by one poll."""
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    """Most bytes one fetch request brings back per partition."""
    max_poll_interval_ms: int = 300_000
    """The group evicts a consumer that does not poll for this long."""
    session_timeout_ms: int = 10_000
    """The group evicts a consumer whose heartbeats stop for this long."""
    heartbeat_interval_ms: int = 3_000
    """Heartbeat period (well under session_timeout_ms)."""
    commit_interval_ms: int = 1_000
    """How often safe offsets are committed."""
    commit_metadata_max_bytes: int = 4_096
    """Room for commit metadata (the broker's offset.metadata.max.bytes); it lists scored
    windows the commit cuts through."""

    def __post_init__(self) -> None:
        _positive(self, "poll_timeout_ms", "poll_max_records", "max_partition_fetch_bytes")
        _positive(self, "max_poll_interval_ms", "session_timeout_ms", "heartbeat_interval_ms")
        _positive(self, "commit_interval_ms")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.poll_timeout_ms >= self.max_poll_interval_ms:
            raise ValueError("poll_timeout_ms must be below max_poll_interval_ms")
        if self.commit_metadata_max_bytes < 0:
            raise ValueError("commit_metadata_max_bytes must be >= 0")


@dataclass(frozen=True)
class PublishSettings:
    """Publishing

    How scores, alerts and dead letters are produced."""

    linger_ms: int = 5
    """Producer linger before sending a batch of scores."""
    exactly_once: bool = False
    """Publish results and commit offsets in one transaction per input partition; read
    results with isolation_level=read_committed (adds latency)."""
    transaction_timeout_ms: int = 60_000
    """The broker aborts a transaction left open this long."""

    def __post_init__(self) -> None:
        _positive(self, "transaction_timeout_ms")
        if self.linger_ms < 0:
            raise ValueError("linger_ms must be >= 0")


@dataclass(frozen=True)
class DeadLetterSettings:
    """Dead letters

    What goes to the dead-letter topic besides undecodable records, how big a dead letter
    may be, and how a failed send is retried (docs/operations.md, "Dead letters")."""

    max_future_skew_ms: int = 300_000
    """An event dated more than this far ahead of the wall clock is dead-lettered: it would
    move its partition's watermark past every session open there."""
    dlq_max_value_bytes: int = 64 * 1024
    """A dead letter's value (and key) is cut to this many bytes; headers carry the
    original size and sha256. Keeps the record under the producer's 1 MiB request limit."""
    dlq_retry_initial_ms: int = 100
    """First wait before a failed dead-letter send is retried; it doubles each time."""
    dlq_retry_max_ms: int = 5_000
    """Longest wait between retries of a failed dead-letter send."""

    def __post_init__(self) -> None:
        _positive(self, "max_future_skew_ms", "dlq_retry_initial_ms", "dlq_retry_max_ms")
        # Key and value at this size each, plus headers, stay under 1 MiB.
        if not 1 <= self.dlq_max_value_bytes <= 256 * 1024:
            raise ValueError("dlq_max_value_bytes must be in 1..262144")
        if self.dlq_retry_max_ms < self.dlq_retry_initial_ms:
            raise ValueError("dlq_retry_max_ms must be >= dlq_retry_initial_ms")


@dataclass(frozen=True)
class SessionizerSettings:
    """Sessionizer

    How events are grouped into session windows (stream/serve/sessionizer.py)."""

    gap_ms: int = 30_000
    """Inactivity gap, in event time, that closes a session."""
    max_events: int = MAX_EVENTS
    """A window holding this many events is emitted at once; the session goes on."""
    max_duration_ms: int = 3_600_000
    """A window spanning more than this much event time is closed; the session goes on."""
    idle_timeout_ms: int = 60_000
    """Wall clock: a partition with no event for this long flushes its open sessions."""
    max_open_sessions: int = 100_000
    """Past this, the least recently active open session is flushed (emitted, not dropped)."""
    allowed_lateness_ms: int = 0
    """The watermark trails the highest event time by this much, so events that arrive
    this far out of order (clock skew between producers) still join their session."""
    max_closed_sessions: int = 100_000
    """How many closed sessions are remembered to recognise late events."""

    def __post_init__(self) -> None:
        for name in ("gap_ms", "max_duration_ms", "idle_timeout_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sessionizer setting {name} must be > 0")
        if not 1 <= self.max_events <= MAX_EVENTS:
            raise ValueError(f"sessionizer setting max_events must be in 1..{MAX_EVENTS}")
        if self.max_open_sessions < 1:
            raise ValueError("sessionizer setting max_open_sessions must be >= 1")
        if self.allowed_lateness_ms < 0:
            raise ValueError("sessionizer setting allowed_lateness_ms must be >= 0")
        if self.max_closed_sessions < 0:
            raise ValueError("sessionizer setting max_closed_sessions must be >= 0")


@dataclass(frozen=True)
class BatchSettings:
    """Batching

    How closed windows are gathered into scoring batches, and how many may be in flight."""

    max_batch_wait_ms: int = 50
    """Longest a window waits for its batch to fill."""
    length_buckets: tuple[int, ...] = (32, 64, 128, 256, MAX_TOKENS)
    """Window lengths (in tokens) at which batches are bucketed."""
    queue_max_windows: int = 32_768
    """Windows in flight (batching, scoring, awaiting acks) before partitions are paused."""

    def __post_init__(self) -> None:
        _positive(self, "queue_max_windows")
        if self.max_batch_wait_ms < 0:
            raise ValueError("max_batch_wait_ms must be >= 0")
        if not self.length_buckets or list(self.length_buckets) != sorted(set(self.length_buckets)):
            raise ValueError("length_buckets must be strictly increasing")
        if self.length_buckets[0] < 3 or self.length_buckets[-1] != MAX_TOKENS:
            raise ValueError(f"length_buckets must start at >= 3 and end at {MAX_TOKENS}")


@dataclass(frozen=True)
class ModelRuntimeSettings:
    """Model runtime

    Threads, process and cache of the model that `logad serve` scores with."""

    score_threads: int = 0
    """CPU threads for the model (0 = every core the process may use but one, left to the
    consume loop, shared among the model_processes; at least 1 each)."""
    score_threads_idle: int = 0
    """CPU threads for the model while the consume loop is idle (its last poll brought no
    records, as in the tail of a backlog; 0 = every core the process may use; never fewer
    than score_threads; the model in a thread only)."""
    model_processes: int = 0
    """Score in this many child processes (stream/serve/model_process.py), each with its own
    copy of the model, batches spread over them, so the model never waits for the consume
    loop's GIL (0 = in a thread of serve's process). On a CPU, one per core scores fastest
    (docs/performance.md); each costs one model's memory and a start-up."""
    switch_interval_ms: float = 0.2
    """Python's GIL switch interval while serving (its default is 5): the model thread gets
    the GIL back after each torch op sooner while the consume loop runs."""
    score_cache_size: int = 100_000
    """Model outputs memoized by (model version, window events), reused for repeated
    windows; LRU, cleared on model switch (0 = off)."""
    adaptive_threshold: bool = False
    """Judge windows by a threshold refitted online from the scores (DSPOT-style:
    stream/serve/adaptive_threshold.py), started from the bundle's tail fit and budget,
    instead of the bundle's fixed threshold. Needs a bundle trained with threshold_method
    pot (others keep their fixed threshold, with a warning). State is per process and
    restarts with it and on reload."""
    adaptive_refit_every: int = 100
    """With adaptive_threshold: refit the tail after this many new scores above its initial
    threshold (a refit takes tens of milliseconds in the scoring thread)."""
    adaptive_drift_depth: int = 0
    """With adaptive_threshold: follow a drifting level of the scores, the mean of this many
    recent normal ones (DSPOT's depth; 0: no drift term)."""

    def __post_init__(self) -> None:
        if min(self.score_threads, self.score_threads_idle, self.model_processes) < 0:
            raise ValueError("score_threads, score_threads_idle and model_processes must be >= 0")
        if not 0 < self.switch_interval_ms <= 1000:
            raise ValueError("switch_interval_ms must be in (0, 1000]")
        if self.score_cache_size < 0:
            raise ValueError("score_cache_size must be >= 0")
        if self.adaptive_refit_every < 1 or self.adaptive_drift_depth < 0:
            raise ValueError("adaptive_refit_every must be >= 1, adaptive_drift_depth >= 0")


@dataclass(frozen=True)
class MetricsSettings:
    """Metrics and health"""

    metrics_port: int = 9108
    """Port of the /metrics, /healthz and /readyz endpoint (0 = off)."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint binds to: this host only by default; 0.0.0.0 (every
    interface) for a kubelet's probes or a Prometheus on another host."""
    health_stale_s: float = 30.0
    """/healthz fails when the consume loop has not ticked for this long."""

    def __post_init__(self) -> None:
        if not 0 <= self.metrics_port <= 65_535:
            raise ValueError(f"metrics_port out of range: {self.metrics_port}")
        if self.health_stale_s <= 0:
            raise ValueError("health_stale_s must be positive")


@dataclass(frozen=True)
class ServeSettings:
    """Every knob of `logad serve`, built from defaults < file < LOGAD_* env < flags."""

    model: Path | None = field(default=None, metadata=REQUIRED)
    """Model bundle directory, or a registry directory with a 'current' pointer."""
    reload_check_s: float = 5.0
    """How often a registry's 'current' pointer is checked (0 = never)."""
    hand_back: bool = False
    """On shutdown, leave open windows to whoever reads the partition next (the commit
    stays before them, so they are re-read whole) instead of flushing them as cut windows;
    avoids the cut and continuation windows a restart makes. A partition revoke (a
    rebalance) always hands its open windows back."""
    archive_dir: Path | None = None
    """Append every scored window, as a Session line with its score, to
    DIR/preprocessed_logs_YYYY-MM-DD.jsonl, and mark days complete (.done) as the watermark
    passes them (unset = no archive)."""
    max_new_templates: int = 10_000
    """Templates serve may mine from raw lines beyond the model's; past that, a raw line that
    fits no template gets the id T0 (the model reads it as unknown, as it would a new
    template), and logad_raw_lines_over_cap counts it. Bounds memory against a flood of lines
    unlike each other."""
    kafka: KafkaSettings = field(default=KafkaSettings())
    topics: TopicSettings = field(default=TopicSettings())
    consumer: ConsumerSettings = field(default=ConsumerSettings())
    publish: PublishSettings = field(default=PublishSettings())
    dead_letters: DeadLetterSettings = field(default=DeadLetterSettings())
    sessionizer: SessionizerSettings = field(default=SessionizerSettings())
    batching: BatchSettings = field(default=BatchSettings())
    scoring: ScorerSettings = field(default=ScorerSettings())
    runtime: ModelRuntimeSettings = field(default=ModelRuntimeSettings())
    metrics: MetricsSettings = field(default=MetricsSettings())
    signing: BundleKeySettings = field(default=BundleKeySettings())

    def __post_init__(self) -> None:
        if self.model is None:
            raise ConfigError("no model: pass --model BUNDLE_OR_REGISTRY (or set LOGAD_MODEL)")
        if self.reload_check_s < 0:
            raise ValueError("reload_check_s must be >= 0")
        if self.max_new_templates < 0:
            raise ValueError("max_new_templates must be >= 0")
        # The wait for the input topic ticks /healthz once per check.
        if self.topics.input_topic_check_ms >= self.metrics.health_stale_s * 1000:
            raise ValueError("input_topic_check_ms must be below health_stale_s")
