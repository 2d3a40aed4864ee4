"""MLM masking: choose the tokens to predict and corrupt them (80% [MASK], 10% random, 10% kept).

Pure: the randomness comes from the generator passed in. Done per batch when it is
collated, so every epoch sees fresh masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from schemas.vocab import MASK_ID, SPECIALS

IGNORE = -100
"""Label of a position that is not predicted (cross_entropy's ignore_index)."""


@dataclass(frozen=True)
class MaskSpec:
    mask_prob: float = 0.15
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1
    first_event_id: int = len(SPECIALS)
    """Token ids below this are special ([PAD], [UNK], [CLS], [SEP], [MASK]): never masked."""


def mask_tokens(
    input_ids: torch.Tensor, vocab_size: int, spec: MaskSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (corrupted ids, labels) for a (batch, length) int64 tensor.

    Only event tokens (id >= first_event_id) are candidates; every row holding at least one
    event gets at least one prediction. Random replacements are drawn from the event ids
    only, never a special token. Labels are the original ids at predicted positions and
    IGNORE elsewhere.
    """
    is_event = input_ids >= spec.first_event_id
    u = torch.rand(input_ids.shape, generator=generator)
    selected = is_event & (u < spec.mask_prob)

    # Rows with events but no selection get their event with the smallest draw, which is
    # uniform over the row's events.
    needs_one = is_event.any(dim=1) & ~selected.any(dim=1)
    if bool(needs_one.any()):
        pick = torch.where(is_event, u, torch.full_like(u, 2.0)).argmin(dim=1)
        forced = torch.zeros_like(selected)
        forced[torch.arange(len(pick)), pick] = True
        selected |= forced & needs_one.unsqueeze(1)

    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    # Two nested draws: [MASK] with mask_token_frac, else random with the conditional share.
    v = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (v < spec.mask_token_frac)
    rest = 1.0 - spec.mask_token_frac
    p_random = spec.random_token_frac / rest if rest > 0 else 0.0
    w = torch.rand(input_ids.shape, generator=generator)
    to_random = selected & ~to_mask & (w < p_random)
    n_events = vocab_size - spec.first_event_id
    random_ids = spec.first_event_id + torch.randint(
        0, max(n_events, 1), input_ids.shape, generator=generator, dtype=input_ids.dtype
    )
    out = torch.where(to_mask, torch.full_like(input_ids, MASK_ID), input_ids)
    out = torch.where(to_random, random_ids, out)
    return out, labels
