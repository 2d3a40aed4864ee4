"""After training: calibrate on the validation slice and publish the model bundle atomically;
before training: warm-start from an earlier bundle.

The bundle directory holds exactly config.json, model.safetensors, vocab.json,
calibration.json and manifest.json, and templates.json when trained on mined templates. It
is written beside its final path and renamed into place (`schemas.bundle.publish_dir`), so a
reader never sees a partial bundle.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import structlog
import torch
from transformers import BertForMaskedLM

from schemas.bundle import (
    CALIBRATION,
    MANIFEST,
    TEMPLATES,
    VOCAB,
    BundleManifest,
    Calibration,
    new_version,
    publish_dir,
    sign_bundle,
    verify_bundle,
    write_manifest,
)
from schemas.errors import BundleError, DecodeError
from schemas.runtime.secret import Secret
from schemas.templates import TemplateSet, write_templates
from schemas.vocab import Vocab
from trainer.calibration import ThresholdRule, calibrate, calibration_scores
from trainer.dataset import TrainingData, window_types
from trainer.end_marker import END_EVENT
from trainer.known_mixes import (
    CEILING_SUPPORT,
    ORDER_NOISE_SHARE,
    KnownMixes,
    count_ceilings,
    ending_pairs,
    known_mix_keys,
    known_pair_keys,
    reordered_share,
)
from trainer.model import load_model, save_model, time_buckets_of, unwrap
from trainer.scoring.score import score_token_windows
from trainer.scoring.strategy import DEFAULT_STRATEGY, ScoringStrategy

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WarmStart:
    model: BertForMaskedLM
    vocab: Vocab
    version: str
    preset: str | None


def load_warm_start(bundle_dir: Path, bundle_key: Secret | None = None) -> WarmStart:
    """The earlier bundle's model and vocab (verified against its manifest, and with a key
    its signature)."""
    manifest = verify_bundle(bundle_dir, bundle_key)
    try:
        vocab = Vocab.load(bundle_dir / VOCAB)
    except DecodeError as e:
        raise BundleError(f"{bundle_dir}: bad {VOCAB}: {e}") from None
    model = load_model(bundle_dir, "cpu")
    if int(model.config.vocab_size) != len(vocab):
        raise BundleError(f"{bundle_dir}: model vocab {model.config.vocab_size} != {len(vocab)}")
    return WarmStart(model, vocab, manifest.version, manifest.preset)


def grow_vocab(model: BertForMaskedLM, new_size: int) -> BertForMaskedLM:
    """Resize the (tied) embeddings and output bias for an extended vocab; old rows are kept."""
    old = int(model.config.vocab_size)
    if new_size != old:
        model.resize_token_embeddings(new_size, mean_resizing=True)
        log.info("vocab_extended", old_size=old, new_size=new_size)
    return model


def validation_windows(data: TrainingData) -> list[npt.NDArray[np.int64]]:
    """The held-out windows as event token ids (no [CLS]/[SEP]), the scorer's input."""
    return _windows(data, data.val_idx)


def validation_types(data: TrainingData, time_buckets: int) -> list[npt.NDArray[np.int64]] | None:
    """The held-out windows' token types (gap buckets) for a time-aware model; else None."""
    if not time_buckets:
        return None
    return [window_types(data.store, int(i), time_buckets) for i in data.val_idx]


def _windows(data: TrainingData, idx: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    st = data.store
    return [
        np.asarray(st.tokens[int(st.starts[i]) : int(st.starts[i] + st.lengths[i])], np.int64)
        for i in idx
    ]


def calibrate_on_validation(
    model: BertForMaskedLM,
    data: TrainingData,
    threshold_quantile: float,
    device: torch.device,
    max_batch_tokens: int,
    strategy: ScoringStrategy | None = None,
    ceiling_support: int = CEILING_SUPPORT,
    rule: ThresholdRule | None = None,
    choose_known_pairs: bool = False,
) -> Calibration:
    """The threshold for `strategy` from the validation slice; the calibration also lists
    the training windows' event mixes, pairs and count ceilings (each needing
    `ceiling_support` windows), so any bundle can use a strategy that looks them up.
    `choose_known_pairs`: the strategy's `known_pairs` (with known mixes) is chosen from the
    training windows: off where their source interleaves (trainer/known_mixes.py)."""
    strategy = strategy or DEFAULT_STRATEGY
    train_windows = _windows(data, data.train_idx)
    if choose_known_pairs and strategy.known_mixes:
        share = reordered_share(train_windows)
        strategy = replace(strategy, known_pairs=share < ORDER_NOISE_SHARE)
        log.info(
            "known_pairs_chosen",
            known_pairs=strategy.known_pairs,
            reordered_share=round(share, 4),
            order_noise_share=ORDER_NOISE_SHARE,
        )
    held_out = validation_windows(data)
    # Ceilings need `ceiling_support` windows already; mixes and pairs need one, so only
    # the windows that vouch for them (TrainingData.known_idx) are recorded.
    vouching = _windows(data, data.known_idx())
    end_id = data.vocab.id_of(END_EVENT) if END_EVENT in data.vocab else None
    # The validation slice's endings are normal too (trainer/known_mixes.py, known ends).
    held_out_ends = ending_pairs(held_out, end_id) if end_id is not None else set()
    known = KnownMixes(
        frozenset(known_mix_keys(vouching)),
        frozenset(known_pair_keys(vouching)) | held_out_ends,
        count_ceilings(train_windows, held_out, ceiling_support),
        end_id,
    )
    types = validation_types(data, time_buckets_of(model))
    results = score_token_windows(
        model,
        cast(Sequence[Sequence[int]], held_out),
        strategy,
        device,
        max_batch_tokens=max_batch_tokens,
        known=known,
        token_types=cast(Sequence[Sequence[int]] | None, types),
    )
    cal = calibrate(
        calibration_scores(results), threshold_quantile, strategy=strategy, known=known, rule=rule
    )
    log.info(
        "calibrated",
        windows=cal.n_windows,
        known_mixes=len(known.mixes),
        known_pairs=len(known.pairs),
        count_ceilings=len(known.ceilings or ()),
        threshold=cal.threshold,
        threshold_quantile=cal.threshold_quantile,
        threshold_method=cal.threshold_method,
        threshold_interval=cal.interval and [cal.interval.lower, cal.interval.upper],
        groups=strategy.groups,
        **{k.replace(".", "_"): v for k, v in cal.quantiles.items()},
    )
    return cal


def export_bundle(
    out: Path,
    model: torch.nn.Module,
    vocab: Vocab,
    calibration: Calibration,
    *,
    data_from: str | None,
    data_to: str | None,
    preset: str | None,
    parent_version: str | None,
    metrics: dict[str, Any],
    version: str | None = None,
    templates: TemplateSet | None = None,
    bundle_key: Secret | None = None,
) -> BundleManifest:
    """Write the five files (six with `templates`) to a temporary directory beside `out`,
    then rename it to `out`; with a key, signed (manifest.sig)."""
    version = version or new_version()
    if out.exists():
        raise BundleError(f"{out} already exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{version}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, tmp)
        vocab.save(tmp / VOCAB)
        (tmp / CALIBRATION).write_bytes(calibration.to_json())
        if templates is not None:
            write_templates(tmp / TEMPLATES, templates)
        manifest = write_manifest(
            tmp,
            version,
            data_from,
            data_to,
            preset=preset,
            parent_version=parent_version,
            metrics=metrics,
            time_buckets=time_buckets_of(unwrap(model)),
        )
        assert (tmp / MANIFEST).is_file()
        if bundle_key is not None:
            sign_bundle(tmp, bundle_key)
        publish_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("bundle_exported", path=str(out), version=version)
    return manifest
