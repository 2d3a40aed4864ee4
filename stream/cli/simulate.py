"""`logad simulate`: simulated Spring Cloud traffic, to daily files or to a Kafka topic.

    logad simulate --days-dir DIR --days N [--sessions-per-day N] [--anomaly-rate R] ...
    logad simulate --bootstrap HOST:PORT --topic T [--rate EVENTS_PER_S] [--sessions N]
                   [--start-date YYYY-MM-DD] [--speed X] ...
    ... --raw    raw log lines instead of event ids

Daily files carry each session's label; on the topic every event carries
`attrs = {"label": 0|1, "anomaly": kind}`. With `--raw`, days are Spring Boot console
logs DIR/raw/app-YYYY-MM-DD.log (for `logad parse --session-key trace_id`), and topic
messages are raw events: the message, no event_id, keyed by trace id. The simulator is
stream/devtools/simulate/.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from datetime import UTC, date, datetime

import structlog
from aiokafka.errors import KafkaError

from schemas.errors import ConfigError
from schemas.runtime.settings import settings_for_log
from stream.cli.command import Subparsers, command_parser, settings_from_args
from stream.devtools.simulate.outputs import produce, write_days
from stream.devtools.simulate.settings import SimulateSettings
from stream.serve.kafka_io import kafka_failure
from stream.serve.kafka_logs import kafka_log_filter

log = structlog.get_logger(__name__)


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "simulate",
        help="generate simulated Spring Cloud traffic into daily files or a Kafka topic",
        description="Simulate a Spring Cloud system: client requests through an API gateway, "
        "Eureka lookups, manager services and their database queries, plus Eureka "
        "registrations, heartbeats and gateway health checks. Anomalies (db_timeout, "
        "no_instance, out_of_order, unknown_event, truncated) are injected at --anomaly-rate "
        "and labelled. With --days-dir, writes daily files for the trainer; with --bootstrap, "
        "produces events to a topic, event times from --start-date's midnight UTC (default: "
        "now), running --speed times as fast as the wall clock at --rate. With --raw, writes "
        "what the services would log instead (Spring Boot console lines with "
        "[app,traceId,spanId], each event worded in one of two or three phrasings): log "
        "files DIR/raw/app-YYYY-MM-DD.log for "
        "'logad parse', or raw events without an event_id, keyed by trace id. With "
        "--drift-date, a new order-manager version (new event ids for some steps) rolls out "
        "from that day, over --drift-ramp-days.",
        settings=SimulateSettings,
        metavars={"start_date": "YYYY-MM-DD", "bootstrap": "HOST:PORT", "days_dir": "DIR"},
        build=build,
        run=run,
    )


def build(args: argparse.Namespace) -> SimulateSettings:
    """The settings, where the --days-dir or --bootstrap flag chooses the output."""
    if args.days_dir is not None and args.bootstrap is not None:
        raise ConfigError("give either --days-dir DIR or --bootstrap HOST:PORT, not both")
    settings: SimulateSettings = settings_from_args(args, SimulateSettings)
    if args.bootstrap is not None:  # the flag beats a days_dir from the config file or env
        daily = dataclasses.replace(settings.daily, days_dir=None)
        settings = dataclasses.replace(settings, daily=daily)
    return settings


def live_start_ms(start_date: str | None, now_s: float) -> int:
    """Where a topic's event times start: --start-date's midnight UTC, else now."""
    if start_date is None:
        return int(now_s * 1000)
    day = date.fromisoformat(start_date)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def run(args: argparse.Namespace, settings: SimulateSettings) -> int:
    log.info("simulate_settings", **settings_for_log(settings))
    # Daily files win when both come from the file or environment (LOGAD_BOOTSTRAP is
    # shared with `logad serve`, so it is often set).
    if settings.daily.days_dir is not None:
        write_days(
            settings.daily,
            settings.traffic,
            settings.daily.days_dir,
            date.today(),
            settings.drift.drift(),
        )
        return 0
    try:
        start_ms = live_start_ms(settings.daily.start_date, time.time())
        with kafka_log_filter():  # a broker outage is a few lines, not aiokafka's thousands
            drift = settings.drift.drift()
            asyncio.run(produce(settings.live, settings.traffic, start_ms, settings.kafka, drift))
    except KafkaError as e:
        raise kafka_failure(str(settings.live.bootstrap), e) from None
    return 0
