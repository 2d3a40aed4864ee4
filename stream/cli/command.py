"""What every `logad` subcommand shares: its parser's `--config` and logging flags, and the
order it runs in: parse -> settings -> logging -> run(args, settings) -> exit code.

Settings are built before logging is configured and before any work starts, so a bad
flag, variable or config key is one error line at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

from schemas.runtime.logs import configure_logging
from schemas.runtime.settings import build_settings
from schemas.runtime.settings_flags import add_settings_flags, settings_flags

LOG_LEVELS = ("debug", "info", "warning", "error")

Run = Callable[[argparse.Namespace, Any], int]
"""A subcommand's work: (parsed arguments, its settings or None) -> exit code."""
Build = Callable[[argparse.Namespace], Any]
"""A subcommand's settings from its parsed arguments."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_logging_flags(parser: argparse.ArgumentParser, *, inherited: bool = False) -> None:
    """`--log-level`, `--log-json` and `--log-file`. On a subcommand (`inherited`) they may
    come after its name too; a flag not given there leaves the one given before it standing."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "--log-level",
        default=argparse.SUPPRESS if inherited else "info",
        choices=LOG_LEVELS,
        help="log verbosity (default: info)",
    )
    group.add_argument(
        "--log-json",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS if inherited else None,
        help="JSON log lines (default: JSON unless stderr is a terminal)",
    )
    group.add_argument(
        "--log-file",
        type=Path,
        metavar="FILE",
        default=argparse.SUPPRESS if inherited else None,
        help="append log lines (JSON) to FILE instead of stderr; errors still print "
        "one line on stderr (default: stderr)",
    )


def settings_from_args(args: argparse.Namespace, cls: type) -> Any:
    """`cls` built from defaults < `--config` < LOGAD_* environment < the parsed flags."""
    config: Path | None = getattr(args, "config", None)
    return build_settings(cls, config_file=config, flags=settings_flags(args, cls))


def command_parser(
    subparsers: Subparsers,
    name: str,
    *,
    help: str,
    description: str,
    run: Run | None = None,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    settings: type | None = None,
    build: Build | None = None,
    metavars: Mapping[str, str] | None = None,
) -> argparse.ArgumentParser:
    """A subcommand's parser: its own `arguments` first, then `--config` and a flag per
    setting of `settings` (grouped by section), then the logging flags."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=description)
    if arguments is not None:
        arguments(p)
    if settings is not None:
        p.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="TOML or JSON file of settings: the keys are the flags' names with _ for -, "
            "at the top or in their section's [table] (default: none)",
        )
        add_settings_flags(p, settings, metavars=metavars)
    add_logging_flags(p, inherited=True)
    if build is None and settings is not None:
        cls = settings

        def build(args: argparse.Namespace) -> Any:
            return settings_from_args(args, cls)

    p.set_defaults(run=run, build=build, settings_cls=settings)
    return p


def execute(args: argparse.Namespace, *, log_level: str | None = None) -> int:
    """Settings, then logging (at `log_level` when given, else the flag's), then the run."""
    settings = args.build(args) if args.build is not None else None
    # A parser made of one subcommand (tests) has no top-level logging flags: the defaults.
    level = log_level if log_level is not None else str(getattr(args, "log_level", "info"))
    configure_logging(level, getattr(args, "log_json", None), getattr(args, "log_file", None))
    rc: int = args.run(args, settings)
    return rc
