"""structlog set-up: a console renderer on a terminal, JSON lines otherwise.

Every event passes `mask_secret_values` before it is rendered, so a `Secret` (a password,
a key: `schemas.runtime.secret`) logged by mistake prints as `***` in JSON and on the
console alike. `add_record_filter` puts a filter on the handler of the libraries' stdlib
records (serve's rate limit of aiokafka's outage messages is one); it survives a later
`configure_logging`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any

import structlog

from schemas.runtime.secret import mask_secrets


class _Stderr:
    """Looks up sys.stderr at each write, so a replaced stream (pytest capture) is followed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler that renders libraries' stdlib log records (aiokafka, torch) like ours."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)


_log_file: IO[str] | None = None


_configured: tuple[str, bool] = ("info", False)
_configured_file: Path | None = None
_record_filters: list[logging.Filter] = []


def mask_secret_values(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every Secret in the event (nested too) becomes `***`."""
    return {k: mask_secrets(v) for k, v in event_dict.items()}


def add_record_filter(f: logging.Filter) -> None:
    """Filter the stdlib records (aiokafka's, torch's) before they are rendered; kept across
    later `configure_logging` calls. Adding the same filter twice is a no-op."""
    if f in _record_filters:
        return
    _record_filters.append(f)
    for h in logging.getLogger().handlers:
        if isinstance(h, _StdlibHandler):
            h.addFilter(f)


def remove_record_filter(f: logging.Filter) -> None:
    if f in _record_filters:
        _record_filters.remove(f)
    for h in logging.getLogger().handlers:
        h.removeFilter(f)


def _open_log_file(path: Path | None) -> Any:
    """Where log lines go: stderr, or `path` appended to (line-buffered, JSON lines)."""
    global _log_file
    if _log_file is not None:
        _log_file.close()
        _log_file = None
    if path is None:
        return _Stderr()
    path.parent.mkdir(parents=True, exist_ok=True)
    _log_file = path.open("a", buffering=1, encoding="utf-8")
    return _log_file


def configure_logging(
    level: str = "info", json: bool | None = None, file: Path | None = None
) -> None:
    """Configure structlog once per process. `json=None` picks by whether stderr is a TTY.
    With `file`, log lines (JSON) are appended to it instead of going to stderr, so a
    terminal keeps only what the command prints and its progress bars.

    Libraries that log through the standard library (aiokafka, torch, transformers: see
    trainer/model.py) and Python warnings are rendered the same way, with a `logger` key, at
    WARNING and above (at DEBUG too when `level` is debug)."""
    global _configured, _configured_file
    _configured_file = file
    use_json = True if file is not None else (not sys.stderr.isatty()) if json is None else json
    sink = _open_log_file(file)
    _configured = (level, use_json)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    ours = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            mask_secret_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(ours),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )
    handler = _StdlibHandler(sink)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
                structlog.processors.format_exc_info,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                mask_secret_values,
                renderer,
            ],
        )
    )
    for f in _record_filters:
        handler.addFilter(f)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(ours if ours == logging.DEBUG else max(ours, logging.WARNING))
    # `warnings.warn` (torch's, transformers') would print a bare line: a record instead.
    # Off first: a `warnings.catch_warnings` since the last call may have undone it.
    logging.captureWarnings(False)
    logging.captureWarnings(True)


def logging_settings() -> tuple[str, bool]:
    """The (level, json) last configured: a child process logs as its parent does."""
    return _configured


def logging_file() -> Path | None:
    """The log file last configured (None: stderr), for child processes to append to."""
    return _configured_file


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
