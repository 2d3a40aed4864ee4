"""Tokens: folding runs of masks, and which differing tokens are different words."""

from __future__ import annotations

import pytest

from trainer.mining.tokens import is_word_mismatch, tokenize


def test_a_run_of_masks_is_one_token() -> None:
    assert tokenize("delete <*> <*>  <*> now <*>") == ["delete", "<*>", "now", "<*>"]
    assert tokenize("  a   b ") == ["a", "b"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("bytes", "values"),
        ("NEW", "RUNNING"),
        ("FAIL_CONTAINER_CLEANUP", "FAIL_TASK_CLEANUP"),
        ("instruction......<*>", "exception......<*>"),
        ("address:", "address"),
        ("job-jar", "job-conf"),
        ("v=<*>", "t=<*>"),
    ],
)
def test_different_words(a: str, b: str) -> None:
    assert is_word_mismatch(a, b)
    assert is_word_mismatch(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("rdd_<*>_<*>", "broadcast_<*>_piece0"),  # identifiers: values as a whole
        ("attempt_<*>_m_<*>", "attempt_<*>_r_<*>"),
        ("user42", "admin7"),
        ("<*>", "values"),  # a value where a word was
        ("/tmp/a", "/var/b"),  # paths start with no word
        ("x=<*>", "x=<*>,"),  # the same word, with values
    ],
)
def test_not_different_words(a: str, b: str) -> None:
    assert not is_word_mismatch(a, b)
    assert not is_word_mismatch(b, a)
