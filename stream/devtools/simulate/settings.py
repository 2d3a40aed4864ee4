"""`SimulateSettings`: every knob of `logad simulate`, in sections the demo reuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from schemas.runtime.settings import only
from stream.devtools.simulate.drift import Drift
from stream.serve.settings import SECURITY_FIELDS, KafkaSettings

MEAN_EVENTS_PER_SESSION = 15
"""Measured over the simulator's traffic mix: turns an event rate into a session rate."""


@dataclass(frozen=True)
class DailySettings:
    """Daily files

    Simulated days written as daily session files (with their labels) for the trainer, or
    with --raw as raw log files for logad parse."""

    days_dir: Path | None = None
    """Write daily files preprocessed_logs_YYYY-MM-DD.jsonl into this directory (with
    --raw, log files raw/app-YYYY-MM-DD.log)."""
    days: int = 3
    """Number of daily files to write."""
    sessions_per_day: int = 2_000
    """Sessions in each daily file."""
    start_date: str | None = None
    """First day, YYYY-MM-DD (default: DAYS days before today). On a topic too: event
    times start at its midnight UTC (default: now)."""

    def __post_init__(self) -> None:
        for name in ("days", "sessions_per_day"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.start_date is not None:
            try:
                date.fromisoformat(self.start_date)
            except ValueError:
                raise ValueError(
                    f"start_date must be YYYY-MM-DD, got {self.start_date!r}"
                ) from None


@dataclass(frozen=True)
class LiveSettings:
    """Kafka topic

    Simulated traffic produced to a topic as LogEvent messages, each event's attrs carrying
    its session's label and anomaly kind; with --raw, raw events (a message and no event_id)
    keyed by trace id."""

    bootstrap: str | None = None
    """Produce to Kafka at HOST:PORT[,HOST:PORT...] instead of writing files."""
    topic: str = "logad.events"
    """Topic to produce LogEvent messages to (key = session id)."""
    rate: float = 0.0
    """Events per second to produce (0 = as fast as possible)."""
    sessions: int = 1_000
    """Number of sessions to produce."""
    malformed: int = 0
    """Malformed messages to mix in, for dead-letter tests."""
    session_interval_ms: float | None = None
    """Mean event-time gap between session starts (default: 15000*SPEED/RATE, or 10 when
    RATE is 0)."""
    speed: float = 1.0
    """With RATE: event time passes SPEED times as fast as the wall clock (60: an hour of
    traffic a minute)."""

    def __post_init__(self) -> None:
        for name in ("sessions", "malformed", "rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if self.session_interval_ms is not None and self.session_interval_ms < 0:
            raise ValueError("session_interval_ms must be >= 0")

    def interval_ms(self) -> float:
        if self.session_interval_ms is not None:
            return self.session_interval_ms
        if self.rate > 0:
            return MEAN_EVENTS_PER_SESSION * 1000 * self.speed / self.rate
        return 10.0


@dataclass(frozen=True)
class TrafficSettings:
    """Traffic"""

    anomaly_rate: float = 0.0
    """Fraction of sessions that carry an injected, labelled anomaly."""
    seed: int = 0
    """Random seed: the same seed and settings give the same traffic."""
    raw: bool = False
    """Raw text instead of event ids: Spring Boot console log lines with
    [app,traceId,spanId] (one file a day, DIR/raw/app-YYYY-MM-DD.log, for logad parse), and
    on a topic LogEvents with the message and no event_id, keyed by trace id."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.anomaly_rate <= 1.0:
            raise ValueError(f"anomaly_rate must be in [0, 1], got {self.anomaly_rate}")


def _midnight_ms(day: str) -> int:
    d = date.fromisoformat(day)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class DriftSettings:
    """Drift

    A new version of order-manager rolls out: it words three steps of creating an order
    anew (new event ids order.checkout.start, order.lines.check, order.outbox.append in
    place of order.create.start, order.items.validate, order.event.publish) and caches a new
    order once its transaction commits. Labels and anomalies are unchanged. For a closed
    loop's soak: does the nightly retrain learn the new normal?"""

    drift_date: str | None = None
    """First day (YYYY-MM-DD, UTC) the new version serves requests, in daily files and on a
    topic alike (unset = no drift)."""
    drift_ramp_days: int = 1
    """Days the rollout takes: on its k-th day the new version serves k/DRIFT_RAMP_DAYS of
    order-manager's requests, and all of them from then on."""

    def __post_init__(self) -> None:
        if self.drift_ramp_days < 1:
            raise ValueError(f"drift_ramp_days must be >= 1, got {self.drift_ramp_days}")
        if self.drift_date is not None:
            try:
                date.fromisoformat(self.drift_date)
            except ValueError:
                raise ValueError(
                    f"drift_date must be YYYY-MM-DD, got {self.drift_date!r}"
                ) from None

    def drift(self) -> Drift | None:
        """The rollout these settings describe; None without a drift date."""
        if self.drift_date is None:
            return None
        return Drift(_midnight_ms(self.drift_date), self.drift_ramp_days)


@dataclass(frozen=True)
class SimulateSettings:
    """Every knob of `logad simulate`: daily files (days_dir) or a topic (bootstrap)."""

    daily: DailySettings = field(default=DailySettings())
    live: LiveSettings = field(default=LiveSettings())
    traffic: TrafficSettings = field(default=TrafficSettings())
    drift: DriftSettings = field(default=DriftSettings())
    kafka: KafkaSettings = field(
        # The topic's bootstrap is `bootstrap` above; the connection's security as serve's.
        default=KafkaSettings(client_id="logad-simulate"),
        metadata=only(*SECURITY_FIELDS),
    )

    def __post_init__(self) -> None:
        if self.daily.days_dir is None and self.live.bootstrap is None:
            raise ValueError(
                "give either --days-dir DIR (daily files) or --bootstrap HOST:PORT (a topic)"
            )
