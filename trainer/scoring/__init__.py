"""Window scoring: the one path the trainer, the live stream and replay all score with.

Read in order:

- strategy.py: `ScoringStrategy`, what a bundle records of how its windows are scored, and
  `DEFAULT_STRATEGY`, what `logad train` records;
- passes.py: the masked forward passes (every event masked once over `groups` passes);
- rules.py: from predictions to a score (event NLLs, [UNK] and count ceilings, the max,
  the known-mix exemption), in numpy;
- score.py: `score_token_windows`, the path that puts them together;
- scorer.py: `WindowScorer`, a loaded bundle that scores `Window` records.
"""

from trainer.scoring.passes import FIRST_EVENT_ID, mask_groups
from trainer.scoring.rules import missing_lookup
from trainer.scoring.score import SurprisingToken, WindowResult, score_token_windows
from trainer.scoring.scorer import WindowScorer
from trainer.scoring.strategy import DEFAULT_STRATEGY, DEFAULT_UNK_NLL, ScoringStrategy

__all__ = [
    "DEFAULT_STRATEGY",
    "DEFAULT_UNK_NLL",
    "FIRST_EVENT_ID",
    "ScoringStrategy",
    "SurprisingToken",
    "WindowResult",
    "WindowScorer",
    "mask_groups",
    "missing_lookup",
    "score_token_windows",
]
