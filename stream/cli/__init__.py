"""The `logad` console command. Each subcommand lives in its own module, whose
`register(subparsers)` adds its parser through `stream.cli.command.command_parser`; every
one then runs the same way: parse -> settings -> logging -> run -> exit code
(`stream.cli.command.execute`).

Errors that are the user's to fix (LogadError) print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from schemas.errors import LogadError
from schemas.runtime.console import err
from stream.cli.command import add_logging_flags, execute


def _command_modules() -> list[ModuleType]:
    # Imported lazily so `logad kafka status` does not pay for importing torch.
    from stream.cli import (
        config_docs,
        console,
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

    return [
        demo,
        kafka,
        simulate,
        parse,
        train,
        serve,
        console,
        replay,
        retrain,
        registry,
        models,
        evaluate,
        config_docs,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logad",
        description="logad: streaming log anomaly detection with a masked language model "
        "over log event ids. Run 'logad COMMAND --help' for a command's options; "
        "docs/configuration.md lists every setting.",
    )
    add_logging_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return execute(args)
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
