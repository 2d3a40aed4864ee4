"""Masking: the variable parts of a log message become `<*>` before it is tokenized.

The rules are (name, regex) pairs. They are joined into one alternation and applied in a
single left-to-right pass: at each position the first rule in the list that matches wins,
so specific rules (a UUID, an IP with its port) come before the general ones (a number).

A masked value never begins inside a word: the rules are tried only where no letter or
digit comes just before (`id=42`, `/users/42` and `rdd_21` mask the 42 and the 21; `v1`,
`log4j` and `utf8` stay). Besides being what a value looks like, this lets the one pass
give up on most positions of a line (those inside words) after a single look-behind,
instead of trying every rule there.

Digit shapes. The built-in rules take any digit wherever they take one; the only digit they
spell out is the `0` of `0x`. So, among messages without `0x`, two that differ only in their
digits' values are masked alike, digit for digit, and when the masked message keeps no
digit, to the very same text. `digit_shape` names that class of messages: a cache keyed by
it (trainer/mining/matcher.py) answers for every block id, address and port of a line at
once, without masking. A rule of the user's may tell digits apart, so any such rule turns
shapes off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from schemas.errors import ConfigError
from schemas.templates import MaskRule

PARAM = "<*>"

# Where a value may begin, for every rule (see above); most rules also need it to end
# before a letter or digit (_E).
_START = r"(?<![A-Za-z0-9])"
_E = r"(?![A-Za-z0-9])"
_HEX = "[0-9a-fA-F]"

DEFAULT_MASK_RULES: tuple[MaskRule, ...] = (
    # An ISO or logback date-time, or a time of day: one value, not six numbers.
    MaskRule(
        "datetime",
        r"(?:\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
        r"(?:Z|[+-]\d{2}:?\d{2})?|\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)" + _E,
    ),
    # java.util.Date's toString: `Thu Aug 04 15:29:32 PDT 2005`.
    MaskRule(
        "java_date",
        r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        r" [ \d]\d \d{2}:\d{2}:\d{2}(?: [A-Z]{2,5})? \d{4}" + _E,
    ),
    MaskRule("uuid", f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}" + _E),
    # HDFS block ids carry a sign: `blk_-1608999687919862906`.
    MaskRule("hdfs_block", r"\bblk_-?\d+" + _E),
    # An IPv4 address, with its port if it has one.
    MaskRule("ipv4", r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?" + _E),
    # A MAC address, or a longer colon-separated byte string (a chip id).
    MaskRule("mac", f"{_HEX}{{2}}(?::{_HEX}{{2}}){{5,}}" + _E),
    # A hostname with a port (`msra-sa-41:9000`, `db.local:5432`, `localhost:8080`); a
    # plain `key:123` is no host.
    MaskRule(
        "host_port",
        r"(?<![\w.-])(?:localhost|[A-Za-z]\w*+(?:[.-]\w++)++):\d{2,5}" + _E,
    ),
    MaskRule("hex", r"0[xX][0-9a-fA-F]+" + _E),
    # Trace and span ids (16 or 32 hex digits), object hashes, digests: hex runs of 8 or
    # more holding a digit. Words like `deadbeef` (no digit) stay words.
    MaskRule("hex_id", r"(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}" + _E),
    # Durations and sizes with their unit: `123ms`, `1.5s`, `64KB`, `5.4 KB`, `10 ms`.
    MaskRule(
        "quantity",
        r"[-+]?\d+(?:\.\d+)?(?:(?:ns|us|µs|ms|s|sec|secs|m|min|h|d|[kKMGT]i?B|[kKMG]|B|%)"
        r"| (?:ns|us|µs|ms|sec|secs|min|[kKMGT]i?B|B|bytes))" + _E,
    ),
    # Quoted values: `'alice'`, `"GET /x"`. The opening quote must not follow a letter, so
    # an apostrophe (don't) never opens one.
    MaskRule("quoted", r"(?<![\w\\])(?:\"[^\"\n]{0,200}\"|'[^'\n]{0,200}')(?!\w)"),
    MaskRule("number", r"[-+]?\d+(?:\.\d+)?" + _E),
    # A bracketed list of two or more items (`[nanjing, shanghai]`, a dump of objects): one
    # value, since a tree keyed by token count would make each length its own template.
    # Only an innermost list: `[getRoute][Route IDs: [a, b]]` keeps its method and message.
    # One still open at the end of the message was cut by a line-length limit. Possessive:
    # backtracking over every comma of a long unclosed list would be quadratic.
    MaskRule("list", r"\[[^\[\]\n,]*+,[^\[\]\n]*+(?:\]|$)"),
)


def resolve_rules(
    overrides: Sequence[MaskRule], *, use_builtin: bool = True
) -> tuple[MaskRule, ...]:
    """The rules in force: `overrides` first, then the built-in ones.

    An override named like a built-in rule replaces it, and runs first with the other
    overrides; an empty pattern removes it. With use_builtin=False only the overrides apply.
    """
    names = [r.name for r in overrides]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"mask rule named twice: {sorted(dup)[0]}")
    rules = [r for r in overrides if r.pattern]
    if use_builtin:
        rules += [r for r in DEFAULT_MASK_RULES if r.name not in names]
    return tuple(rules)


_SHAPE = bytes.maketrans(b"0123456789", b"1111111111")
_DIGIT = re.compile("[0-9]")


def digit_shape(message: str) -> bytes | None:
    """The message with every digit made `1`: what masking under the built-in rules cannot
    tell apart (see above). None for a message with `0x`, where a digit's value matters."""
    if "0x" in message or "0X" in message:
        return None
    return message.encode("utf-8", "surrogatepass").translate(_SHAPE)


def shape_decides(masked: str) -> bool:
    """Whether a masked message stands for every message of its original's digit shape:
    true when it keeps no digit (digits inside words stay as they were)."""
    return _DIGIT.search(masked) is None


class Masker:
    """Replaces every match of the rules with `<*>` in one pass."""

    def __init__(self, rules: Sequence[MaskRule]) -> None:
        for r in rules:
            try:
                compiled = re.compile(r.pattern)
            except re.error as e:
                raise ConfigError(f"mask rule {r.name!r}: bad regex: {e}") from None
            if compiled.groupindex:
                # The rules are joined into one regex, where two rules' groups could clash.
                raise ConfigError(f"mask rule {r.name!r}: use (?:...), not named groups")
            if compiled.match(""):
                raise ConfigError(f"mask rule {r.name!r}: matches the empty string")
        self.rules = tuple(rules)
        self.digit_blind = all(r in DEFAULT_MASK_RULES for r in rules)
        """Whether messages of one `digit_shape` mask alike: the built-in rules only."""
        joined = "|".join(f"(?:{r.pattern})" for r in rules)
        self._re: re.Pattern[str] | None = re.compile(f"{_START}(?:{joined})") if rules else None

    def mask(self, message: str) -> str:
        if self._re is None:
            return message
        return self._re.sub(PARAM, message)
