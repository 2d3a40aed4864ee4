"""Template texts that name event ids (`T12` -> "Completed <*> <*> in <*>ms"), for alerts
over raw logs: from a templates.json, or the one in a registry's current bundle."""

from __future__ import annotations

from pathlib import Path

import structlog

from schemas.bundle import TEMPLATES
from schemas.errors import LogadError
from schemas.registry import current_bundle_dir, is_registry
from schemas.templates import read_templates

log = structlog.get_logger(__name__)


def templates_path(templates: Path | None, registry: Path | None) -> Path | None:
    """The templates file to read: the one given, else the registry's current bundle's."""
    if templates is not None:
        return templates
    if registry is not None and is_registry(registry):
        try:
            found = current_bundle_dir(registry) / TEMPLATES
        except LogadError:
            return None
        return found if found.is_file() else None
    return None


def read_names(path: Path) -> dict[str, str]:
    """Event id -> template text."""
    return {t.id: t.template for t in read_templates(path).templates}


class Names:
    """The names of event ids, read again when the file (or the registry's current
    bundle) changes; a file given by the user must read, a registry's may fail quietly."""

    def __init__(self, templates: Path | None, registry: Path | None) -> None:
        self._templates = templates
        self._registry = registry
        self._source: tuple[Path, float] | None = None
        self.names: dict[str, str] = {}
        if templates is not None:
            self.names = read_names(templates)  # a bad file given stops the start
            self._source = (templates, templates.stat().st_mtime)

    def refresh(self) -> dict[str, str]:
        path = templates_path(self._templates, self._registry)
        if path is None:
            return self.names
        try:
            source = (path, path.stat().st_mtime)
            if source != self._source:
                self.names = read_names(path)
                self._source = source
                log.info("console_templates_read", path=str(path), templates=len(self.names))
        except (OSError, LogadError) as e:
            log.warning("console_templates_unreadable", path=str(path), error=str(e))
        return self.names
