"""`logad simulate`: simulated Spring Cloud traffic, to daily files or to a Kafka topic.

    logad simulate --days-dir DIR --days N [--sessions-per-day N] [--anomaly-rate R] ...
    logad simulate --bootstrap HOST:PORT --topic T [--rate EVENTS_PER_S] [--sessions N] ...

Daily files carry each session's label; on the topic every event carries
`attrs = {"label": 0|1, "anomaly": kind}`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.errors import ConfigError
from schemas.runtime.console import out
from schemas.runtime.settings import (
    add_settings_flags,
    build_settings,
    settings_flags,
    settings_for_log,
)
from stream.devtools.simulate import (
    ANOMALY_KINDS,
    SimSession,
    generate_sessions,
    interleave,
    malformed_message,
    simulate_day,
)
from stream.serve.kafka_io import kafka_failure

log = structlog.get_logger(__name__)

MEAN_EVENTS_PER_SESSION = 15
"""Measured over the simulator's traffic mix: turns an event rate into a session rate."""
PROGRESS_EVERY_S = 5.0

SIMULATE_HELP: dict[str, str] = {
    "days_dir": "write daily files preprocessed_logs_YYYY-MM-DD.jsonl into this directory",
    "days": "number of daily files to write",
    "sessions_per_day": "sessions in each daily file",
    "start_date": "first day, YYYY-MM-DD (default: DAYS days before today)",
    "bootstrap": "produce to Kafka at HOST:PORT[,HOST:PORT...] instead of writing files",
    "topic": "topic to produce LogEvent messages to (key = session id)",
    "rate": "events per second to produce (0 = as fast as possible)",
    "sessions": "number of sessions to produce",
    "malformed": "malformed messages to mix in, for dead-letter tests",
    "session_interval_ms": "mean event-time gap between session starts "
    f"(default: {MEAN_EVENTS_PER_SESSION}000/RATE, or 10 when RATE is 0)",
    "anomaly_rate": "fraction of sessions that carry an injected, labelled anomaly",
    "seed": "random seed: the same seed and settings give the same traffic",
}


@dataclass(frozen=True)
class SimulateSettings:
    days_dir: Path | None = None
    days: int = 3
    sessions_per_day: int = 2_000
    start_date: str | None = None
    bootstrap: str | None = None
    topic: str = "logad.events"
    rate: float = 0.0
    sessions: int = 1_000
    malformed: int = 0
    session_interval_ms: float | None = None
    anomaly_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.days_dir is None and self.bootstrap is None:
            raise ValueError(
                "give either --days-dir DIR (daily files) or --bootstrap HOST:PORT (a topic)"
            )
        for name in ("days", "sessions_per_day"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("sessions", "malformed", "rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0.0 <= self.anomaly_rate <= 1.0:
            raise ValueError(f"anomaly_rate must be in [0, 1], got {self.anomaly_rate}")
        if self.session_interval_ms is not None and self.session_interval_ms < 0:
            raise ValueError("session_interval_ms must be >= 0")
        if self.start_date is not None:
            try:
                date.fromisoformat(self.start_date)
            except ValueError:
                raise ValueError(
                    f"start_date must be YYYY-MM-DD, got {self.start_date!r}"
                ) from None

    def interval_ms(self) -> float:
        if self.session_interval_ms is not None:
            return self.session_interval_ms
        return MEAN_EVENTS_PER_SESSION * 1000 / self.rate if self.rate > 0 else 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="generate simulated Spring Cloud traffic into daily files or a Kafka topic",
        description="Simulate a Spring Cloud system: client requests through an API gateway, "
        "Eureka lookups, manager services and their database queries, plus Eureka "
        "registrations, heartbeats and gateway health checks. Anomalies (db_timeout, "
        "no_instance, out_of_order, unknown_event, truncated) are injected at --anomaly-rate "
        "and labelled. With --days-dir, writes daily files for the trainer; with --bootstrap, "
        "produces events to a topic.",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML or JSON file of settings (keys as below)"
    )
    add_settings_flags(
        parser,
        SimulateSettings,
        SIMULATE_HELP,
        metavars={"start_date": "YYYY-MM-DD", "bootstrap": "HOST:PORT", "days_dir": "DIR"},
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.days_dir is not None and args.bootstrap is not None:
        raise ConfigError("give either --days-dir DIR or --bootstrap HOST:PORT, not both")
    flags = settings_flags(args, SimulateSettings)
    settings = build_settings(SimulateSettings, config_file=args.config, flags=flags)
    if args.bootstrap is not None:  # the flag beats a days_dir from the config file or env
        settings = dataclasses.replace(settings, days_dir=None)
    log.info("simulate_settings", **settings_for_log(settings))
    # Daily files win when both come from the file or environment (LOGAD_BOOTSTRAP is
    # shared with `logad serve`, so it is often set).
    if settings.days_dir is not None:
        write_days(settings, settings.days_dir, date.today())
        return 0
    try:
        asyncio.run(produce(settings, int(time.time() * 1000)))
    except KafkaError as e:
        raise kafka_failure(str(settings.bootstrap), e) from None
    return 0


def write_days(settings: SimulateSettings, days_dir: Path, today: date) -> list[Path]:
    """Write `settings.days` daily files, each with a `.done` marker; return their paths."""
    first = (
        date.fromisoformat(settings.start_date)
        if settings.start_date
        else today - timedelta(days=settings.days)
    )
    days_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    kinds: Counter[str] = Counter()
    total = 0
    for i in range(settings.days):
        day = first + timedelta(days=i)
        # One generator per day, so a day's file does not depend on how many came before.
        rng = random.Random(f"{settings.seed}:{day.isoformat()}")
        start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        sessions = simulate_day(rng, start_ms, settings.sessions_per_day, settings.anomaly_rate)
        path = days_dir / daily_file_name(day)
        n = write_sessions(path, (s.to_session() for s in sessions))
        path.with_name(path.name + DONE_SUFFIX).touch()
        day_kinds = Counter(s.anomaly for s in sessions if s.anomaly)
        kinds += day_kinds
        total += n
        paths.append(path)
        out(f"wrote {path}: {n} sessions, {sum(day_kinds.values())} anomalous")
    out(f"simulated {total} sessions over {settings.days} day(s) into {days_dir}; " + _kinds(kinds))
    return paths


def _kinds(kinds: Counter[str]) -> str:
    if not kinds:
        return "no anomalies"
    parts = ", ".join(f"{k}={kinds[k]}" for k in ANOMALY_KINDS if kinds[k])
    return f"{sum(kinds.values())} anomalous ({parts})"


def _messages(
    settings: SimulateSettings, start_ms: int, kinds: Counter[str]
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs in event-time order, malformed ones mixed in at random places."""
    rng = random.Random(settings.seed)

    def counted() -> Iterator[SimSession]:
        for s in generate_sessions(
            rng, settings.sessions, start_ms, settings.interval_ms(), settings.anomaly_rate
        ):
            if s.anomaly:
                kinds[s.anomaly] += 1
            yield s

    spread = max(settings.malformed, settings.sessions * MEAN_EVENTS_PER_SESSION)
    where = sorted(
        random.Random(f"{settings.seed}:malformed").choices(range(spread), k=settings.malformed)
    )
    bad = 0
    for i, event in enumerate(interleave(counted())):
        while bad < len(where) and where[bad] <= i:
            yield f"malformed-{bad}".encode(), malformed_message(bad)
            bad += 1
        yield event.session_id.encode(), event.encode()
    for j in range(bad, len(where)):
        yield f"malformed-{j}".encode(), malformed_message(j)


async def produce(settings: SimulateSettings, start_ms: int) -> dict[str, int]:
    """Produce the simulated stream to the topic, rate-limited; return counts by kind of
    message. Event times start at `start_ms`."""
    assert settings.bootstrap is not None
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # release the half-open client before reporting
        raise
    kinds: Counter[str] = Counter()
    sent = malformed = 0
    t0 = last_progress = time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        for key, value in _messages(settings, start_ms, kinds):
            pending.append(await producer.send(settings.topic, value=value, key=key))
            sent += 1
            if key.startswith(b"malformed-"):
                malformed += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)  # surfaces delivery errors, bounds memory
                pending.clear()
            if settings.rate > 0 and sent % 64 == 0:
                ahead = sent / settings.rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                log.info(
                    "simulate_progress",
                    sent=sent,
                    events_per_s=round(sent / (now - t0)),
                    topic=settings.topic,
                )
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    elapsed = time.monotonic() - t0
    events = sent - malformed
    out(
        f"produced {events} events of {settings.sessions} sessions ({_kinds(kinds)}) and "
        f"{malformed} malformed messages to {settings.topic} in {elapsed:.1f} s "
        f"({events / max(elapsed, 1e-9):.0f} events/s)"
    )
    return {"events": events, "malformed": malformed, "anomalous": sum(kinds.values())}
