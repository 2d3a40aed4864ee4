"""Raw events in `logad serve`: the template matcher that maps a message to its template id,
and how it follows the model.

The matcher starts from the bundle's template set, extended by the archive's templates.json
when there is one (the templates an earlier run mined, which days already archived hold by
id). A hot reload brings the new bundle's set; the new matcher keeps what the old one mined
past it (trainer/mining/lineage.py), so an id, once given, keeps its template. A bundle
without templates has no matcher: a raw event then goes to the dead-letter topic.

The matcher is used from the event loop only: the consume loop maps, the publisher names new
templates in alerts, and the archive snapshots the set when it marks a day complete.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from schemas.scores import Score
from schemas.templates import TemplateSet, read_templates
from stream.serve.archive import TEMPLATES_FILE
from trainer.mining.matcher import TemplateMatcher, with_new_templates

log = structlog.get_logger(__name__)


def archived_templates(archive_dir: Path | None) -> TemplateSet | None:
    """The set an earlier run archived (DIR/templates.json), if any."""
    path = archive_dir / TEMPLATES_FILE if archive_dir is not None else None
    return read_templates(path) if path is not None and path.is_file() else None


class RawEvents:
    def __init__(
        self,
        bundle: TemplateSet | None,
        archive_dir: Path | None = None,
        max_new: int | None = None,
    ) -> None:
        self._carried = archived_templates(archive_dir)
        """What an earlier matcher held: carried into the next one."""
        self._max_new = max_new
        self.matcher: TemplateMatcher | None = None
        self._over_cap_before = 0
        self.switch(bundle)

    @property
    def new_templates(self) -> int:
        """Templates the model does not know, mined from live lines (a /metrics gauge)."""
        return self.matcher.new_templates if self.matcher is not None else 0

    @property
    def over_cap(self) -> int:
        """Lines that got OVER_CAP, over every matcher so far (a /metrics counter)."""
        now = self.matcher.over_cap if self.matcher is not None else 0
        return self._over_cap_before + now

    def switch(self, bundle: TemplateSet | None) -> None:
        """Map with `bundle`'s templates from now on (None: raw events are dead letters)."""
        if self.matcher is not None:
            self._carried = self.matcher.to_set()
            self._over_cap_before += self.matcher.over_cap
        self.matcher = (
            TemplateMatcher(bundle, self._carried, max_new=self._max_new)
            if bundle is not None
            else None
        )
        log.info(
            "templates_loaded",
            bundle_templates=len(bundle.templates) if bundle is not None else 0,
            mined_before=self.matcher.new_templates if self.matcher is not None else 0,
        )

    def annotate(self, score: Score) -> Score:
        """`score` naming the new templates among its surprising events."""
        return with_new_templates(score, self.matcher)

    def snapshot(self) -> TemplateSet | None:
        """The set to archive: the bundle's and every template mined since."""
        return self.matcher.to_set() if self.matcher is not None else self._carried
