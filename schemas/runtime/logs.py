"""structlog set-up: a console renderer on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog


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


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog once per process. `json=None` picks by whether stderr is a TTY.

    Libraries that log through the standard library (aiokafka, torch) are rendered the same
    way, with a `logger` key, at WARNING and above (at DEBUG too when `level` is debug)."""
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
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(ours if ours == logging.DEBUG else max(ours, logging.WARNING))


def logging_settings() -> tuple[str, bool]:
    """The (level, json) last configured: a child process logs as its parent does."""
    return _configured


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
