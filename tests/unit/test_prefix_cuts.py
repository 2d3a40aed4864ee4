"""Prefix cuts: marked rows become unmarked prefixes; nothing else changes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.vocab import CLS_ID, PAD_ID, SEP_ID, SPECIALS
from trainer.prefix_cuts import CutSpec, cut_prefixes

FIRST = len(SPECIALS)
END = FIRST  # the marker's id in these rows; events use ids above it


def _row(events: list[int], marked: bool, width: int) -> list[int]:
    body = [CLS_ID, *events, *([END] if marked else []), SEP_ID]
    return body + [PAD_ID] * (width - len(body))


@settings(max_examples=60, deadline=None)
@given(
    sessions=st.lists(
        st.tuples(st.lists(st.integers(FIRST + 1, 40), min_size=1, max_size=30), st.booleans()),
        min_size=1,
        max_size=10,
    ),
    fraction=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_cuts_are_unmarked_prefixes(
    sessions: list[tuple[list[int], bool]], fraction: float, seed: int
) -> None:
    width = max(len(e) for e, _ in sessions) + 3
    ids = torch.tensor([_row(e, m, width) for e, m in sessions])
    out = cut_prefixes(ids, CutSpec(fraction, END), torch.Generator().manual_seed(seed))
    assert out.shape == ids.shape
    for (events, marked), row in zip(sessions, out.tolist(), strict=True):
        if row == _row(events, marked, width):
            continue
        # Only a marked row of two or more events may change, into a shorter prefix.
        assert marked and len(events) >= 2 and fraction > 0
        kept = row.index(SEP_ID) - 1
        assert 1 <= kept < len(events)
        assert row == _row(events[:kept], False, width)


def test_fraction_one_cuts_every_eligible_row_and_lengths_spread() -> None:
    events = list(range(FIRST + 1, FIRST + 11))  # ten events
    ids = torch.tensor([_row(events, True, 13)] * 400 + [_row(events[:1], True, 13)])
    out = cut_prefixes(ids, CutSpec(1.0, END), torch.Generator().manual_seed(0))
    kept = (out == SEP_ID).to(torch.int64).argmax(dim=1) - 1
    assert not bool((out[:400] == END).any())
    assert set(kept[:400].tolist()) == set(range(1, 10))
    assert out[400].tolist() == ids[400].tolist()  # one event: nothing to cut


def test_fraction_zero_changes_nothing() -> None:
    ids = torch.tensor([_row([FIRST + 1, FIRST + 2, FIRST + 3], True, 6)] * 20)
    out = cut_prefixes(ids, CutSpec(0.0, END), torch.Generator().manual_seed(0))
    assert torch.equal(out, ids)


def test_training_batches_get_cuts_only_when_asked_and_the_vocab_has_the_marker() -> None:
    from schemas.vocab import Vocab
    from trainer.end_marker import END_EVENT
    from trainer.loop import cut_spec
    from trainer.settings import TrainSettings

    marked = SimpleNamespace(vocab=Vocab.build([["E1", "E2", END_EVENT]]))
    plain = SimpleNamespace(vocab=Vocab.build([["E1", "E2"]]))
    on = TrainSettings(prefix_cut_fraction=0.2)
    assert cut_spec(marked, on) == CutSpec(0.2, marked.vocab.id_of(END_EVENT))  # type: ignore[arg-type]
    assert cut_spec(plain, on) is None  # type: ignore[arg-type]
    assert cut_spec(marked, TrainSettings(prefix_cut_fraction=0.0)) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix_cut_fraction"):
        TrainSettings(prefix_cut_fraction=1.5)
