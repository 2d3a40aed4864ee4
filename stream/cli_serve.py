"""`logad serve`: score a live Kafka stream of log events until SIGTERM or SIGINT.

Every ServeSettings field is a flag (`--gap-ms`), a LOGAD_* environment variable
(`LOGAD_GAP_MS`) and a config file key (`gap_ms`); flags win over the environment, which
wins over the file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import typing
from pathlib import Path

import structlog
from aiokafka.errors import KafkaError

from schemas.errors import LogadError
from schemas.settings import build_settings, settings_for_log
from stream.serve import serve
from stream.settings import SERVE_HELP, ServeSettings

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
    hints = typing.get_type_hints(ServeSettings)
    for f in dataclasses.fields(ServeSettings):
        flag = "--" + f.name.replace("_", "-")
        text = SERVE_HELP[f.name] + f" (default: {_show(f.default, f.name == 'model')})"
        if hints[f.name] is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(flag, default=None, metavar=_metavar(hints[f.name]), help=text)
    parser.set_defaults(func=run)


def _show(value: object, required: bool) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if value is None:
        return "required" if required else "unset"
    return str(value)


def _metavar(tp: object) -> str:
    if tp in (Path, Path | None):
        return "PATH"
    if tp is int:
        return "N"
    if tp is float:
        return "SECONDS"
    if typing.get_origin(tp) is tuple:
        return "N,N,..."
    return "STR"


def run(args: argparse.Namespace) -> int:
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings)}
    settings = build_settings(ServeSettings, config_file=args.config, flags=flags)
    log.info("serve_settings", **settings_for_log(settings))
    try:
        asyncio.run(_serve_until_signal(settings))
    except KafkaError as e:
        raise LogadError(f"Kafka at {settings.bootstrap}: {type(e).__name__}: {e}") from None
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
