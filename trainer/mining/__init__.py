"""Template mining: raw log messages to stable template ids (pure Python, no torch)."""

from trainer.mining.masking import DEFAULT_MASK_RULES, Masker, resolve_rules
from trainer.mining.miner import DEFAULT_PARAMS, TemplateMiner, with_params

__all__ = [
    "DEFAULT_MASK_RULES",
    "DEFAULT_PARAMS",
    "Masker",
    "TemplateMiner",
    "resolve_rules",
    "with_params",
]
