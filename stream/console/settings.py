"""`ConsoleSettings`: every knob of `logad console`, the web page for alerts."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from schemas.runtime.settings import only
from stream.serve.settings import KafkaSettings, TopicSettings

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConsoleSettings:
    """Every knob of `logad console`: where it listens, what it reads and keeps, and the
    files it writes (acknowledgements, operator verdicts)."""

    host: str = "127.0.0.1"
    """Address the page is served on. The console has no login: anyone who can reach it
    can read the alerts and write verdicts, so it stays on this host unless told
    otherwise (0.0.0.0 serves every interface, and logs a warning)."""
    port: int = 8770
    """Port of the page (0 = any free port)."""
    window_minutes: float = 15.0
    """Minutes of alerts and scores kept in memory and shown; at start the console reads
    this far back in the topics."""
    max_alerts: int = 10_000
    """Most alerts kept, whatever their age (the oldest go first)."""
    max_scores: int = 200_000
    """Most scores kept for the distribution, whatever their age (the oldest go first)."""
    metrics_url: str | None = None
    """serve's Prometheus endpoint, e.g. http://127.0.0.1:9108/metrics: the pipeline panel
    (throughput, lag per partition, dead letters, model version) scrapes it (unset: no
    pipeline panel)."""
    scrape_interval_s: float = 5.0
    """How often metrics_url is scraped; rates are taken between scrapes."""
    registry: Path | None = None
    """Model registry directory: its promotions, rollbacks and decision records are shown,
    and its current bundle's templates name the event ids (unset: none)."""
    templates: Path | None = None
    """A templates.json (what `logad parse` writes) naming the event ids of raw logs (unset:
    the registry's current bundle's, when it has one)."""
    feedback: Path | None = None
    """Feedback file the 'mark normal' and 'confirm anomalous' buttons append verdicts to,
    for `logad retrain` (unset: the buttons are off)."""
    ack_file: Path | None = None
    """File that keeps acknowledged alert groups across restarts (unset: acknowledgements
    last as long as the console)."""
    poll_ms: int = 2_000
    """How often the page asks the console for news."""
    kafka: KafkaSettings = field(default=KafkaSettings(client_id="logad-console"))
    topics: TopicSettings = field(
        default=TopicSettings(), metadata=only("scores_topic", "alerts_topic")
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ValueError(f"port out of range: {self.port}")
        if self.window_minutes <= 0:
            raise ValueError("window_minutes must be positive")
        if self.max_alerts < 1 or self.max_scores < 1:
            raise ValueError("max_alerts and max_scores must be >= 1")
        if self.scrape_interval_s <= 0:
            raise ValueError("scrape_interval_s must be positive")
        if self.poll_ms < 100:
            raise ValueError("poll_ms must be >= 100")
        url = self.metrics_url
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"metrics_url must be an http:// or https:// URL, got {url!r}")

    @property
    def window_ms(self) -> int:
        return int(self.window_minutes * 60_000)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)
