"""`logad serve`: score a live Kafka stream of log events until SIGTERM or SIGINT.

Every ServeSettings setting is a flag (`--gap-ms`), a LOGAD_* environment variable
(`LOGAD_GAP_MS`) and a config file key (`gap_ms`, or `gap_ms` in a `[sessionizer]` table);
flags win over the environment, which wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import structlog
from aiokafka.errors import KafkaError

from schemas.runtime.settings import settings_for_log
from stream.cli.command import Subparsers, command_parser
from stream.serve.app import serve
from stream.serve.kafka_io import kafka_failure
from stream.serve.kafka_logs import kafka_log_filter
from stream.serve.settings import ServeSettings

log = structlog.get_logger(__name__)


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "serve",
        help="score a Kafka stream of log events and publish scores and alerts",
        description="Consume LogEvent messages, group them into session windows, score each "
        "window with the model, and publish one Score per window (and an Alert per anomalous "
        "window). Undecodable messages go to the dead-letter topic. Offsets are committed only "
        "behind acknowledged scores. Runs until SIGTERM or SIGINT, then flushes, scores and "
        "commits everything it holds and exits 0. With --model pointing at a registry, a change "
        "of its 'current' pointer hot-reloads the model.",
        settings=ServeSettings,
        run=run,
    )


def run(args: argparse.Namespace, settings: ServeSettings) -> int:
    log.info("serve_settings", **settings_for_log(settings))
    try:
        # A broker outage is a few lines in the log, not aiokafka's thousands.
        with kafka_log_filter():
            asyncio.run(_serve_until_signal(settings))
    except KafkaError as e:
        raise kafka_failure(settings.kafka.bootstrap, e) from None
    return 0


async def _serve_until_signal(settings: ServeSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        log.info("shutdown_requested", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)
    await serve(settings, stop)
