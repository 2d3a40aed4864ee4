"""Tokens of a masked message, and how two differing tokens are told apart.

A token is *variable-looking* when it holds a digit or a mask (`<*>`): the tree routes it
to the `<*>` child, and two such tokens may differ within one template. Two tokens that
begin with different words (`bytes` vs `values`, `NEW` vs `RUNNING`,
`instruction......<*>` vs `exception......<*>`) are a *word mismatch*: logs spell their
constants in words and their values in digits, so such lines are kept apart (see
`word_variants` in the miner for words that are values after all).
"""

from __future__ import annotations

import re
from functools import lru_cache

PARAM = "<*>"

_WORD_HEAD = re.compile(r"[A-Za-z][A-Za-z_-]*")


def tokenize(masked: str) -> list[str]:
    """Whitespace tokens, with a run of masked tokens (`<*> <*> <*>`) folded into one: a list
    of values (`blk_1 blk_2 blk_3`) is one variable part, whatever its length."""
    tokens = masked.split()
    if PARAM not in masked:
        return tokens
    out: list[str] = []
    for t in tokens:
        if t == PARAM and out and out[-1] == PARAM:
            continue
        out.append(t)
    return out


def is_variable(token: str) -> bool:
    return PARAM in token or any(c.isdigit() for c in token)


@lru_cache(maxsize=65_536)
def word_head(token: str) -> str:
    """The word a token starts with (letters, `_`, `-`), or '' when it starts otherwise or
    the word runs straight into a value (`rdd_<*>`, `attempt_<*>`, `user42`: identifiers,
    values as a whole)."""
    m = _WORD_HEAD.match(token)
    if m is None:
        return ""
    head = m.group(0)
    rest = token[m.end() : m.end() + 1]
    if head[-1] in "_-" or rest.isdigit() or rest == "<":
        return ""
    return head


def is_word_mismatch(a: str, b: str) -> bool:
    """Whether two differing tokens are different words: they begin with different words
    (`bytes`/`values`, `instruction....<*>`/`exception....<*>`), or both are constants
    beginning with the same word (`address:`/`address`)."""
    ha = word_head(a)
    if not ha:
        return False
    hb = word_head(b)
    if not hb:
        return False
    return ha != hb or not (is_variable(a) or is_variable(b))
