"""The `logad` console command. Each subcommand lives in its own module, which exposes
`register(subparsers)`; the parser it adds sets `func=run`, where `run(args) -> int`.

Errors that are the user's to fix (LogadError) print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from schemas.errors import LogadError
from schemas.runtime.console import err
from schemas.runtime.logs import configure_logging


def _command_modules() -> list[ModuleType]:
    # Imported lazily so `logad kafka status` does not pay for importing torch.
    from stream.cli import (
        demo,
        evaluate,
        kafka,
        models,
        parse,
        registry,
        replay,
        retrain,
        serve,
        simulate,
        train,
    )

    return [demo, kafka, simulate, parse, train, serve, replay, retrain, registry, models, evaluate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logad",
        description="logad: streaming log anomaly detection with a masked language model "
        "over log event ids. Run 'logad COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    parser.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSON log lines (default: JSON unless stderr is a terminal)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_json)
    try:
        rc: int = args.func(args)
        return rc
    except LogadError as e:
        err(f"logad: error: {e}")
        return 2
    except OSError as e:
        # A path given that cannot be read or written (a missing directory, no permission):
        # one line like any other input error; --log-level debug keeps the traceback.
        if args.log_level == "debug":
            raise
        where = f": {e.filename}" if e.filename else ""
        err(f"logad: error: {e.strerror or e}{where}")
        return 2
    except KeyboardInterrupt:
        err("logad: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
