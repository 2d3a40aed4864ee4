"""MLM masking: the 15% / 80-10-10 recipe, specials untouched, at least one mask per row."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.vocab import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIALS, UNK_ID
from trainer.masking import IGNORE, MaskSpec, mask_tokens

FIRST = len(SPECIALS)


def _rows(lengths: list[int], vocab: int, seed: int, pad_to: int | None = None) -> torch.Tensor:
    """[CLS] events [SEP] [PAD]... rows; some events are [UNK]."""
    g = torch.Generator().manual_seed(seed)
    width = pad_to or max(lengths) + 2
    out = torch.full((len(lengths), width), PAD_ID, dtype=torch.long)
    for i, n in enumerate(lengths):
        out[i, 0] = CLS_ID
        out[i, 1 : n + 1] = torch.randint(FIRST, vocab, (n,), generator=g)
        unk = torch.rand(n, generator=g) < 0.05
        out[i, 1 : n + 1][unk] = UNK_ID
        out[i, n + 1] = SEP_ID
    return out


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=12),
    vocab=st.integers(FIRST + 1, 300),
    seed=st.integers(0, 2**31 - 1),
)
def test_specials_untouched_and_every_event_row_masked(
    lengths: list[int], vocab: int, seed: int
) -> None:
    ids = _rows(lengths, vocab, seed)
    out, labels = mask_tokens(ids, vocab, MaskSpec(), torch.Generator().manual_seed(seed))
    special = ids < FIRST
    # Specials and padding: never selected, never changed.
    assert torch.equal(out[special], ids[special])
    assert (labels[special] == IGNORE).all()
    selected = labels != IGNORE
    # Labels hold the original token at selected positions.
    assert torch.equal(labels[selected], ids[selected])
    # Unselected positions are unchanged; a random replacement is always an event token.
    assert torch.equal(out[~selected], ids[~selected])
    changed = selected & (out != ids) & (out != MASK_ID)
    assert ((out[changed] >= FIRST) & (out[changed] < vocab)).all()
    # Every row holding an event has at least one prediction.
    has_event = (ids >= FIRST).any(dim=1)
    assert torch.equal(selected.any(dim=1), has_event)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    mask_prob=st.sampled_from([0.15, 0.3]),
)
def test_masking_statistics(seed: int, mask_prob: float) -> None:
    # Long rows so the at-least-one rule barely moves the rate; a big vocab so a random
    # replacement almost never draws the original token.
    vocab = 5000
    ids = _rows([120] * 100, vocab, seed)
    spec = MaskSpec(mask_prob=mask_prob)
    out, labels = mask_tokens(ids, vocab, spec, torch.Generator().manual_seed(seed + 1))
    events = ids >= FIRST
    selected = labels != IGNORE
    n_events = int(events.sum())
    n_sel = int(selected.sum())
    assert abs(n_sel / n_events - mask_prob) < 0.02  # ~10k events: sd is about 0.004
    as_mask = int((selected & (out == MASK_ID)).sum()) / n_sel
    as_random = int((selected & (out != MASK_ID) & (out != ids)).sum()) / n_sel
    kept = int((selected & (out == ids)).sum()) / n_sel
    assert abs(as_mask - 0.8) < 0.05
    assert abs(as_random - 0.1) < 0.04
    assert abs(kept - 0.1) < 0.04


def test_short_rows_get_exactly_their_forced_mask() -> None:
    ids = _rows([1] * 200, 50, 3)
    _, labels = mask_tokens(ids, 50, MaskSpec(), torch.Generator().manual_seed(0))
    event_rows = ids[:, 1] >= FIRST  # a lone [UNK] is no event
    assert 150 < int(event_rows.sum()) < 200
    assert torch.equal((labels != IGNORE).sum(dim=1), event_rows.long())
    assert (labels[event_rows, 1] == ids[event_rows, 1]).all()


def test_same_generator_seed_same_masks() -> None:
    ids = _rows([30, 7, 0, 45], 100, 1)
    a = mask_tokens(ids, 100, MaskSpec(), torch.Generator().manual_seed(9))
    b = mask_tokens(ids, 100, MaskSpec(), torch.Generator().manual_seed(9))
    c = mask_tokens(ids, 100, MaskSpec(), torch.Generator().manual_seed(10))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_all_mask_or_all_random_settings() -> None:
    ids = _rows([200] * 20, 1000, 2)
    out, labels = mask_tokens(
        ids,
        1000,
        MaskSpec(mask_token_frac=1.0, random_token_frac=0.0),
        torch.Generator().manual_seed(0),
    )
    sel = labels != IGNORE
    assert (out[sel] == MASK_ID).all()
    out, labels = mask_tokens(
        ids,
        1000,
        MaskSpec(mask_token_frac=0.0, random_token_frac=1.0),
        torch.Generator().manual_seed(0),
    )
    sel = labels != IGNORE
    assert not (out[sel] == MASK_ID).any()
    assert (out[sel] >= FIRST).all()
