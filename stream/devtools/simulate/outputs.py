"""Where simulated traffic goes: daily files for the trainer (session files of event ids,
or raw log files for `logad parse`), or a Kafka topic at a rate (events with event ids, or
raw events)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog
from aiokafka import AIOKafkaProducer

from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.runtime.console import out
from stream.devtools.simulate.drift import Drift
from stream.devtools.simulate.rawlog import merged_lines, raw_event
from stream.devtools.simulate.settings import (
    MEAN_EVENTS_PER_SESSION,
    DailySettings,
    LiveSettings,
    TrafficSettings,
)
from stream.devtools.simulate.templates import ANOMALY_KINDS
from stream.devtools.simulate.traffic import (
    SimSession,
    generate_sessions,
    interleave,
    malformed_message,
    simulate_day,
)
from stream.serve.kafka_logs import watch_client
from stream.serve.kafka_security import client_options, start_client
from stream.serve.settings import KafkaSettings

log = structlog.get_logger(__name__)

PROGRESS_EVERY_S = 5.0
_PLAINTEXT = KafkaSettings(client_id="logad-simulate")

RAW_DIR = "raw"
"""Where raw log files go under the days directory."""


def raw_file_name(day: date) -> str:
    """One log a day of all the services, merged in time order (as a log shipper would
    collect them), so that `logad parse` meets each trace's lines in their order."""
    return f"app-{day.isoformat()}.log"


def day_sessions(
    traffic: TrafficSettings, day: date, n: int, drift: Drift | None = None
) -> list[SimSession]:
    """One day's `n` sessions, as `write_days` writes them: one generator per day, so a
    day's traffic does not depend on how many days came before."""
    rng = random.Random(f"{traffic.seed}:{day.isoformat()}")
    start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return simulate_day(rng, start_ms, n, traffic.anomaly_rate, drift=drift)


def write_days(
    daily: DailySettings,
    traffic: TrafficSettings,
    days_dir: Path,
    today: date,
    drift: Drift | None = None,
) -> list[Path]:
    """Write `daily.days` daily files, each with a `.done` marker (raw traffic: raw log files
    under RAW_DIR); return their paths."""
    first = (
        date.fromisoformat(daily.start_date)
        if daily.start_date
        else today - timedelta(days=daily.days)
    )
    raw = traffic.raw
    out_dir = days_dir / RAW_DIR if raw else days_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    kinds: Counter[str] = Counter()
    total = 0
    for i in range(daily.days):
        day = first + timedelta(days=i)
        sessions = day_sessions(traffic, day, daily.sessions_per_day, drift)
        if raw:
            path = out_dir / raw_file_name(day)
            lines = write_raw_log(path, sessions)
        else:
            path = out_dir / daily_file_name(day)
            write_sessions(path, (s.to_session() for s in sessions))
            path.with_name(path.name + DONE_SUFFIX).touch()
        n = len(sessions)
        day_kinds = Counter(s.anomaly for s in sessions if s.anomaly)
        kinds += day_kinds
        total += n
        paths.append(path)
        what = f"{lines} lines of {n} sessions" if raw else f"{n} sessions"
        out(f"wrote {path}: {what}, {sum(day_kinds.values())} anomalous")
    out(f"simulated {total} sessions over {daily.days} day(s) into {out_dir}; " + _kinds(kinds))
    return paths


def write_raw_log(path: Path, sessions: list[SimSession]) -> int:
    """Write the sessions' raw lines, in time order; return the number of lines."""
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for line in merged_lines(sessions):
            fh.write(line)
            fh.write("\n")
            n += 1
    tmp.replace(path)
    return n


def _kinds(kinds: Counter[str]) -> str:
    if not kinds:
        return "no anomalies"
    parts = ", ".join(f"{k}={kinds[k]}" for k in ANOMALY_KINDS if kinds[k])
    return f"{sum(kinds.values())} anomalous ({parts})"


def live_sessions(
    live: LiveSettings, traffic: TrafficSettings, start_ms: int, drift: Drift | None = None
) -> Iterator[SimSession]:
    """The sessions `messages` streams, in the order generated (the same every time)."""
    rng = random.Random(traffic.seed)
    yield from generate_sessions(
        rng, live.sessions, start_ms, live.interval_ms(), traffic.anomaly_rate, drift=drift
    )


def anomaly_kinds(
    live: LiveSettings, traffic: TrafficSettings, start_ms: int, drift: Drift | None = None
) -> dict[str, str]:
    """Session id as the scores name it (the trace id, for raw traffic) -> anomaly kind, for
    every anomalous session `messages` streams."""
    return {
        s.trace_id if traffic.raw else s.session_id: s.anomaly
        for s in live_sessions(live, traffic, start_ms, drift)
        if s.anomaly
    }


def messages(
    live: LiveSettings,
    traffic: TrafficSettings,
    start_ms: int,
    kinds: Counter[str],
    drift: Drift | None = None,
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs in event-time order, malformed ones mixed in at random places;
    `kinds` counts the anomalies by kind as they go. Raw traffic's events are raw events
    keyed by trace id, the others LogEvents keyed by session id."""
    raw = traffic.raw

    def counted() -> Iterator[SimSession]:
        for s in live_sessions(live, traffic, start_ms, drift):
            if s.anomaly:
                kinds[s.anomaly] += 1
            yield s

    spread = max(live.malformed, live.sessions * MEAN_EVENTS_PER_SESSION)
    where = sorted(
        random.Random(f"{traffic.seed}:malformed").choices(range(spread), k=live.malformed)
    )
    bad = 0
    for i, event in enumerate(interleave(counted())):
        while bad < len(where) and where[bad] <= i:
            yield f"malformed-{bad}".encode(), malformed_message(bad)
            bad += 1
        yield raw_event(event) if raw else (event.session_id.encode(), event.encode())
    for j in range(bad, len(where)):
        yield f"malformed-{j}".encode(), malformed_message(j)


async def produce(
    live: LiveSettings,
    traffic: TrafficSettings,
    start_ms: int,
    kafka: KafkaSettings = _PLAINTEXT,
    drift: Drift | None = None,
) -> dict[str, int]:
    """Produce the simulated stream to the topic, rate-limited; return counts by kind of
    message. Event times start at `start_ms`; `kafka` gives the connection's security."""
    assert live.bootstrap is not None
    producer = AIOKafkaProducer(
        bootstrap_servers=live.bootstrap,
        client_id=kafka.client_id,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        **client_options(kafka),
    )
    watch_client(producer)
    try:
        await start_client(producer, kafka, live.bootstrap)
    except BaseException:
        await producer.stop()  # release the half-open client before reporting
        raise
    kinds: Counter[str] = Counter()
    sent = malformed = 0
    t0 = last_progress = time.monotonic()
    try:
        pending: list[asyncio.Future[object]] = []
        for key, value in messages(live, traffic, start_ms, kinds, drift):
            pending.append(await producer.send(live.topic, value=value, key=key))
            sent += 1
            if key.startswith(b"malformed-"):
                malformed += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)  # surfaces delivery errors, bounds memory
                pending.clear()
            if live.rate > 0 and sent % 64 == 0:
                ahead = sent / live.rate - (time.monotonic() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            now = time.monotonic()
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                log.info(
                    "simulate_progress",
                    sent=sent,
                    events_per_s=round(sent / (now - t0)),
                    topic=live.topic,
                )
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    elapsed = time.monotonic() - t0
    events = sent - malformed
    out(
        f"produced {events} events of {live.sessions} sessions ({_kinds(kinds)}) and "
        f"{malformed} malformed messages to {live.topic} in {elapsed:.1f} s "
        f"({events / max(elapsed, 1e-9):.0f} events/s)"
    )
    return {"events": events, "malformed": malformed, "anomalous": sum(kinds.values())}
