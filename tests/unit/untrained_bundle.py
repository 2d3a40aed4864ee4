"""An untrained tiny model in a real bundle, for tests of plumbing rather than quality."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from schemas.vocab import Vocab
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.model import bert_config, build_model, get_preset
from trainer.scoring import ScoringStrategy


def untrained_bundle(
    out: Path, events: Sequence[str], calibration: Sequence[float], quantile: float = 0.5
) -> Path:
    """Bundle `out`: a seeded untrained tiny model over `events`, its threshold the
    `quantile` of the `calibration` scores."""
    torch.manual_seed(0)
    vocab = Vocab.build([list(events)])
    model = build_model(bert_config(get_preset("tiny"), len(vocab)))
    cal = calibrate(list(calibration), quantile, strategy=ScoringStrategy(groups=2))
    export_bundle(
        out, model, vocab, cal, data_from=None, data_to=None, preset="tiny",
        parent_version=None, metrics={},
    )  # fmt: skip
    return out
