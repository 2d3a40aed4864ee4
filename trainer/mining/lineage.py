"""How template sets of one lineage relate: a later set *extends* an earlier one when every
id of the earlier set keeps its template, or a generalisation of it (positions turned `<*>`).

Ids are what a model learns, so they must never be renumbered: a bundle warm-started from
another must extend its set (`extension_error`), and serve, taking up a new bundle, keeps
the templates it mined past that bundle's set (`carry_forward`).
"""

from __future__ import annotations

import dataclasses

from schemas.templates import TemplateEntry, TemplateSet
from trainer.mining.tokens import PARAM


def generalises(wide: str, narrow: str) -> bool:
    """Whether template `wide` is `narrow`, or `narrow` with some positions turned `<*>`."""
    a, b = wide.split(), narrow.split()
    return len(a) == len(b) and all(x in (y, PARAM) for x, y in zip(a, b, strict=True))


def extension_error(parent: TemplateSet, child: TemplateSet) -> str | None:
    """Why `child` does not extend `parent` (the first parent id it lost or changed), or
    None when it does."""
    by_id = {t.id: t for t in child.templates}
    for t in parent.templates:
        c = by_id.get(t.id)
        if c is None:
            return f"it lacks {t.id} ({t.template!r})"
        if not generalises(c.template, t.template):
            return f"{t.id} was {t.template!r} and is {c.template!r}"
    return None


def carry_forward(new: TemplateSet, old: TemplateSet) -> tuple[TemplateSet, list[str]]:
    """`new`, plus what `old` holds beyond it: its templates numbered past `new`'s newest
    id, with their ids (ids that days already written may hold), and, for an id both hold,
    `old`'s template where it generalises `new`'s (so the lines it took keep their id).
    Also the ids both hold with templates where neither generalises the other: `new` wins
    there, and the caller should say so."""
    last = max((t.number for t in new.templates), default=0)
    wider = {t.id: t.template for t in old.templates}
    merged: list[TemplateEntry] = []
    disagree: list[str] = []
    for t in new.templates:
        w = wider.get(t.id)
        if w is not None and w != t.template:
            if generalises(w, t.template):
                t = dataclasses.replace(t, template=w)
            elif not generalises(t.template, w):
                disagree.append(t.id)
        merged.append(t)
    merged += [t for t in old.templates if t.number > last]
    return TemplateSet(new.params, tuple(merged)), disagree
