from __future__ import annotations

import pytest

from schemas import DecodeError, Vocab
from schemas.vocab import SPECIALS, UNK_ID


def test_build_by_frequency_with_specials_first() -> None:
    v = Vocab.build([["b", "a", "b"], ["c", "b", "a"]])
    assert v.tokens[:5] == SPECIALS
    assert v.tokens[5:] == ("b", "a", "c")
    assert v.encode(["a", "zzz"]) == [6, UNK_ID]
    assert "a" in v and "zzz" not in v


def test_cap_counts_specials() -> None:
    v = Vocab.build([["a", "b", "c", "d"]], max_size=7)
    assert len(v) == 7 and v.tokens[5:] == ("a", "b")


def test_json_round_trip(tmp_path: object) -> None:
    v = Vocab.build([["x", "y", "x"]])
    assert Vocab.from_json(v.to_json()) == v


def test_extend_keeps_ids() -> None:
    v = Vocab.build([["a", "b"]])
    w = v.extend(["c", "a"])
    assert w.tokens[: len(v)] == v.tokens and w.id_of("c") == len(v)


def test_rejects_bad_json() -> None:
    with pytest.raises(DecodeError):
        Vocab.from_json(b'{"tokens": ["a"]}')
    with pytest.raises(DecodeError):
        Vocab.from_json(b"nope")
