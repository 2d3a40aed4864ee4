"""The random-weight bundle bench/model_process.py measures with must load in the product's
scorer (its calibration lists no training windows' mixes or ceilings)."""

from __future__ import annotations

from pathlib import Path

from bench.model_process import make_bundle
from trainer.scoring.scorer import WindowScorer


def test_model_process_bench_bundle_loads_and_scores(tmp_path: Path) -> None:
    bundle, events = make_bundle(tmp_path, "tiny", 12, seed=0)
    scorer = WindowScorer.from_bundle(bundle, device="cpu")
    assert not (scorer.strategy.known_mixes or scorer.strategy.count_ceilings)
    [result] = scorer.score_events([events[:5]])
    assert result.score > 0.0 and result.nll.shape == (5,)  # its vocab holds no end marker
