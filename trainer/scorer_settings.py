"""`ScorerSettings`: where a model scores windows and how many tokens go in one batch.

A settings section (see `schemas.runtime.settings`) shared by every process that scores:
serve, replay and evaluate. Torch-free, so `--help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.windows import MAX_TOKENS


@dataclass(frozen=True)
class ScorerSettings:
    """Scoring

    Where the model runs and how much it scores at once."""

    device: str = "auto"
    """Scoring device: auto (cuda if present, else cpu), cpu, cuda, cuda:N."""
    max_batch_tokens: int = 16_384
    """Most tokens in one scoring batch (windows x padded length); a full window must fit."""
    explain_known_mixes: bool = False
    """Run the model on windows their known mix scores 0, to list their surprising events
    with the score (off: no forward pass for them, and no explanation)."""

    def __post_init__(self) -> None:
        if self.max_batch_tokens < MAX_TOKENS:
            # A full window must fit in one batch.
            raise ValueError(f"max_batch_tokens must be at least {MAX_TOKENS}")
