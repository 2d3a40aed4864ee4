"""The template set a trained bundle carries (its templates.json): found beside the data
`logad parse` wrote, or named with `--templates`; and, on a warm start, checked to extend the
parent bundle's set, since the model learned its ids (trainer/mining/lineage.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog

from schemas.bundle import TEMPLATES, read_bundle_templates
from schemas.errors import ConfigError, DataError
from schemas.templates import TemplateSet, read_templates
from schemas.vocab import SPECIALS, Vocab
from trainer.end_marker import END_EVENT
from trainer.mining.lineage import extension_error

log = structlog.get_logger(__name__)


def find_templates(given: Path | None, sources: Sequence[Path]) -> Path | None:
    """`given`, else the templates.json in a data directory (a directory given as a source,
    or the one a given file is in), else None. Two directories holding one are ambiguous."""
    if given is not None:
        if not given.is_file():
            raise DataError(f"no such templates file: {given}")
        return given
    dirs = dict.fromkeys(src if src.is_dir() else src.parent for src in sources)
    found = [d / TEMPLATES for d in dirs if (d / TEMPLATES).is_file()]
    if len(found) > 1:
        raise ConfigError(
            f"{found[0]} and {found[1]}: more than one templates.json beside the data; "
            "pass --templates FILE"
        )
    return found[0] if found else None


def bundle_templates(
    given: Path | None, sources: Sequence[Path], parent_bundle: Path | None
) -> TemplateSet | None:
    """The set the new bundle carries: the one found (see `find_templates`), which must
    extend the warm-start bundle's set when that has one; else the warm-start bundle's."""
    parent = read_bundle_templates(parent_bundle) if parent_bundle is not None else None
    path = find_templates(given, sources)
    if path is None:
        if parent is not None:
            log.info("bundle_templates", source=str(parent_bundle), templates=len(parent.templates))
        return parent
    templates = read_templates(path)
    if parent is not None and (why := extension_error(parent, templates)) is not None:
        raise ConfigError(
            f"{path} does not extend the templates of the bundle {parent_bundle}: {why} "
            "(template ids are never renumbered: extend its set, e.g. `logad parse "
            "--templates` with the bundle's templates.json)"
        )
    log.info("bundle_templates", source=str(path), templates=len(templates.templates))
    return templates


def check_coverage(templates: TemplateSet | None, vocab: Vocab) -> None:
    """Warn when the vocab holds event ids the set does not: a set from other data (serve
    would map raw lines to ids that mean something else to the model)."""
    if templates is None:
        return
    ids = {t.id for t in templates.templates}
    events = [e for e in vocab.tokens[len(SPECIALS) :] if e != END_EVENT]
    missing = [e for e in events if e not in ids]
    if missing:
        log.warning(
            "templates_miss_vocab_events",
            missing=len(missing),
            events=len(events),
            first=missing[:5],
            note="the data holds event ids its templates.json does not",
        )
