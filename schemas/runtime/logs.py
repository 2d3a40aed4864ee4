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
from typing import Any

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

    def __init__(self) -> None:
        super().__init__(_Stderr())  # type: ignore[arg-type]


_configured: tuple[str, bool] = ("info", False)
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


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog once per process. `json=None` picks by whether stderr is a TTY.

    Libraries that log through the standard library (aiokafka, torch, transformers: see
    trainer/model.py) and Python warnings are rendered the same way, with a `logger` key, at
    WARNING and above (at DEBUG too when `level` is debug)."""
    global _configured
    use_json = (not sys.stderr.isatty()) if json is None else json
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
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    handler = _StdlibHandler()
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
