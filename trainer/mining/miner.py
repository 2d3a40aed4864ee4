"""`TemplateMiner`: raw log messages to template ids, one line at a time.

Drain (He et al., ICWS 2017) with these changes:

- masking first (`masking.py`), and a run of masked tokens counts as one token;
- a line never joins a template that has a different *word* where the line has one
  (`tokens.is_word_mismatch`): logs spell constants in words (`stored as bytes` vs
  `stored as values`, `from NEW to RUNNING`) and values in digits, ids and paths. Among the
  templates that pass, the one with the most positions equal or `<*>` wins (then the one
  with the most equal, then the oldest), and it must fit at least `similarity` of them;
- words that are values after all (user names, station names): once `word_variants`
  templates differ from a line in one word position only, the line starts a new template
  with `<*>` there, which takes every later new word at that spot. The earlier ones keep
  their ids and their lines.

Stable ids. A template's id is `T<n>`, given at creation in order; it is never renumbered,
reused or removed, and its template only ever generalises (a position turns `<*>`). More:
a line keeps its id. After `mine(line)` returns X, X's template *covers* the line (equal or
`<*>` at every position), and from then on `match(line)` and `mine(line)` return X, however
much is mined later and across a save and a load. Three rules make it so:

1. a line goes to the oldest template that covers it, when one does;
2. a template may generalise only if that lets it cover no line a younger template already
   covers (else the line starts a template of its own): so no older template can ever come
   to take a line from X;
3. the tree search looks in both the line's own token child and the `<*>` child at each
   level, so a template stays findable when later lines add children beside it.

Everything is deterministic: the same lines in the same order give the same set.
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

# Masked messages already covered by a template, and by which: most lines of a log repeat
# a masked message, so most lines skip the tree search. By rule 1 and 2 above the answer for
# a covered message never changes, so entries never go stale; the cap only bounds memory.
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
        self._by_length: dict[int, list[_Template]] = {}
        self._cache: dict[str, _Template] = {}

    # -- persistence -------------------------------------------------------------------

    @classmethod
    def from_set(cls, templates: TemplateSet) -> TemplateMiner:
        """A miner in the state that wrote `templates` (its parameters, its tree)."""
        check_ids(templates.templates)
        miner = cls(templates.params)
        for e in templates.templates:
            miner._add(_Template(e.number, e.template.split(), e.count, e.first_seen, e.route))
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
        """The id `mine` would give this message without adding a template: the template
        that covers it, or the one `mine` would generalise for it. Else None. Changes
        nothing: no count, no template, no new id."""
        return self.match_masked(self._masker.mask(message))

    def match_masked(self, masked: str) -> str | None:
        """`match` for a message already masked by `masker`."""
        hit = self._cache.get(masked)
        if hit is not None:
            return hit.id
        tokens = tokenize(masked)
        found, covers = self._search(tokens)
        if found is None:
            return None
        if covers:
            self._remember(masked, found)
            return found.id
        return found.id if self._may_generalise(found, tokens) else None

    @property
    def masker(self) -> Masker:
        return self._masker

    def mine(self, message: str, first_seen: str | None = None) -> tuple[str, bool]:
        """The message's template id, and whether the set changed (a new template, or one
        that generalised). `first_seen` is kept with a new template (a `file:line` or a
        timestamp: whatever the caller wants to find its first line by)."""
        return self.mine_masked(self._masker.mask(message), first_seen)

    def mine_masked(self, masked: str, first_seen: str | None = None) -> tuple[str, bool]:
        """`mine` for a message already masked by `masker`."""
        found = self._cache.get(masked)
        if found is not None:
            found.count += 1
            return found.id, False
        tokens = tokenize(masked)
        found, covers = self._search(tokens)
        changed = not covers
        if found is None or (not covers and not self._may_generalise(found, tokens)):
            found = self._create(tokens, first_seen)
        else:
            found.count += 1
            if not covers:
                found.tokens = _generalised(found.tokens, tokens)
        self._remember(masked, found)
        return found.id, changed

    def _remember(self, masked: str, found: _Template) -> None:
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[masked] = found

    def _search(self, tokens: Sequence[str]) -> tuple[_Template | None, bool]:
        """The oldest template covering the tokens (and True), else the best that fits
        (and False), else (None, False)."""
        leaves = self._tree.leaves(tokens)
        if not tokens:
            return (leaves[0][0], True) if leaves else (None, False)
        need = self.params.similarity * len(tokens)
        cover: _Template | None = None
        best: _Template | None = None
        best_key = (-1, -1, 0)
        for leaf in leaves:
            for t in leaf:
                if cover is not None and t.number > cover.number:
                    break  # a leaf is in id order: nothing older follows
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
                    if fit == len(tokens):
                        cover = t
                    elif cover is None and fit >= need:
                        key = (fit, same, -t.number)
                        if key > best_key:
                            best, best_key = t, key
        if cover is not None:
            return cover, True
        return best, False

    def _may_generalise(self, t: _Template, tokens: Sequence[str]) -> bool:
        """Rule 2: the generalised template may take no line that a younger template
        covers and `t` does not already."""
        wider = _generalised(t.tokens, tokens)
        opened = [i for i, (a, b) in enumerate(zip(t.tokens, wider, strict=True)) if a != b]
        for y in self._by_length.get(len(tokens), ()):
            if y.number <= t.number or not _overlap(wider, y.tokens):
                continue
            if any(y.tokens[i] != t.tokens[i] for i in opened):
                return False
        return True

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
        self._by_length.setdefault(len(t.tokens), []).append(t)
        self._tree.insert(t.route, t)

    def _word_slot(self, tokens: Sequence[str]) -> int | None:
        """The position where `word_variants` templates differ from the line by one word
        and otherwise fit it: a word there is a value, so it becomes `<*>`."""
        limit = self.params.word_variants
        if limit == 0:
            return None
        need = self.params.similarity * len(tokens)
        near: dict[int, int] = {}
        for leaf in self._tree.leaves(tokens):
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


def _generalised(template: Sequence[str], tokens: Sequence[str]) -> list[str]:
    return [a if a in (b, PARAM) else PARAM for a, b in zip(template, tokens, strict=True)]


def _overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether some line is covered by both templates."""
    return all(x == y or PARAM in (x, y) for x, y in zip(a, b, strict=True))


def with_params(params: MinerParams, **changes: object) -> MinerParams:
    """`params` with some fields replaced, checked."""
    out = replace(params, **changes)  # type: ignore[arg-type]
    check_params(out)
    return out
