"""Build one frozen, typed settings object from a file, then the environment, then flags.

Each process (serve, train, ...) declares a frozen dataclass of its knobs with defaults.
`build_settings` layers, lowest first: defaults < config file (TOML or JSON) <
`LOGAD_<FIELD>` environment variables < explicit command-line flags.

A process's settings may hold *sections*: fields whose type is itself a frozen settings
dataclass, declared once and composed by every process that needs them:

    @dataclass(frozen=True)
    class ServeSettings:
        model: Path | None = field(default=None, metadata=REQUIRED)
        sessionizer: SessionizerSettings = field(default=SessionizerSettings())

A section's fields (its *leaves*) stay flat everywhere a user meets them: the flag is
`--gap-ms`, the variable `LOGAD_GAP_MS`, and a config file may give `gap_ms = 1` at the top
or inside a `[sessionizer]` table. So leaf names must be unique across a process's sections.
The section's default instance gives the process its own defaults, and `only(...)` in the
field's metadata exposes some leaves only, the others keeping the default's values.

Each field's docstring (the string literal under it) is its help text, for the flags
(`schemas.runtime.settings_flags`) and the configuration reference (`settings_docs`).

A field typed `Secret | None` (`schemas.runtime.secret`) is read from `file:PATH` or
`env:NAME`, or as a literal from its own LOGAD_ variable only, and prints as `***`.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import inspect
import itertools
import os
import textwrap
import tomllib
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson

from schemas.errors import ConfigError
from schemas.runtime.coerce import coerce
from schemas.runtime.secret import mask_secrets

__all__ = [
    "ENV_PREFIX",
    "REQUIRED",
    "Leaf",
    "Section",
    "build_settings",
    "coerce",
    "field_docs",
    "leaves",
    "only",
    "read_config_file",
    "sections",
    "settings_for_log",
    "shown",
]

T = TypeVar("T")

ENV_PREFIX = "LOGAD_"
_ONLY = "logad.only"
_SHOWN = "logad.shown"


def only(*names: str) -> dict[str, Any]:
    """Field metadata for a section of which the process exposes only the leaves `names`
    (as flags, variables and keys); the others keep the default instance's values:
    `field(default=SessionizerSettings(idle_timeout_ms=...), metadata=only("gap_ms"))`."""
    return {_ONLY: names}


def shown(text: str) -> dict[str, Any]:
    """Field metadata: --help and the docs spell the field's default as `text`."""
    return {_SHOWN: text}


REQUIRED = shown("required")
"""Field metadata of a setting the process cannot run without (its default is None; the
class's `__post_init__` says how to give it): `field(default=None, metadata=REQUIRED)`."""


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One setting as users meet it: key, flag, environment variable."""

    name: str
    type: Any
    default: Any
    """This process's default (`dataclasses.MISSING` when the field has none)."""
    doc: str
    shown: str | None = None
    """How --help and the docs spell the default, when not by its value."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


@dataclasses.dataclass(frozen=True)
class Section:
    """The leaves one settings class contributes to a process. `name` is the section field's
    name (the config file's table), None for the process class's own fields."""

    name: str | None
    cls: type
    leaves: tuple[Leaf, ...]
    default: Any = None
    """The section's default instance (None for the process class itself)."""

    @property
    def title(self) -> str:
        return _doc_parts(self.cls)[0] or (self.name or self.cls.__name__)

    @property
    def description(self) -> str:
        return _doc_parts(self.cls)[1]


def _doc_parts(cls: type) -> tuple[str, str]:
    """(title, description) from a class docstring: its first line, then the rest."""
    doc = cls.__dict__.get("__doc__") or ""
    if doc.startswith(cls.__name__ + "("):  # the signature dataclasses makes up
        return "", ""
    lines = inspect.cleandoc(doc).split("\n", 1)
    rest = " ".join(lines[1].split()) if len(lines) > 1 else ""
    return lines[0].strip().rstrip("."), rest


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def sections(cls: type) -> tuple[Section, ...]:
    """The process class's own leaves, then each section's, in declaration order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    own: list[Leaf] = []
    found: list[Section] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if not _is_section(tp):
            own.append(_leaf(f, tp, _default(f), docs))
            continue
        default = _default(f)
        if not isinstance(default, tp):
            raise TypeError(f"{cls.__name__}.{f.name}: a section needs a default {tp.__name__}")
        found.append(_section(f.name, tp, default, f.metadata.get(_ONLY)))
    result = (Section(None, cls, tuple(own)), *found)
    names = [leaf.name for s in result for leaf in s.leaves]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TypeError(f"{cls.__name__}: settings named twice across sections: {twice}")
    clash = sorted({s.name for s in found if s.name} & set(names))
    if clash:  # a config file's `name = ...` would be ambiguous
        raise TypeError(f"{cls.__name__}: sections named like settings: {clash}")
    return result


def _section(name: str, cls: type, default: Any, exposed: tuple[str, ...] | None) -> Section:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(exposed or ()) - set(fields))
    if unknown:
        raise TypeError(f"section {name}: {cls.__name__} has no fields {unknown}")
    out = []
    for f in fields.values():
        if _is_section(hints[f.name]):
            # Flags stay flat: a section inside a section keeps its default, never exposed.
            if exposed is None or f.name in exposed:
                raise TypeError(f"section {name}: {cls.__name__}.{f.name} nests a section")
            continue
        if exposed is None or f.name in exposed:
            out.append(_leaf(f, hints[f.name], getattr(default, f.name), docs))
    return Section(name, cls, tuple(out), default)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _leaf(f: dataclasses.Field[Any], tp: Any, default: Any, docs: Mapping[str, str]) -> Leaf:
    return Leaf(f.name, tp, default, docs.get(f.name, ""), f.metadata.get(_SHOWN))


def leaves(cls: type) -> dict[str, Leaf]:
    """Every setting a process exposes, by name (its config key)."""
    return {leaf.name: leaf for s in sections(cls) for leaf in s.leaves}


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into a mapping of setting (or section) name to value."""
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
    return {_key(k): v for k, v in data.items()}


def _key(name: object) -> str:
    return str(name).replace("-", "_")


def _unknown(name: str, known: Iterable[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown setting '{name}' in {where}{hint}")


def _file_values(cls: type, path: Path) -> Iterator[tuple[str, Any]]:
    """(leaf, value) pairs of a config file: flat keys, and keys inside a section's table."""
    by_section = {s.name: {leaf.name for leaf in s.leaves} for s in sections(cls) if s.name}
    flat = leaves(cls)
    seen: set[str] = set()
    where = f"config file {path}"
    for key, value in read_config_file(path).items():
        if key in by_section and isinstance(value, dict):
            items = [(_key(k), v) for k, v in value.items()]
            for k, _ in items:
                if k not in by_section[key]:
                    known = [f"{key}.{n}" for n in by_section[key]]
                    raise _unknown(f"{key}.{k}", known, where)
        elif key in flat:
            items = [(key, value)]
        else:
            raise _unknown(key, [*flat, *by_section], where)
        for k, v in items:
            if k in seen:
                raise ConfigError(f"setting '{k}' is given twice in {where}")
            seen.add(k)
            yield k, v


def build_settings(
    cls: type[T],
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Layer defaults < file < LOGAD_* env < flags (None flags are 'not given')."""
    known = leaves(cls)
    values: dict[str, Any] = {}
    env = os.environ if environ is None else environ
    if config_file is not None:
        for k, v in _file_values(cls, config_file):
            values[k] = coerce(v, known[k].type, k, environ=env)
    for name, leaf in known.items():
        if leaf.env in env:
            # A secret's own variable may hold its value: `schemas.runtime.secret`.
            value = env[leaf.env]
            values[name] = coerce(value, leaf.type, leaf.env, environ=env, literal_secret=True)
    for k, v in (flags or {}).items():
        if v is None:
            continue
        if k not in known:
            raise _unknown(k, known, "flags")
        values[k] = coerce(v, known[k].type, known[k].flag, environ=env)
    return _assemble(cls, values)


def _assemble(cls: type[T], values: Mapping[str, Any]) -> T:
    """The settings object from leaf values; each section's `__post_init__` checks its own."""
    top: dict[str, Any] = {}
    layout = sections(typing.cast(type, cls))
    try:
        for s in layout:
            given = {leaf.name: values[leaf.name] for leaf in s.leaves if leaf.name in values}
            if s.name is None:
                top.update(given)
            else:
                top[s.name] = dataclasses.replace(s.default, **given) if given else s.default
        return cls(**top)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def settings_for_log(settings: object) -> dict[str, Any]:
    """The effective settings as a plain dict (a section as a dict of its own), for one log
    line at start. Every `Secret` is `***`, whatever its field is called: secrets are masked
    by their type, not guessed from names."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):  # type: ignore[arg-type]
        v = getattr(settings, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out[f.name] = settings_for_log(v)
            continue
        out[f.name] = str(v) if isinstance(v, Path) else mask_secrets(v)
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Each settings field's docstring (the string under it): its help in --help and docs."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # defined where no source is kept (exec, a REPL)
        return {}
    tree = ast.parse(textwrap.dedent(source))
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
