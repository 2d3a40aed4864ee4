"""Prefix cuts: training rows that stop mid-session, without the session-end marker.

Without them every training row that ends its session ends `... <end> [SEP]`, and the model
learns that the token before [SEP] is the marker: a window the stream cut mid-session (size
or duration limit, open-session bound, revoke, shutdown: no marker) then looks wrong at its
last event, and normal sessions cut at a random point raise alerts (docs/scoring.md has
the measurement). With a share of rows cut to a random prefix,
the token before [SEP] may be the marker or the next event, and the model judges which
from the events before it.

Pure: the randomness comes from the generator passed in. Applied per batch before masking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from schemas.vocab import PAD_ID, SEP_ID


@dataclass(frozen=True)
class CutSpec:
    fraction: float
    """Share of marked rows (those that end their session) cut to a prefix."""
    end_id: int
    """Token id of the session-end marker."""


def cut_prefixes(ids: torch.Tensor, spec: CutSpec, generator: torch.Generator) -> torch.Tensor:
    """Return a copy of `ids` ((rows, width) int64, rows `[CLS] e1..en <end> [SEP] [PAD]..`)
    where each marked row with n >= 2 events is, with probability `spec.fraction`, cut to
    `[CLS] e1..eL [SEP] [PAD]..` with L uniform in 1..n-1. Other rows are unchanged."""
    rows, width = ids.shape
    is_end = ids == spec.end_id
    # The marker sits at column n + 1 ([CLS] first); argmax finds it in marked rows.
    n_events = is_end.to(torch.int64).argmax(dim=1) - 1
    u = torch.rand(rows, generator=generator)
    v = torch.rand(rows, generator=generator)
    chosen = is_end.any(dim=1) & (n_events >= 2) & (u < spec.fraction)
    if not bool(chosen.any()):
        return ids.clone()
    span = (n_events - 1).clamp(min=1)
    kept = 1 + torch.minimum((v * span).to(torch.int64), span - 1)
    cols = torch.arange(width).unsqueeze(0)
    cut = torch.where(cols <= kept.unsqueeze(1), ids, torch.full_like(ids, PAD_ID))
    cut[torch.arange(rows), (kept + 1).clamp(max=width - 1)] = SEP_ID
    return torch.where(chosen.unsqueeze(1), cut, ids)
