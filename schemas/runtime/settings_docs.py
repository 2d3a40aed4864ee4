"""A Markdown reference of every process's settings, made from the settings classes.

One table per section: key, flag, environment variable, type, default and help, the help
being the field's docstring. `stream.cli.config_docs` lists the processes and writes the
result to docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from schemas.runtime.coerce import type_name
from schemas.runtime.settings import ENV_PREFIX, Leaf, Section, sections
from schemas.runtime.settings_flags import show_default

_COLUMNS = ("key", "flag", "env", "type", "default", "help")


@dataclass(frozen=True)
class Process:
    """One command whose settings the reference lists."""

    command: str
    """How it is run, e.g. `logad serve`."""
    settings: type
    summary: str
    flags: Mapping[str, str] = field(default_factory=dict)
    """Flags spelled otherwise than `--leaf-name` (leaf -> flag)."""


def render_reference(processes: Sequence[Process], intro: str) -> str:
    """The whole page: `intro`, then a heading per process and a table per section."""
    parts = [intro.strip(), ""]
    for p in processes:
        parts += [f"## `{p.command}`", "", p.summary.strip(), ""]
        for s in sections(p.settings):
            if s.leaves:
                parts += _section(s, p)
    return "\n".join(parts).rstrip() + "\n"


def _section(s: Section, p: Process) -> list[str]:
    out: list[str] = []
    if s.name is not None:
        out += [f"### {s.title} (`[{s.name}]`)", ""]
        if s.description:
            out += [s.description, ""]
    out += ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    out += [_row(leaf, p.flags.get(leaf.name, leaf.flag)) for leaf in s.leaves]
    return [*out, ""]


def _row(leaf: Leaf, flag: str) -> str:
    cells = (
        f"`{leaf.name}`",
        f"`{flag}`",
        f"`{ENV_PREFIX}{leaf.name.upper()}`",
        type_name(leaf.type),
        f"`{show_default(leaf)}`",
        leaf.doc,
    )
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
