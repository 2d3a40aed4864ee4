"""Build one frozen, typed settings object from a file, then the environment, then flags.

Each process (serve, train, ...) declares a frozen dataclass of its knobs with defaults.
`build_settings` layers, lowest first: defaults < config file (TOML or JSON) <
`LOGAD_<FIELD>` environment variables < explicit command-line flags.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import itertools
import os
import textwrap
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson

from schemas.errors import ConfigError

T = TypeVar("T")

ENV_PREFIX = "LOGAD_"
_SECRET_WORDS = ("password", "secret", "token_key", "sasl")


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a flat mapping of setting name to value."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:]}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _unknown(name: str, known: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown setting '{name}' in {where}{hint}")


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a file/env/flag value to the field's declared type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (
            isinstance(value, str) and value.lower() in ("", "none", "null")
        )
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], name)
    if origin is typing.Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"setting '{name}' must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(coerce(i.strip() if isinstance(i, str) else i, args[0], name) for i in items)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
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
    except (TypeError, ValueError):
        tname = getattr(tp, "__name__", str(tp))
        raise ConfigError(f"setting '{name}' must be {tname}, got {value!r}") from None
    return value


def build_settings(
    cls: type[T],
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Layer defaults < file < LOGAD_* env < flags (None flags are 'not given')."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    known = sorted(fields)
    values: dict[str, Any] = {}
    if config_file is not None:
        for k, v in read_config_file(config_file).items():
            if k not in fields:
                raise _unknown(k, known, f"config file {config_file}")
            values[k] = coerce(v, fields[k], k)
    env = os.environ if environ is None else environ
    for name, tp in fields.items():
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = coerce(env[key], tp, key)
    for k, v in (flags or {}).items():
        if v is None:
            continue
        if k not in fields:
            raise _unknown(k, known, "flags")
        values[k] = coerce(v, fields[k], "--" + k.replace("_", "-"))
    try:
        return cls(**values)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def settings_for_log(settings: object) -> dict[str, Any]:
    """The effective settings as a plain dict, secrets redacted, for one log line at start."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        v = getattr(settings, f.name)
        if any(w in f.name for w in _SECRET_WORDS) and v:
            v = "***"
        out[f.name] = str(v) if isinstance(v, Path) else v
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Each settings field's docstring (the string under it), for its flag's help text.

    Keeping the help in the dataclass makes it the one source of truth for flags and README.
    """
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for a, b in itertools.pairwise(body):
        if (
            isinstance(a, ast.AnnAssign)
            and isinstance(a.target, ast.Name)
            and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)
            and isinstance(b.value.value, str)
        ):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def add_settings_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    help: Mapping[str, str] | None = None,
    *,
    names: Iterable[str] | None = None,
    metavars: Mapping[str, str] | None = None,
    shown: Mapping[str, str] | None = None,
) -> None:
    """A `--field-name` flag for each field of the settings dataclass `cls` (or just `names`).

    Every flag defaults to None, so a flag not given leaves the config file's or the
    environment's value standing (`build_settings` coerces the strings). Booleans get
    `--x/--no-x`, Literal types their choices. The help is `help[name]` (else the field's
    docstring) followed by the default, which `shown[name]` may spell out instead.
    """
    docs = help if help is not None else field_docs(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names if names is not None else fields:
        tp = hints[name]
        text = docs.get(name, "")
        if "default:" not in text:
            default = (shown or {}).get(name) or _show_default(fields[name].default)
            text = f"{text} (default: {default})".strip()
        text = text.replace("%", "%%")  # argparse formats help with %
        flag = "--" + name.replace("_", "-")
        if tp is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
            continue
        choices = _literal_choices(tp)
        metavar = None if choices else (metavars or {}).get(name) or _metavar(tp)
        parser.add_argument(
            flag, dest=name, default=None, choices=choices, metavar=metavar, help=text
        )


def settings_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags parsed for `cls`'s fields (None where not given), for `build_settings`."""
    return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}


def _show_default(value: object) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _literal_choices(tp: Any) -> tuple[Any, ...] | None:
    for t in (tp, *typing.get_args(tp)):
        if typing.get_origin(t) is typing.Literal:
            return typing.get_args(t)
    return None


def _metavar(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and args else tp
    if base is Path:
        return "PATH"
    if base is bool:
        return "true|false"
    if base is int:
        return "N"
    if base is float:
        return "X"
    if typing.get_origin(base) is tuple:
        return "N,N,..."
    return "STR"
