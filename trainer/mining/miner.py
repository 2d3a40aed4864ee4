"""`TemplateMiner`: raw log messages to template ids, one line at a time.

Drain (He et al., ICWS 2017) with three changes:

- masking first (`masking.py`), and a run of masked tokens counts as one token;
- a line never joins a template that has a different *word* where the line has one
  (`tokens.is_word_mismatch`): logs spell constants in words (`stored as bytes` vs
  `stored as values`, `from NEW to RUNNING`) and values in digits, ids and paths. Among the
  templates that pass, Drain's similarity (the share of positions equal or `<*>`) picks
  the best, and it must reach `similarity`;
- words that are values after all (user names, station names): once `word_variants`
  templates differ from a line in one word position only, the line starts a new template
  with `<*>` there, which takes every later new word at that spot. The earlier ones keep
  their ids and their lines.

Ids are stable. A template's id is `T<n>`, given at creation in order; a template only
ever generalises (a position turns `<*>`), keeps its id and never moves in the tree, and no
template is ever merged or renumbered. So a line that got id X gets X again later, after
any amount of further mining, and after a save and a load (`to_set` / `from_set`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from schemas.errors import ConfigError
from schemas.templates import MinerParams, TemplateEntry, TemplateSet, check_ids
from trainer.mining.masking import DEFAULT_MASK_RULES, Masker
from trainer.mining.tokens import PARAM, is_word_mismatch, tokenize
from trainer.mining.tree import PrefixTree

DEFAULT_PARAMS = MinerParams(
    depth=4,
    similarity=0.5,
    max_children=100,
    word_variants=4,
    mask_rules=DEFAULT_MASK_RULES,
)

# Masked messages seen since the last change to the set, and where they went: most lines of
# a log repeat a masked message, so most lines skip the tree search. Any new or changed
# template clears it, so it never answers differently from the search. A hit that `mine`
# would still generalise its template for (found by `match`) takes the slow path.
_CACHE_SIZE = 100_000


@dataclass(slots=True)
class _Template:
    number: int
    tokens: list[str]
    count: int
    first_seen: str | None
    route: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"T{self.number}"


def check_params(params: MinerParams) -> None:
    if params.depth < 3:
        raise ConfigError(f"depth must be at least 3, got {params.depth}")
    if not 0.0 < params.similarity <= 1.0:
        raise ConfigError(f"similarity must be in (0, 1], got {params.similarity}")
    if params.max_children < 2:
        raise ConfigError(f"max_children must be at least 2, got {params.max_children}")
    if params.word_variants < 0:
        raise ConfigError(f"word_variants must be 0 or more, got {params.word_variants}")


class TemplateMiner:
    """Mines templates from messages (`mine`) and matches messages to them (`match`)."""

    def __init__(self, params: MinerParams = DEFAULT_PARAMS) -> None:
        check_params(params)
        self.params = params
        self._masker = Masker(params.mask_rules)
        self._tree: PrefixTree[_Template] = PrefixTree(params.depth, params.max_children)
        self._templates: list[_Template] = []
        self._by_id: dict[str, _Template] = {}
        # masked message -> (its template, whether the template already covers it as is)
        self._cache: dict[str, tuple[_Template | None, bool]] = {}

    # -- persistence -------------------------------------------------------------------

    @classmethod
    def from_set(cls, templates: TemplateSet) -> TemplateMiner:
        """A miner in the state that wrote `templates` (its parameters, its tree)."""
        check_ids(templates.templates)
        miner = cls(templates.params)
        for e in templates.templates:
            t = _Template(e.number, e.template.split(), e.count, e.first_seen, e.route)
            miner._add(t)
        return miner

    def to_set(self) -> TemplateSet:
        return TemplateSet(self.params, tuple(self._entry(t) for t in self._templates))

    @staticmethod
    def _entry(t: _Template) -> TemplateEntry:
        return TemplateEntry(t.id, " ".join(t.tokens), t.count, t.first_seen, t.route)

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._templates)

    def __contains__(self, template_id: object) -> bool:
        return template_id in self._by_id

    def template(self, template_id: str) -> TemplateEntry:
        return self._entry(self._by_id[template_id])

    def entries(self) -> list[TemplateEntry]:
        """Every template, in id order."""
        return [self._entry(t) for t in self._templates]

    def masked_tokens(self, message: str) -> list[str]:
        """The tokens a message is compared by (masked, runs of `<*>` folded)."""
        return tokenize(self._masker.mask(message))

    # -- mining and matching ---------------------------------------------------------

    def match(self, message: str) -> str | None:
        """The id `mine` would give this message if it fits a known template, else None.
        Changes nothing: no count, no template, no new id."""
        masked = self._masker.mask(message)
        hit = self._cache.get(masked)
        if hit is not None:
            found = hit[0]
        else:
            tokens = tokenize(masked)
            found = self._search(tokens)
            self._remember(masked, found, found is not None and _covers(found.tokens, tokens))
        return None if found is None else found.id

    def mine(self, message: str, first_seen: str | None = None) -> tuple[str, bool]:
        """The message's template id, and whether the set changed (a new template, or one
        that generalised). `first_seen` is kept with a new template (a `file:line` or a
        timestamp: whatever the caller wants to find its first line by)."""
        masked = self._masker.mask(message)
        hit = self._cache.get(masked)
        if hit is not None and hit[1]:
            found = hit[0]
            assert found is not None
            found.count += 1
            return found.id, False
        tokens = tokenize(masked)
        found = self._search(tokens)
        if found is None:
            found = self._create(tokens, first_seen)
            changed = True
        else:
            found.count += 1
            changed = self._generalise(found, tokens)
        if changed:
            self._cache.clear()
        self._remember(masked, found, True)
        return found.id, changed

    def _remember(self, masked: str, found: _Template | None, covers: bool) -> None:
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[masked] = (found, covers)

    def _search(self, tokens: Sequence[str]) -> _Template | None:
        leaf = self._tree.leaf(tokens)
        if not leaf:
            return None
        n = len(tokens)
        if n == 0:
            return leaf[0]
        need = self.params.similarity * n
        best: _Template | None = None
        best_same = best_fit = -1
        for t in leaf:
            same = fit = 0
            for a, b in zip(t.tokens, tokens, strict=True):
                if a == b:
                    same += 1
                elif a == PARAM:
                    fit += 1
                elif is_word_mismatch(a, b):
                    break
            else:
                fit += same
                # The most positions that fit; among those, the most that are equal (the
                # most specific template); among those, the oldest.
                if fit >= need and (fit > best_fit or (fit == best_fit and same > best_same)):
                    best, best_fit, best_same = t, fit, same
        return best

    def _create(self, tokens: list[str], first_seen: str | None) -> _Template:
        slot = self._word_slot(tokens)
        if slot is not None:
            tokens = [*tokens[:slot], PARAM, *tokens[slot + 1 :]]
        number = self._templates[-1].number + 1 if self._templates else 1
        t = _Template(number, tokens, 1, first_seen, self._tree.route(tokens))
        self._add(t)
        return t

    def _add(self, t: _Template) -> None:
        if t.id in self._by_id:
            raise ConfigError(f"template id {t.id} given twice")
        self._templates.append(t)
        self._by_id[t.id] = t
        self._tree.insert(t.route, t)
        self._cache.clear()

    def _word_slot(self, tokens: Sequence[str]) -> int | None:
        """The position where `word_variants` templates of this leaf differ from the line by
        one word and otherwise fit it: a word there is a value, so it becomes `<*>`."""
        limit = self.params.word_variants
        leaf = self._tree.leaf(tokens)
        if limit == 0 or not leaf or len(leaf) < limit:
            return None
        need = self.params.similarity * len(tokens)
        near: dict[int, int] = {}
        for t in leaf:
            slot = -1
            fit = 0
            for i, (a, b) in enumerate(zip(t.tokens, tokens, strict=True)):
                if a in (b, PARAM):
                    fit += 1
                elif is_word_mismatch(a, b):
                    if slot >= 0:
                        break
                    slot = i
            else:
                if slot >= 0 and fit >= need:
                    near[slot] = near.get(slot, 0) + 1
        slots = sorted(s for s, count in near.items() if count >= limit)
        return slots[0] if slots else None

    @staticmethod
    def _generalise(t: _Template, tokens: Sequence[str]) -> bool:
        changed = False
        for i, (a, b) in enumerate(zip(t.tokens, tokens, strict=True)):
            if a != b and a != PARAM:
                t.tokens[i] = PARAM
                changed = True
        return changed


def _covers(template: Sequence[str], tokens: Sequence[str]) -> bool:
    return all(a in (b, PARAM) for a, b in zip(template, tokens, strict=True))


def with_params(params: MinerParams, **changes: object) -> MinerParams:
    """`params` with some fields replaced, checked."""
    out = replace(params, **changes)  # type: ignore[arg-type]
    check_params(out)
    return out
