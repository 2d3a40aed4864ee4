"""`TemplateMatcher`: raw log messages to template ids against a model's template set, the
one way `logad serve`, `replay` and `evaluate` map a raw event (`event_id_for`).

A message goes to the id the bundle's miner gives it (`TemplateMiner.mine`): a known
template's id, or, for a line unlike any known template, a new id `T<n>` past the bundle's,
which the model sees as `[UNK]` (it is not in its vocab). New templates accumulate in the
matcher's copy of the set (`to_set`), so the archive can hand them to the nightly retrain
and the next bundle knows them by the same ids. So that a flood of lines unlike each other
cannot grow the set without end, a matcher mines at most `max_new` templates; past that, a
line that fits no template gets `OVER_CAP`.

The hot path: a bounded LRU in front of the miner (which masks the message, then keeps its
own cache by masked message). Under the built-in mask rules the LRU is keyed by the
message's digit shape (trainer/mining/masking.py) wherever that decides the masked text, so
one entry answers for every block id, address and port of a line, and most lines are never
masked; otherwise by the message itself. A cached answer never goes stale: once mined, a
line keeps its id (trainer/mining/miner.py). One thread uses a matcher.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from datetime import UTC, datetime

import structlog

from schemas.errors import DecodeError
from schemas.scores import Score
from schemas.templates import TemplateSet
from trainer.mining.lineage import carry_forward
from trainer.mining.masking import digit_shape, shape_decides
from trainer.mining.miner import TemplateMiner

log = structlog.get_logger(__name__)

NO_TEMPLATES = "raw message but the model has no templates"

OVER_CAP = "T0"
"""The id of a line unlike every template once the matcher holds `max_new` new ones: no
template's (ids start at T1), so the model reads it as [UNK], as it would a new template."""

LRU_SIZE = 16_384
"""Raw messages (or digit shapes) remembered with their ids."""
LRU_MAX_CHARS = 512
"""Longer messages are not remembered (the LRU stays a few MiB); the miner's cache by
masked message still spares them the tree search."""


class TemplateMatcher:
    """The bundle's template set (`bundle`), extended by what is mined from live lines."""

    def __init__(
        self,
        bundle: TemplateSet,
        mined: TemplateSet | None = None,
        *,
        lru_size: int = LRU_SIZE,
        max_new: int | None = None,
    ) -> None:
        """`mined`: an earlier matcher's set (the archive's `templates.json`, the bundle
        serving before a reload), whose templates past the bundle's keep their ids.
        `max_new`: how many templates past the bundle's it may hold (None: no bound)."""
        self.known = frozenset(t.id for t in bundle.templates)
        """The bundle's ids: any other id was mined here, and is new to the model."""
        start = bundle
        if mined is not None:
            start, disagree = carry_forward(bundle, mined)
            if disagree:
                log.warning(
                    "templates_disagree",
                    ids=disagree[:10],
                    count=len(disagree),
                    note="the bundle's templates win; days archived with these ids meant others",
                )
        self._miner = TemplateMiner.from_set(start)
        self._last = max((t.number for t in start.templates), default=0)
        self._lru: OrderedDict[str | bytes, str] = OrderedDict()
        self._lru_size = lru_size
        self._by_shape = self._miner.masker.digit_blind
        self._max_new = max_new
        self.over_cap = 0
        """Lines given OVER_CAP."""

    def __len__(self) -> int:
        return len(self._miner)

    @property
    def new_templates(self) -> int:
        """Templates held that the bundle does not know."""
        return len(self._miner) - len(self.known)

    def id_of(self, message: str, ts_ms: int) -> str:
        """The message's template id; a new template (first seen at `ts_ms`) if it fits none."""
        lru = self._lru
        shape = digit_shape(message) if self._by_shape else None
        key: str | bytes = message if shape is None else shape
        tid = lru.get(key)
        if tid is None and shape is not None:
            key = message  # one whose masked text keeps digits is remembered as itself
            tid = lru.get(key)
        if tid is not None:
            lru.move_to_end(key)
            return tid
        masked = self._miner.masker.mask(message)
        if self._max_new is not None and self.new_templates >= self._max_new:
            tid = self._miner.match_masked(masked) or self._past_cap()
            changed = False
        else:
            tid, changed = self._miner.mine_masked(masked, first_seen=_iso(ts_ms))
        if changed and int(tid[1:]) > self._last:
            self._last = int(tid[1:])
            log.info("template_new", id=tid, template=self._miner.template(tid).template)
        if len(message) <= LRU_MAX_CHARS:
            if shape is not None and shape_decides(masked):
                key = shape
            if len(lru) >= self._lru_size:
                lru.popitem(last=False)
            lru[key] = tid
        return tid

    def _past_cap(self) -> str:
        if not self.over_cap:
            log.warning(
                "template_cap_reached",
                max_new=self._max_new,
                note=f"lines unlike every template now get {OVER_CAP} until the next model",
            )
        self.over_cap += 1
        return OVER_CAP

    def new_template(self, template_id: str) -> str | None:
        """The text of a template mined here (one the bundle does not know), else None."""
        if template_id in self.known or template_id not in self._miner:
            return None
        return self._miner.template(template_id).template

    def to_set(self) -> TemplateSet:
        """Everything held: the bundle's templates (some perhaps generalised), then the new."""
        return self._miner.to_set()


def event_id_for(
    event_id: str | None, message: str | None, ts_ms: int, matcher: TemplateMatcher | None
) -> str:
    """An event's template id: its own, or its message's through `matcher`. A raw event
    without a matcher (the model has no templates) is a DecodeError, for the dead letters."""
    if event_id is not None:
        return event_id
    if matcher is None or message is None:
        raise DecodeError(NO_TEMPLATES)
    return matcher.id_of(message, ts_ms)


def with_new_templates(score: Score, matcher: TemplateMatcher | None) -> Score:
    """`score` with the text of each new template among its surprising events, so that an
    alert can say which line the model never saw."""
    if matcher is None or not score.surprising or not matcher.new_templates:
        return score
    surprising = tuple(
        dataclasses.replace(s, template=text)
        if (text := matcher.new_template(s.event_id)) is not None
        else s
        for s in score.surprising
    )
    if surprising == score.surprising:
        return score
    return dataclasses.replace(score, surprising=surprising)


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")
