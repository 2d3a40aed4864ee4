"""`logad serve`: score a live Kafka stream of log events until SIGTERM or SIGINT.

Every ServeSettings field is a flag (`--gap-ms`), a LOGAD_* environment variable
(`LOGAD_GAP_MS`) and a config file key (`gap_ms`); flags win over the environment, which
wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import structlog
from aiokafka.errors import KafkaError

from schemas.runtime.settings import (
    add_settings_flags,
    build_settings,
    settings_flags,
    settings_for_log,
)
from stream.serve.app import serve
from stream.serve.kafka_io import kafka_failure
from stream.serve.settings import SERVE_HELP, ServeSettings

log = structlog.get_logger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="score a Kafka stream of log events and publish scores and alerts",
        description="Consume LogEvent messages, group them into session windows, score each "
        "window with the model, and publish one Score per window (and an Alert per anomalous "
        "window). Undecodable messages go to the dead-letter topic. Offsets are committed only "
        "behind acknowledged scores. Runs until SIGTERM or SIGINT, then flushes, scores and "
        "commits everything it holds and exits 0. With --model pointing at a registry, a change "
        "of its 'current' pointer hot-reloads the model.",
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="TOML or JSON file of settings (keys as below)"
    )
    add_settings_flags(parser, ServeSettings, SERVE_HELP, shown={"model": "required"})
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = settings_flags(args, ServeSettings)
    settings = build_settings(ServeSettings, config_file=args.config, flags=flags)
    log.info("serve_settings", **settings_for_log(settings))
    try:
        asyncio.run(_serve_until_signal(settings))
    except KafkaError as e:
        raise kafka_failure(settings.bootstrap, e) from None
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
