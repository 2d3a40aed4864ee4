"""Field validators shared by the record decoders; each raises DecodeError naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from schemas.errors import DecodeError

MAX_RECORD_BYTES = 1 << 20  # 1 MiB: anything bigger is not a log event
MAX_ID_CHARS = 512
MAX_TEXT_CHARS = 64 * 1024


def load_object(data: bytes | str, what: str) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(f"{what} is {len(data)} bytes, over the {MAX_RECORD_BYTES} limit")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def req(obj: dict[str, Any], name: str) -> Any:
    if name not in obj or obj[name] is None:
        raise DecodeError("missing required field", name)
    return obj[name]


def ident(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"must be a string, got {type(value).__name__}", name)
    if not value:
        raise DecodeError("must not be empty", name)
    if len(value) > MAX_ID_CHARS:
        raise DecodeError(f"longer than {MAX_ID_CHARS} characters", name)
    return value


def opt_text(value: Any, name: str, limit: int = MAX_TEXT_CHARS) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(f"must be a string, got {type(value).__name__}", name)
    if len(value) > limit:
        raise DecodeError(f"longer than {limit} characters", name)
    return value


def integer(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"must be an integer, got {type(value).__name__}", name)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise DecodeError(f"out of range: {value}", name)
    return value


def number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"must be a number, got {type(value).__name__}", name)
    return float(value)


def boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError(f"must be true or false, got {type(value).__name__}", name)
    return value


# Epoch milliseconds between 1970 and 2400: wide enough for any log, narrow enough to
# catch seconds-vs-milliseconds mistakes at the far end.
MAX_TS_MS = 13_569_465_600_000


def timestamp_ms(value: Any, name: str) -> int:
    """Accept epoch milliseconds or an ISO-8601 string with a zone; return epoch ms."""
    if isinstance(value, str):
        if len(value) > 64:
            raise DecodeError("timestamp string too long", name)
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise DecodeError(f"not an ISO-8601 timestamp: {value!r}", name) from None
        if dt.tzinfo is None:
            raise DecodeError(f"ISO-8601 timestamp needs a zone: {value!r}", name)
        try:
            ms = round(dt.timestamp() * 1000)
        except (OverflowError, OSError, ValueError):
            raise DecodeError(f"timestamp out of range: {value!r}", name) from None
        return integer(ms, name, 0, MAX_TS_MS)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return integer(value, name, 0, MAX_TS_MS)


def opt_ts(value: Any, name: str) -> int | None:
    return None if value is None else timestamp_ms(value, name)


def id_list(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise DecodeError(f"must be a list, got {type(value).__name__}", name)
    out = []
    for i, v in enumerate(value):
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # numeric template ids are common; the vocab keys are strings
        out.append(ident(v, f"{name}[{i}]"))
    return tuple(out)


def opt_gaps(value: Any, name: str, n_events: int) -> tuple[int, ...] | None:
    """Per-event gaps in ms (time since the session's previous event): one per event,
    non-negative integers, the first 0 (no event before it in the record)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise DecodeError(f"must be a list, got {type(value).__name__}", name)
    return check_gaps(
        tuple(integer(v, f"{name}[{i}]", 0) for i, v in enumerate(value)), name, n_events
    )


def check_gaps(gaps: tuple[int, ...], name: str, n_events: int) -> tuple[int, ...]:
    if len(gaps) != n_events:
        raise DecodeError(f"{len(gaps)} gaps for {n_events} events", name)
    if gaps and gaps[0] != 0:
        raise DecodeError(f"the first gap must be 0, got {gaps[0]}", name)
    # min() rather than a per-item check: the sessionizer builds one per window (decoding
    # has checked each item's type already).
    if gaps and min(gaps) < 0:
        raise DecodeError("gaps must be non-negative (milliseconds)", name)
    return gaps
