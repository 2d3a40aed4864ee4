"""Masking rules: what the built-in set masks, what it leaves, and how rules are configured."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from schemas.templates import MaskRule
from trainer.mining.masking import DEFAULT_MASK_RULES, Masker, resolve_rules

MASK = Masker(DEFAULT_MASK_RULES)


@pytest.mark.parametrize(
    ("message", "masked"),
    [
        ("GET /api/v1/users/42 took 123ms", "GET /api/v1/users/<*> took <*>"),
        ("connected to 10.0.0.12:8080 after 1.5s", "connected to <*> after <*>"),
        ("Received connection request /10.10.34.11:45307", "Received connection request /<*>"),
        ("db.example.com:5432 refused", "<*> refused"),
        ("order 3f1e2d4c-5b6a-4789-9abc-def012345678 saved", "order <*> saved"),
        (
            "TraceID: ffc8ca7e4c8f06c75142c880d5595d96 SpanID: 439bc949a9eeb0cc [x]",
            "TraceID: <*> SpanID: <*> [x]",
        ),
        ("Deleting block blk_-1608999687919862906 file", "Deleting block <*> file"),
        ("unit=0x0b bit=0x0A", "unit=<*> bit=<*>"),
        ("user 'alice' not found", "user <*> not found"),
        ('request "GET /index.html" failed', "request <*> failed"),
        ("estimated size 5.4 KB, free 378.2 KB", "estimated size <*>, free <*>"),
        ("travelDate=2023-01-29 15:38:06, n=3", "travelDate=<*>, n=<*>"),
        ("at 16:42:22.382 it stopped", "at <*> it stopped"),
        ("changed: Thu Aug 04 15:29:32 PDT 2005 ok", "changed: <*> ok"),
        ("chip FF:F2:9F:16:EB:27:00:0D:60:E9:14:D8 up", "chip <*> up"),
        ("count -17 and +3", "count <*> and <*>"),
        ("[check][stationNames: [nanjing, shanghai]]", "[check][stationNames: <*>]"),
        ("info=[T(no=1, to=a), T(no=2, to=b)] left", "info=<*> left"),
        ("cut at 16 KB: soldTickets=[T(no=1, to=a), T(no=2, to=", "cut at <*>: soldTickets=<*>"),
    ],
)
def test_builtin_rules_mask_values(message: str, masked: str) -> None:
    assert MASK.mask(message) == masked


@pytest.mark.parametrize(
    "message",
    [
        "log4j v1 on amd64 with utf8",  # digits inside words are no values
        "don't stop, it's fine",  # apostrophes open no quote
        "deadbeef cafe face",  # hex-looking words without a digit stay words
        "key:123abc",  # no standalone value
        "[getRoute][Get Route By Id][Success]",  # bracket groups without a comma stay
        "x [a, b, c [ open",  # a list that another bracket opens into is no list
    ],
)
def test_builtin_rules_leave_words(message: str) -> None:
    assert MASK.mask(message) == message


def test_identifiers_keep_their_word_and_mask_their_numbers() -> None:
    assert MASK.mask("attempt_1445144423722_0020_m_000002_0") == "attempt_<*>_<*>_m_<*>_<*>"


def test_an_override_replaces_a_builtin_rule_by_name() -> None:
    rules = resolve_rules([MaskRule("number", r"\d{3,}")])
    assert [r.name for r in rules].count("number") == 1
    assert rules[0] == MaskRule("number", r"\d{3,}")
    assert Masker(rules).mask("id 7 of 1234") == "id 7 of <*>"


def test_an_empty_pattern_removes_a_builtin_rule() -> None:
    rules = resolve_rules([MaskRule("quoted", "")])
    assert "quoted" not in [r.name for r in rules]
    assert Masker(rules).mask("user 'bob' left") == "user 'bob' left"


def test_own_rules_only_and_rules_run_before_the_builtins() -> None:
    own = [MaskRule("range", r"\d+-\d+")]
    assert resolve_rules(own, use_builtin=False) == tuple(own)
    # At the same position the first rule wins: the range, not the number.
    assert Masker(resolve_rules(own)).mask("pages 5-6 of 9") == "pages <*> of <*>"
    assert Masker(DEFAULT_MASK_RULES).mask("pages 5-6 of 9") == "pages <*>-<*> of <*>"


def test_a_rule_named_twice_is_an_error() -> None:
    with pytest.raises(ConfigError, match="named twice: x"):
        resolve_rules([MaskRule("x", "a"), MaskRule("x", "b")])


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("(unclosed", "mask rule 'bad': bad regex"),
        ("a*", "mask rule 'bad': matches the empty string"),
        ("(?P<n>x)", "mask rule 'bad': use"),
    ],
)
def test_bad_rules_are_one_clear_error(pattern: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        Masker([MaskRule("bad", pattern)])
