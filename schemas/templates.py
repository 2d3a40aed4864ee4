"""A mined template set on disk: `templates.json`, shared by the trainer (which mines and
extends it) and the stream (which matches live lines against it).

The file holds everything the miner needs to rebuild itself exactly: its parameters (the
masking rules among them, since a different mask gives different tokens) and, for each
template, the tree route it was filed under when it was created. Loading it and matching
gives the same ids as the miner that wrote it.

    {"format": "logad-templates", "version": 1,
     "params": {"depth": 4, "similarity": 0.5, "max_children": 100, "word_variants": 4,
                "mask_rules": [{"name": "uuid", "pattern": "..."}, ...]},
     "templates": [{"id": "T1", "template": "Receiving block <*> src: /<*> dest: /<*>",
                    "count": 3, "first_seen": "hdfs.log:1", "route": ["7", "Receiving"]},
                   ...]}

Ids are `T<n>`; once given, an id keeps its template identity for good (see
trainer/mining). Written atomically; JSON, never pickle.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DataError, DecodeError

FORMAT = "logad-templates"
VERSION = 1
ID_RE = re.compile(r"^T([1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class MaskRule:
    name: str
    """What the rule masks (`ipv4`, `uuid`, ...): names a rule in errors and overrides."""
    pattern: str
    """A Python regular expression; every match becomes `<*>` before tokenizing."""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "pattern": self.pattern}

    @classmethod
    def from_dict(cls, obj: Any) -> MaskRule:
        if not isinstance(obj, dict):
            raise DecodeError("a mask rule must be an object with name and pattern", "mask_rules")
        name = f.ident(f.req(obj, "name"), "mask_rules.name")
        pattern = f.req(obj, "pattern")
        if not isinstance(pattern, str):
            raise DecodeError("must be a string", f"mask_rules[{name}].pattern")
        return cls(name, pattern)


@dataclass(frozen=True, slots=True)
class MinerParams:
    """The miner's knobs as a template set records them (defaults live in trainer/mining)."""

    depth: int
    """Drain's tree depth: root, token count, then depth-2 leading tokens."""
    similarity: float
    """Least share of positions a line must fit (equal, or `<*>` in the template) to join
    a template."""
    max_children: int
    """Most children of one tree node; past it new tokens share the `<*>` child."""
    word_variants: int
    """Templates that may differ in one word before a new word there becomes `<*>`."""
    mask_rules: tuple[MaskRule, ...]
    """Masking rules, in the order they apply."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "similarity": self.similarity,
            "max_children": self.max_children,
            "word_variants": self.word_variants,
            "mask_rules": [r.to_dict() for r in self.mask_rules],
        }

    @classmethod
    def from_dict(cls, obj: Any) -> MinerParams:
        if not isinstance(obj, dict):
            raise DecodeError("must be an object", "params")
        rules = f.req(obj, "mask_rules")
        if not isinstance(rules, list):
            raise DecodeError("must be a list", "mask_rules")
        return cls(
            depth=f.integer(f.req(obj, "depth"), "depth", 3, 64),
            similarity=f.number(f.req(obj, "similarity"), "similarity"),
            max_children=f.integer(f.req(obj, "max_children"), "max_children", 2),
            word_variants=f.integer(f.req(obj, "word_variants"), "word_variants", 0),
            mask_rules=tuple(MaskRule.from_dict(r) for r in rules),
        )


@dataclass(frozen=True, slots=True)
class TemplateEntry:
    id: str
    """`T<n>`, given once and never reused or moved."""
    template: str
    """Tokens joined by single spaces; `<*>` marks a variable part."""
    count: int
    """Lines mined into this template so far."""
    first_seen: str | None
    """Where the first line came from (`file:line` or a timestamp), as the caller gave it."""
    route: tuple[str, ...]
    """The tree path it was filed under at creation (token count, then leading keys)."""

    @property
    def number(self) -> int:
        m = ID_RE.match(self.id)
        if m is None:  # from_dict checks; a hand-built entry may not have
            raise DecodeError(f"template id must look like T1, got {self.id!r}", "id")
        return int(m.group(1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "template": self.template,
            "count": self.count,
            "first_seen": self.first_seen,
            "route": list(self.route),
        }

    @classmethod
    def from_dict(cls, obj: Any) -> TemplateEntry:
        if not isinstance(obj, dict):
            raise DecodeError("a template must be an object", "templates")
        tid = f.ident(f.req(obj, "id"), "id")
        if not ID_RE.match(tid):
            raise DecodeError(f"must look like T1, got {tid!r}", "id")
        template = obj.get("template")
        if not isinstance(template, str):
            raise DecodeError("must be a string", f"{tid}.template")
        route = f.req(obj, "route")
        if not isinstance(route, list) or not route or not all(isinstance(k, str) for k in route):
            raise DecodeError("must be a non-empty list of strings", f"{tid}.route")
        return cls(
            id=tid,
            template=template,
            count=f.integer(f.req(obj, "count"), f"{tid}.count", 0),
            first_seen=f.opt_text(obj.get("first_seen"), f"{tid}.first_seen"),
            route=tuple(route),
        )


@dataclass(frozen=True, slots=True)
class TemplateSet:
    params: MinerParams
    templates: tuple[TemplateEntry, ...]
    """In id order."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "params": self.params.to_dict(),
            "templates": [t.to_dict() for t in self.templates],
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_dict(cls, obj: Any) -> TemplateSet:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise DecodeError(f'not a template set (no "format": "{FORMAT}")')
        if obj.get("version") != VERSION:
            raise DecodeError(f"unsupported version {obj.get('version')!r}", "version")
        items = f.req(obj, "templates")
        if not isinstance(items, list):
            raise DecodeError("must be a list", "templates")
        templates = tuple(TemplateEntry.from_dict(t) for t in items)
        check_ids(templates)
        return cls(MinerParams.from_dict(f.req(obj, "params")), templates)


def check_ids(templates: Sequence[TemplateEntry]) -> None:
    """Ids are unique and in increasing order (the order the tree must be rebuilt in)."""
    last = 0
    for t in templates:
        if t.number <= last:
            raise DecodeError(f"ids must be unique and increasing, {t.id} is not", "templates")
        last = t.number


def read_templates(path: Path) -> TemplateSet:
    """A template set from `path`; a bad file is one DataError line naming it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such templates file: {path}") from None
    try:
        return TemplateSet.from_dict(orjson.loads(raw))
    except orjson.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    except DecodeError as e:
        raise DataError(f"{path}: bad template set: {e}") from None


def write_templates(path: Path, templates: TemplateSet) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(templates.encode() + b"\n")
    tmp.replace(path)
