"""Re-calibrate a trained bundle for another scoring strategy, on normal data only.

A threshold belongs to the strategy it was calibrated with: a mean-NLL threshold means
nothing for a max-NLL score. Changing the strategy therefore means re-scoring the *same*
validation slice the trainer held out (re-derived here with the trainer's own split, by
session hash) and taking the threshold from those normal scores. No anomaly and no test
label is involved.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import structlog
import torch
from transformers import BertForMaskedLM

from schemas.bundle import (
    CALIBRATION,
    CONFIG,
    MANIFEST,
    VOCAB,
    WEIGHTS,
    BundleManifest,
    Calibration,
    new_version,
    publish_dir,
    verify_bundle,
    write_manifest,
)
from schemas.errors import BundleError, DataError
from schemas.vocab import Vocab
from trainer.calibration import ThresholdRule, calibrate, calibration_scores
from trainer.dataset import DataSelection, load_training_data
from trainer.end_marker import uses_end_marker
from trainer.export import validation_types, validation_windows
from trainer.known_mixes import KnownMixes
from trainer.scoring.score import score_token_windows
from trainer.scoring.strategy import ScoringStrategy
from trainer.settings import TrainSettings
from trainer.token_cache import TokenCache

log = structlog.get_logger(__name__)

DEFAULT_VAL_FRACTION = TrainSettings.val_fraction


def bundle_val_fraction(manifest: BundleManifest) -> float:
    """The validation fraction the bundle was trained with, when its manifest records it."""
    v = manifest.metrics.get("val_fraction")
    return float(v) if isinstance(v, int | float) else DEFAULT_VAL_FRACTION


def bundle_covers_events(manifest: BundleManifest) -> bool:
    """Whether the bundle's split moved validation-only events into training (older bundles:
    no)."""
    return manifest.metrics.get("val_covers_events") is True


def validation_slice(
    data: Sequence[Path],
    vocab: Vocab,
    val_fraction: float,
    cache_dir: Path,
    expected_windows: int | None = None,
    covers_events: bool = False,
) -> list[npt.NDArray[np.int64]]:
    """The held-out windows of the training data, as the bundle's token ids.

    Uses the trainer's loader and split (and marks windows when the vocab holds the end
    marker, as the trainer did), so these are exactly the windows the trainer never
    trained on. `expected_windows` (the manifest's `val_windows`) guards against re-deriving
    the slice from other data or with another fraction.
    """
    windows, _ = timed_validation_slice(
        data,
        vocab,
        val_fraction,
        cache_dir,
        expected_windows,
        time_buckets=0,
        covers_events=covers_events,
    )
    return windows


def timed_validation_slice(
    data: Sequence[Path],
    vocab: Vocab,
    val_fraction: float,
    cache_dir: Path,
    expected_windows: int | None = None,
    *,
    time_buckets: int,
    covers_events: bool = False,
) -> tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.int64]] | None]:
    """`validation_slice`, and for a time-aware bundle (`time_buckets` > 0) each window's
    token types (gap buckets) as the trainer computed them; None for a time-blind one.
    `covers_events`: the bundle's split (`bundle_covers_events`)."""
    td = load_training_data(
        DataSelection(tuple(data)),
        TokenCache(cache_dir, end_marker=uses_end_marker(vocab), time_gaps=time_buckets > 0),
        val_fraction,
        len(vocab),
        fixed_vocab=vocab,
        val_covers_events=covers_events,
    )
    windows = validation_windows(td)
    if expected_windows is not None and len(windows) != expected_windows:
        raise DataError(
            f"the validation slice has {len(windows)} windows but the bundle was calibrated "
            f"on {expected_windows}: pass the bundle's training data and --val-fraction"
        )
    if not windows:
        raise DataError("the validation slice is empty: raise --val-fraction")
    return windows, validation_types(td, time_buckets)


def strategy_scores(
    model: BertForMaskedLM,
    windows: Sequence[npt.ArrayLike],
    strategy: ScoringStrategy,
    device: torch.device,
    max_batch_tokens: int = 16_384,
    known: KnownMixes | None = None,
    token_types: Sequence[npt.ArrayLike] | None = None,
) -> npt.NDArray[np.float64]:
    """What `strategy` is calibrated on for these windows (`calibration_scores`);
    `token_types`: a time-aware model's gap buckets per window."""
    token_windows = [np.asarray(w, dtype=np.int64) for w in windows]
    types = None if token_types is None else [np.asarray(t, np.int64) for t in token_types]
    results = score_token_windows(
        model,
        cast(Sequence[Sequence[int]], token_windows),  # int64 arrays serve as sequences
        strategy,
        device,
        max_batch_tokens=max_batch_tokens,
        known=known,
        token_types=cast(Sequence[Sequence[int]] | None, types),
    )
    return calibration_scores(results)


def recalibrate(
    model: BertForMaskedLM,
    val_windows: Sequence[npt.ArrayLike],
    strategy: ScoringStrategy,
    threshold_quantile: float,
    device: torch.device,
    max_batch_tokens: int = 16_384,
    known: KnownMixes | None = None,
    token_types: Sequence[npt.ArrayLike] | None = None,
    rule: ThresholdRule | None = None,
) -> Calibration:
    """A fresh Calibration for `strategy`, from the validation slice's scores; it keeps
    `known` (what the bundle's training windows held). `token_types`: a time-aware
    model's gap buckets per window (`timed_validation_slice`). `rule`: a budget or method
    (default: the quantile)."""
    scores = strategy_scores(
        model, val_windows, strategy, device, max_batch_tokens, known, token_types
    )
    cal = calibrate(scores, threshold_quantile, strategy=strategy, known=known, rule=rule)
    log.info(
        "recalibrated",
        groups=strategy.groups,
        windows=cal.n_windows,
        threshold=cal.threshold,
    )
    return cal


def write_recalibrated_bundle(src: Path, dst: Path, calibration: Calibration) -> BundleManifest:
    """A copy of bundle `src` at `dst` with a new calibration.json: a new version whose
    parent is `src`'s (same weights and vocab), published atomically. A calibration that
    lists no known event mixes (or no count ceilings) takes `src`'s: they come from the
    same training data."""
    manifest = verify_bundle(src)
    old = Calibration.from_json((src / CALIBRATION).read_bytes())
    if not calibration.known_mixes:
        calibration = dataclasses.replace(
            calibration, known_mixes=old.known_mixes, known_pairs=old.known_pairs
        )
    if calibration.count_ceilings is None:
        calibration = dataclasses.replace(calibration, count_ceilings=old.count_ceilings)
    if dst.exists():
        raise BundleError(f"{dst} already exists")
    version = new_version()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{version}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in (CONFIG, WEIGHTS, VOCAB):
            shutil.copy2(src / name, tmp / name)
        (tmp / CALIBRATION).write_bytes(calibration.to_json())
        new = write_manifest(
            tmp,
            version,
            manifest.data_from,
            manifest.data_to,
            preset=manifest.preset,
            parent_version=manifest.version,
            metrics={**manifest.metrics, "recalibrated_from": manifest.version},
            time_buckets=manifest.time_buckets,
        )
        assert (tmp / MANIFEST).is_file()
        publish_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "recalibrated_bundle_written",
        path=str(dst),
        version=version,
        parent=manifest.version,
        threshold=calibration.threshold,
    )
    return new
