"""The project's error types. Each one renders as a single clear line for the CLI."""

from __future__ import annotations


class LogadError(Exception):
    """Base class: anything the CLI should report as one line, without a traceback."""


class DecodeError(LogadError):
    """A record could not be decoded. `field` names the offending field, if any."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(f"{field}: {reason}" if field else reason)


class ConfigError(LogadError):
    """A bad setting, config file or command-line value."""


class DataError(LogadError):
    """Bad or missing input data (a daily file, a date range with no data)."""


class BundleError(LogadError):
    """A model bundle is missing a file, fails verification or cannot load."""
