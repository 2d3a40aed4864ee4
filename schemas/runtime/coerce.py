"""Turn a value from a config file, the environment or a flag into a setting's declared type."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError
from schemas.runtime.secret import Secret, parse_secret

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def coerce(
    value: Any,
    tp: Any,
    name: str,
    *,
    environ: Mapping[str, str] | None = None,
    literal_secret: bool = False,
) -> Any:
    """Convert a file/env/flag value to the field's declared type, or raise ConfigError
    naming `name` (the key, variable or flag the value came from). A `Secret` is read from
    `file:PATH` or `env:NAME` (looked up in `environ`), or taken as given only where
    `literal_secret` (its own LOGAD_ variable): `schemas.runtime.secret`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (
            isinstance(value, str) and value.lower() in ("", "none", "null")
        )
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], name, environ=environ, literal_secret=literal_secret)
    if tp is Secret:
        return parse_secret(value, name, environ=environ, literal_ok=literal_secret)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"setting '{name}' must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(coerce(i.strip() if isinstance(i, str) else i, args[0], name) for i in items)
    try:
        return _scalar(value, tp)
    except (TypeError, ValueError):
        tname = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"setting '{name}' must be {tname}, got {value!r}") from None


def _scalar(value: Any, tp: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE:
            return True
        if isinstance(value, str) and value.lower() in _FALSE:
            return False
        raise ValueError
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float):
            raise ValueError
        return str(value)
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ValueError
        return Path(value)
    return value


def type_name(tp: Any) -> str:
    """A short name of a setting's type for help and docs: int, path, int list, 'a' | 'b'."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(inner) + (" | none" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is tuple:
        return f"{type_name(args[0])} list"
    if tp is Path:
        return "path"
    if tp is Secret:
        return "secret"
    return str(getattr(tp, "__name__", tp))
