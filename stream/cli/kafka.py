"""`logad kafka start|stop|status`: a local single-node Kafka broker for development and demos.

`start` prints only the bootstrap address on stdout, so `BOOT=$(logad kafka start)` works.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from schemas.runtime.console import out
from schemas.runtime.settings import build_settings, settings_for_log
from stream.cli.command import Subparsers, command_parser
from stream.devtools import broker

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KafkaBrokerSettings:
    """Where the local broker listens and keeps its files (env: LOGAD_KAFKA_PORT, ...)."""

    kafka_port: int = broker.DEFAULT_PORT
    """PLAINTEXT port on 127.0.0.1; also names the default data dir."""
    kafka_data_dir: Path | None = None
    """Broker files (config, Kafka logs, broker.log, pid); None: <cache>/broker-<port>."""
    kafka_start_timeout_s: float = 60.0
    """How long `start` waits for the broker to answer a metadata request."""

    def __post_init__(self) -> None:
        if not 1 <= self.kafka_port <= 65535:
            raise ValueError(f"kafka_port must be 1..65535, got {self.kafka_port}")
        if self.kafka_start_timeout_s <= 0:
            raise ValueError(f"kafka_start_timeout_s must be > 0, got {self.kafka_start_timeout_s}")


FLAGS = {
    "kafka_port": "--port",
    "kafka_data_dir": "--data-dir",
    "kafka_start_timeout_s": "--timeout",
}
"""The flag of each setting (shorter than the settings' names, which the environment uses)."""

_ACTIONS = {
    "start": "start the broker in the background and print its bootstrap address",
    "stop": "stop the broker (SIGTERM, then SIGKILL after 20 s)",
    "status": "say whether the broker runs (exit code 0 if it does, 1 if not)",
}


def _broker_flags(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        default_dir = f"{broker.cache_dir()}/broker-PORT ($LOGAD_CACHE_DIR or ~/.cache/logad)"
        p.add_argument(
            "--port",
            dest="kafka_port",
            type=int,
            default=None,
            help=f"broker port (default: {broker.DEFAULT_PORT})",
        )
        p.add_argument(
            "--data-dir",
            dest="kafka_data_dir",
            type=Path,
            default=None,
            help=f"broker data dir (default: {default_dir})",
        )
        if name == "start":
            p.add_argument(
                "--timeout",
                dest="kafka_start_timeout_s",
                type=float,
                default=None,
                help="seconds to wait for the broker to answer (default: 60)",
            )

    return add


def _settings(args: argparse.Namespace) -> KafkaBrokerSettings:
    flags = {name: getattr(args, name, None) for name in FLAGS}
    settings: KafkaBrokerSettings = build_settings(KafkaBrokerSettings, flags=flags)
    return settings


def register(subparsers: Subparsers) -> None:
    def actions(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)
        for name, text in _ACTIONS.items():
            command_parser(
                sub,
                name,
                help=text,
                description=text,
                arguments=_broker_flags(name),
                build=_settings,
                run=run,
            )

    command_parser(
        subparsers,
        "kafka",
        help="start, stop or inspect a local single-node Kafka broker (no Docker)",
        description=f"Run Apache Kafka {broker.KAFKA_VERSION} (KRaft, one node) on 127.0.0.1. "
        "The broker jars are fetched once with Maven into the cache dir; Java 17+ and Maven "
        "must be installed.",
        arguments=actions,
    )


def run(args: argparse.Namespace, settings: KafkaBrokerSettings) -> int:
    log.debug("kafka_settings", **settings_for_log(settings))
    port, data_dir = settings.kafka_port, settings.kafka_data_dir
    if args.kafka_action == "start":
        info = broker.start(port, data_dir, timeout_s=settings.kafka_start_timeout_s)
        out(info.bootstrap)
        return 0
    if args.kafka_action == "stop":
        info = broker.status(port, data_dir)
        if broker.stop(port, data_dir):
            out(f"stopped the Kafka broker at {info.bootstrap} (pid {info.pid})")
        else:
            out(f"no Kafka broker is running for {info.data_dir}")
        return 0
    info = broker.status(port, data_dir)
    if info.running:
        out(f"running  {info.bootstrap}  pid {info.pid}  data dir {info.data_dir}")
        return 0
    out(f"not running  (data dir {info.data_dir})")
    return 1
