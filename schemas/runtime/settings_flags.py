"""Command-line flags generated from a settings dataclass, one `--leaf-name` per setting.

Every flag defaults to None, so a flag not given leaves the config file's or the
environment's value standing (`build_settings` coerces the strings). A section's flags form
an argument group in --help, titled from the section class's docstring.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas.runtime.secret import MASK, Secret
from schemas.runtime.settings import Leaf, leaves, sections

BOOL_METAVAR = "true|false"


def add_settings_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    metavars: Mapping[str, str] | None = None,
) -> None:
    """A flag for each setting of `cls`: its own fields on `parser`, each section's in an
    argument group. The help is the field's docstring followed by the default."""
    for s in sections(cls):
        if not s.leaves:
            continue
        target: Any = parser
        if s.name is not None:
            target = parser.add_argument_group(s.title, s.description or None)
        for leaf in s.leaves:
            _add_flag(target, leaf, (metavars or {}).get(leaf.name))


def _add_flag(target: Any, leaf: Leaf, metavar: str | None) -> None:
    text = leaf.doc
    if "default:" not in text:
        text = f"{text} (default: {show_default(leaf)})".strip()
    text = text.replace("%", "%%")  # argparse formats help with %
    if leaf.type is bool:
        # `--x` alone is true; `--x false` (or yes, no, 1, 0, on, off) gives the value,
        # which `build_settings` checks; `--no-x` is false.
        target.add_argument(
            leaf.flag,
            dest=leaf.name,
            nargs="?",
            const=True,
            default=None,
            metavar=BOOL_METAVAR,
            help=text,
        )
        target.add_argument(
            "--no-" + leaf.flag[2:],
            dest=leaf.name,
            action="store_const",
            const=False,
            default=None,
            help=argparse.SUPPRESS,
        )
        return
    choices = literal_choices(leaf.type)
    target.add_argument(
        leaf.flag,
        dest=leaf.name,
        default=None,
        choices=choices,
        metavar=None if choices else metavar or metavar_for(leaf.type),
        help=text,
    )


def settings_flags(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The flags parsed for `cls`'s settings (None where not given), for `build_settings`."""
    return {name: getattr(args, name, None) for name in leaves(cls)}


def show_default(leaf: Leaf) -> str:
    """The default as --help and the docs spell it."""
    value = leaf.default
    if leaf.shown is not None:
        return leaf.shown
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    for t in (tp, *typing.get_args(tp)):
        if typing.get_origin(t) is typing.Literal:
            return typing.get_args(t)
    return None


def metavar_for(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and args else tp
    if base is Path:
        return "PATH"
    if base is Secret:
        return "file:PATH|env:NAME"
    if base is bool:
        return BOOL_METAVAR
    if base is int:
        return "N"
    if base is float:
        return "X"
    if typing.get_origin(base) is tuple:
        return "N,N,..."
    return "STR"
