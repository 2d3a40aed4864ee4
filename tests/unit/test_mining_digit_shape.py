"""Digit shapes: masking under the built-in rules cannot tell digits apart (outside `0x`), so
the matcher's LRU may answer by shape; a user's rule turns that off."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.templates import MaskRule
from trainer.mining.masking import (
    DEFAULT_MASK_RULES,
    Masker,
    digit_shape,
    resolve_rules,
    shape_decides,
)
from trainer.mining.matcher import TemplateMatcher
from trainer.mining.miner import TemplateMiner

HDFS = Path(__file__).resolve().parents[2] / "data" / "hdfs" / "dev_events.jsonl.gz"
ALL_ONE = str.maketrans("0123456789", "1111111111")

# Pieces that reach into every built-in rule: dates, hex, addresses, units, quotes, blocks.
PIECES = [
    *"0123456789abcdefxXABCDEF.:-_/ '\"+%=",
    "blk_",
    "ms",
    "KB",
    " KB",
    "secs",
    " bytes",
    "Mon Jan ",
    "localhost",
    "host-a",
    "T",
    "Z",
    " PDT ",
    "µs",
    "Gi",
]
messages = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


@settings(max_examples=600, deadline=None)
@given(messages)
def test_built_in_masking_cannot_tell_digits_apart_outside_0x(message: str) -> None:
    masker = Masker(DEFAULT_MASK_RULES)
    shape = digit_shape(message)
    if shape is None:
        assert "0x" in message or "0X" in message
        return
    assert shape == message.translate(ALL_ONE).encode()
    # Masking commutes with the shape: digit for digit, the same masked text.
    assert masker.mask(message.translate(ALL_ONE)) == masker.mask(message).translate(ALL_ONE)


@settings(max_examples=300, deadline=None)
@given(messages, messages)
def test_a_shape_decided_once_answers_for_the_whole_shape(a: str, b_digits: str) -> None:
    masker = Masker(DEFAULT_MASK_RULES)
    # b: a's shape, its digits drawn from b_digits.
    digits = [c for c in b_digits if c.isdigit()] or ["7"]
    it = iter(digits * (len(a) + 1))
    b = "".join(next(it) if c.isdigit() else c for c in a)
    if digit_shape(a) is None or digit_shape(b) is None:
        return
    assert digit_shape(a) == digit_shape(b)
    if shape_decides(masker.mask(a)):
        assert masker.mask(b) == masker.mask(a)


def test_0x_is_where_a_digit_value_matters() -> None:
    masker = Masker(DEFAULT_MASK_RULES)
    assert masker.mask("at 0x5f") == "at <*>" and masker.mask("at 1x5f") == "at 1x5f"
    assert digit_shape("at 0x5f") is None
    assert digit_shape("at 1x5f") == b"at 1x1f"


def test_user_rules_turn_shapes_off_and_the_matcher_keys_by_message() -> None:
    assert Masker(DEFAULT_MASK_RULES).digit_blind
    mine = resolve_rules((MaskRule("http_5xx", r"5\d\d"),))
    assert not Masker(mine).digit_blind
    dropped = resolve_rules((MaskRule("number", ""),))  # built-ins, one removed: still blind
    assert Masker(dropped).digit_blind

    miner = TemplateMiner()
    miner.mine("GET /a status 200 in 5 ms")
    matcher = TemplateMatcher(miner.to_set())
    matcher.id_of("GET /a status 200 in 5 ms", 0)
    assert b"GET /a status 111 in 1 ms" in matcher._lru  # keyed by shape


def test_matcher_by_shape_gives_the_miners_ids_on_real_hdfs_lines() -> None:
    with gzip.open(HDFS, "rb") as fh:
        lines = [orjson.loads(raw)["message"] for _, raw in zip(range(20_000), fh, strict=False)]
    seed = TemplateMiner()
    for line in lines[:5_000]:
        seed.mine(line)
    templates = seed.to_set()
    matcher = TemplateMatcher(templates)
    plain = TemplateMiner.from_set(templates)  # the same start, no LRU in front
    got = [matcher.id_of(line, 0) for line in lines]
    assert got == [plain.mine(line)[0] for line in lines]
    shapes = sum(isinstance(k, bytes) for k in matcher._lru)
    assert 0 < shapes < len(set(lines)) // 10  # a few shapes stand for many lines
