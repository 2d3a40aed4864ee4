"""`logad console`: a web page for alerts, over serve's alerts and scores topics
(stream/console)."""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog
from aiokafka.errors import KafkaError

from schemas.runtime.console import out
from schemas.runtime.settings import settings_for_log
from stream.cli.command import Subparsers, command_parser
from stream.console.server import Console
from stream.console.settings import ConsoleSettings
from stream.serve.kafka_io import kafka_failure
from stream.serve.kafka_logs import kafka_log_filter

log = structlog.get_logger(__name__)


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "console",
        help="a web page for alerts: live alerts, sessions, scores, the pipeline",
        description="Serve a web page for on-call engineers at http://HOST:PORT/ (default "
        "http://127.0.0.1:8770/): the alerts of the last --window-minutes as they arrive, "
        "grouped by pattern (the same surprising events) with an Acknowledge button that "
        "hides a group; a session's events on a timeline coloured by their surprise, with "
        "what the model expected; the score distribution against the threshold and alerts "
        "per minute; serve's throughput, lag per partition, dead letters and model version "
        "(--metrics-url) and the registry's promotions and rollbacks (--registry). 'Mark "
        "normal' and 'confirm anomalous' append verdicts to --feedback for logad retrain. "
        "It reads the alerts and scores topics with no consumer group. It has NO LOGIN: it "
        "binds to 127.0.0.1 unless --host says otherwise, and warns when it does. Runs until "
        "SIGTERM or SIGINT.",
        settings=ConsoleSettings,
        run=run,
    )


def run(args: argparse.Namespace, settings: ConsoleSettings) -> int:
    log.info("console_settings", **settings_for_log(settings))
    try:
        with kafka_log_filter():  # a broker outage is a few lines, not aiokafka's thousands
            asyncio.run(_console_until_signal(settings))
    except KafkaError as e:
        raise kafka_failure(settings.kafka.bootstrap, e) from None
    return 0


async def _console_until_signal(settings: ConsoleSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    console = Console(settings)
    await console.start()
    where = "this host only" if settings.loopback else "every host that reaches it: NO LOGIN"
    out(f"logad console: {console.url} ({where}); Ctrl-C stops it")
    try:
        await console.wait(stop)
    finally:
        await console.stop()
