"""`logad demo`: run the whole system end to end on this machine (see stream/devtools/demo.py)."""

from __future__ import annotations

import argparse

from stream.cli.command import Subparsers, command_parser
from stream.devtools.demo import DemoSettings, run_demo


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "demo",
        help="run everything end to end: Kafka, simulate, parse, train, serve, live alerts",
        description="The main job on one machine: start a local Kafka, simulate days of normal "
        "traffic as raw Spring Boot logs, mine their templates (logad parse), train a small "
        "model, start logad serve, stream live raw events with injected anomalies, print the "
        "alerts as they arrive and a precision/recall summary, then stop everything it "
        "started. With --raw false the traffic is event ids throughout, with no parsing.",
        settings=DemoSettings,
        run=run,
    )


def run(args: argparse.Namespace, settings: DemoSettings) -> int:
    return run_demo(settings)
