"""`logad demo`: run the whole system end to end on this machine (see stream/devtools/demo.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.runtime.settings import add_settings_flags, build_settings, settings_flags
from stream.devtools.demo import DemoSettings, run_demo

HELP = {
    "workdir": "directory for the demo's daily files, model, broker data and serve log",
    "days": "days of normal traffic to simulate for training",
    "sessions_per_day": "sessions in each simulated day",
    "preset": "model preset to train (tiny with --epochs 40 --lr 2e-3 --tokens-per-batch 2048: "
    "better detection in about 60% of the training time, see the README)",
    "epochs": "training epochs",
    "lr": "peak learning rate (higher than production's 2e-5: few steps; 2e-3 suits tiny)",
    "tokens_per_batch": "padded tokens per training batch",
    "live_sessions": "sessions of live traffic to stream through logad serve",
    "anomaly_rate": "fraction of live sessions carrying an injected, labelled anomaly",
    "rate": "live events per second",
    "seed": "random seed for simulation and training",
    "max_alerts_shown": "alerts printed in full (the rest are counted)",
    "timeout_s": "give up waiting for scores after this many seconds",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run everything end to end: Kafka, simulate, train, serve, live alerts",
        description="The main job on one machine: start a local Kafka, simulate days of normal "
        "traffic, train a small model, start logad serve, stream live traffic with injected "
        "anomalies, print the alerts as they arrive and a precision/recall summary, then stop "
        "everything it started.",
    )
    add_settings_flags(p, DemoSettings, HELP)
    p.add_argument("--config", type=Path, default=None, help="TOML or JSON file of settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    flags = settings_flags(args, DemoSettings)
    return run_demo(build_settings(DemoSettings, config_file=args.config, flags=flags))
