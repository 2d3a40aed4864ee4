"""One training run, top to bottom: settings, DDP, data, model, optimizer, loop, bundle.

    <out>.run/                 the run directory (or settings.run_dir)
        checkpoints/step-*/    resumable state (see trainer.checkpoint)
        metrics.jsonl          one record per log interval and per validation
        loss.png               training and validation loss
    <out>/                     the model bundle, published atomically at the end

Rank 0 alone logs and writes; every rank trains, evaluates its shard and checkpoints its RNG.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from torch.nn.parallel import DistributedDataParallel

from schemas.bundle import BundleManifest
from schemas.errors import ConfigError, DataError, LogadError
from schemas.runtime.settings import settings_for_log
from schemas.vocab import Vocab
from trainer.bundle_templates import bundle_templates, check_coverage
from trainer.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    read_meta,
    read_vocab,
    restore_training_state,
    save_checkpoint,
)
from trainer.dataset import DataSelection, TrainingData, load_training_data, select_files
from trainer.distributed import Dist, close_distributed, init_distributed
from trainer.export import calibrate_on_validation, export_bundle, grow_vocab, load_warm_start
from trainer.loop import (
    EvalMetrics,
    FitResult,
    Hooks,
    MaskedLM,
    StepMetrics,
    TrainState,
    fit,
    planned_steps,
    steps_per_epoch,
)
from trainer.loss_plot import plot_losses
from trainer.model import (
    bert_config,
    build_model,
    get_preset,
    grow_time_buckets,
    load_model,
    time_buckets_of,
    unwrap,
)
from trainer.optim import build_optimizer, build_scheduler
from trainer.progress import MetricsLog, Progress, read_metrics
from trainer.scoring.strategy import DEFAULT_STRATEGY
from trainer.settings import TrainSettings
from trainer.threshold_rule import threshold_rule
from trainer.token_cache import TokenCache

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class TrainRequest:
    """One invocation's inputs (the settings hold the knobs)."""

    data: DataSelection
    out: Path
    """The bundle directory to create; must not exist yet."""
    init_from: Path | None = None
    resume: bool = False


@dataclass(frozen=True)
class TrainOutcome:
    run_dir: Path
    state: TrainState
    manifest: BundleManifest | None
    """None on ranks other than 0, and when the run was halted early."""


def run_dir_for(s: TrainSettings, out: Path) -> Path:
    return s.run_dir or out.with_name(out.name + ".run")


def run_training(
    s: TrainSettings, req: TrainRequest, halt: Callable[[TrainState], bool] | None = None
) -> TrainOutcome:
    d = init_distributed(s.device)
    threads = torch.get_num_threads()
    if d.device.type == "cpu" and s.cpu_threads:
        torch.set_num_threads(s.cpu_threads)
    try:
        return _run(s, req, d, halt)
    finally:
        torch.set_num_threads(threads)
        close_distributed(d)


def _run(
    s: TrainSettings, req: TrainRequest, d: Dist, halt: Callable[[TrainState], bool] | None
) -> TrainOutcome:
    run_dir = run_dir_for(s, req.out)
    ckpt_root = run_dir / "checkpoints"
    if req.out.exists():
        raise ConfigError(f"--out {req.out} already exists; choose a new bundle directory")
    resume_from = latest_checkpoint(ckpt_root) if req.resume else None
    if req.resume and resume_from is None and d.master:
        log.warning("resume_without_checkpoint", run_dir=str(run_dir), note="starting afresh")
    if not req.resume and list_checkpoints(ckpt_root):
        raise ConfigError(
            f"{run_dir} holds checkpoints of an earlier run: pass --resume to continue it, "
            "or remove that directory"
        )
    if d.master:
        log.info(
            "train_settings",
            **settings_for_log(s),
            world_size=d.world_size,
            torch_device=str(d.device),
            effective_run_dir=str(run_dir),
            resume_from=str(resume_from),
        )
    _seed_all(s.seed)

    # ---- data (rank 0 tokenizes into the cache first; the others then read it)
    meta = read_meta(resume_from) if resume_from else None
    warm = (
        load_warm_start(req.init_from, s.bundle_key)
        if req.init_from and resume_from is None
        else None
    )
    # Before any data is read: a set that renumbers the parent's ids fails at once.
    templates = bundle_templates(s.templates, req.data.sources, req.init_from)
    data = _load_data_on_all_ranks(
        s,
        req.data,
        d,
        base_vocab=warm.vocab if warm else None,
        fixed_vocab=read_vocab(resume_from) if resume_from else None,
    )
    if meta is not None and meta.file_keys != data.file_keys:
        raise ConfigError(
            f"the training data changed since checkpoint {resume_from}; "
            "drop --resume (or remove the run directory) to start afresh"
        )
    if d.master:
        check_coverage(templates, data.vocab)
    if len(data.val_idx) == 0:
        raise DataError(
            f"the validation slice is empty ({data.n_sessions} sessions x val_fraction "
            f"{s.val_fraction}); add data or raise --val-fraction"
        )
    # Before training: a budget per hour the data cannot convert fails now, not at the end.
    rule = (
        threshold_rule(
            s, (f.path for f in select_files(req.data, s.complete_only)), len(data.store)
        )
        if d.master
        else None
    )

    # ---- model
    if resume_from is not None:
        model = load_model(resume_from, d.device)
    elif warm is not None:
        model = grow_vocab(warm.model, len(data.vocab))
        if s.time_buckets and not time_buckets_of(model):
            # Turning time on in a nightly retrain: every bucket starts as the one type.
            model = grow_time_buckets(model, s.time_buckets)
        torch.nn.Module.to(model, d.device)
        if warm.preset and warm.preset != s.preset and d.master:
            log.warning("preset_from_bundle", bundle_preset=warm.preset, ignored=s.preset)
    else:
        config = bert_config(get_preset(s.preset), len(data.vocab), s.time_buckets)
        model = build_model(config, d.device)
    if time_buckets_of(model) != s.time_buckets:
        raise ConfigError(
            f"time_buckets is {s.time_buckets} but the model to continue from has "
            f"{time_buckets_of(model)} (set --time-buckets to match)"
        )
    model.train()
    # Dropout draws from here on: each rank its own stream.
    torch.manual_seed(s.seed * 1_000_003 + d.rank + 1)
    net: torch.nn.Module = MaskedLM(model, whole_encoder=not s.prune_last_layer)
    if d.enabled:
        net = DistributedDataParallel(
            net, device_ids=[d.device.index] if d.device.type == "cuda" else None
        )

    # ---- optimizer and schedule over the whole run
    spe = steps_per_epoch(data, s, d)
    if spe == 0:
        raise DataError(
            f"{len(data.train_idx)} training windows make fewer batches than the "
            f"{d.world_size} ranks; lower --tokens-per-batch or --nproc"
        )
    total_steps = planned_steps(spe, s)
    optimizer = build_optimizer(model, s, d.device)
    scheduler = build_scheduler(optimizer, s.warmup_steps, total_steps)
    state = TrainState()
    if resume_from is not None and meta is not None:
        restore_training_state(resume_from, optimizer, scheduler, d)
        state = meta.state
    if d.master:
        log.info(
            "train_plan",
            parameters=sum(p.numel() for p in model.parameters()),
            vocab=len(data.vocab),
            steps_per_epoch=spe,
            total_steps=total_steps,
            global_tokens_per_step=s.tokens_per_batch * d.world_size,
            start_epoch=state.epoch,
            start_step=state.global_step,
        )

    # ---- the loop
    parent = meta.parent_version if meta else (warm.version if warm else None)
    hooks = _RunHooks(
        s, d, run_dir, net, optimizer, scheduler, data, parent, total_steps, spe, state
    )
    try:
        result = fit(net, optimizer, scheduler, data, s, d, state, hooks, halt)
    finally:
        hooks.close()
    d.barrier()
    close_distributed(d)
    if result.halted or not d.master:
        return TrainOutcome(run_dir, result.state, None)

    # ---- calibrate and publish (rank 0)
    inner = unwrap(net)
    cal = calibrate_on_validation(
        inner,
        data,
        s.threshold_quantile,
        d.device,
        s.score_tokens_per_batch,
        replace(
            DEFAULT_STRATEGY,
            groups=s.score_groups,
            known_mixes=s.score_known_mixes,
            known_pairs=s.score_known_mixes and bool(s.score_known_pairs),
            count_ceilings=s.score_count_ceilings,
            known_ends=s.score_known_ends and s.end_marker,
        ),
        s.score_ceiling_support,
        rule,
        choose_known_pairs=s.score_known_pairs is None,
    )
    manifest = export_bundle(
        req.out,
        inner,
        data.vocab,
        cal,
        data_from=data.data_from,
        data_to=data.data_to,
        preset=warm.preset if warm and warm.preset else s.preset,
        parent_version=parent,
        metrics=_final_metrics(result, data, s),
        templates=templates,
        bundle_key=s.bundle_key,
    )
    return TrainOutcome(run_dir, result.state, manifest)


def _seed_all(seed: int) -> None:
    # Model init must match on every rank (DDP also broadcasts rank 0's weights).
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_data_on_all_ranks(
    s: TrainSettings,
    sel: DataSelection,
    d: Dist,
    base_vocab: Vocab | None,
    fixed_vocab: Vocab | None,
) -> TrainingData:
    def load() -> TrainingData:
        return load_training_data(
            sel,
            TokenCache(s.cache_dir, end_marker=s.end_marker, time_gaps=s.time_buckets > 0),
            s.val_fraction,
            s.vocab_size,
            base_vocab,
            fixed_vocab,
            complete_only=s.complete_only,
            window_filter=s.window_filter,
            val_covers_events=s.val_covers_events,
        )

    if not d.enabled:
        return load()
    error: LogadError | None = None
    data: TrainingData | None = None
    if d.master:
        try:
            data = load()
        except LogadError as e:
            error = e
    # A collective, so it doubles as the barrier after rank 0 filled the cache.
    if d.any_rank(error is not None):
        raise error or DataError("rank 0 could not prepare the training data")
    return data if data is not None else load()


def _final_metrics(result: FitResult, data: TrainingData, s: TrainSettings) -> dict[str, Any]:
    ev: EvalMetrics | None = result.last_eval
    return {
        "epochs": s.epochs,
        "steps": result.state.global_step,
        "train_loss": result.last_train_loss,
        "val_loss": ev.loss if ev else None,
        "val_accuracy": ev.accuracy if ev else None,
        "train_windows": len(data.train_idx),
        "val_windows": len(data.val_idx),
        "val_fraction": s.val_fraction,
        "val_covers_events": s.val_covers_events,
        "end_marker": s.end_marker,
        "sessions": data.n_sessions,
        "vocab_size": len(data.vocab),
        "excluded": data.excluded,
        "recurring_events": list(data.recurring),
    }


class _RunHooks(Hooks):
    """Progress and metrics on rank 0; checkpoints on every rank (each saves its RNG)."""

    def __init__(
        self,
        s: TrainSettings,
        d: Dist,
        run_dir: Path,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        data: TrainingData,
        parent_version: str | None,
        total_steps: int,
        steps_per_epoch: int,
        start: TrainState,
    ) -> None:
        self.s, self.d, self.run_dir = s, d, run_dir
        self.net, self.optimizer, self.scheduler = net, optimizer, scheduler
        self.vocab = data.vocab
        self.meta = {
            "file_keys": list(data.file_keys),
            "settings": settings_for_log(s),
            "parent_version": parent_version,
        }
        self.metrics_path = run_dir / "metrics.jsonl"
        self.progress: Progress | None = None
        if d.master:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.progress = Progress(
                MetricsLog(self.metrics_path),
                total_steps,
                steps_per_epoch,
                start,
                s.log_every_steps,
            )

    def on_step(self, state: TrainState, m: StepMetrics) -> None:
        if self.progress is not None:
            self.progress.on_step(state, m)

    def on_eval(self, state: TrainState, m: EvalMetrics) -> None:
        if self.progress is not None:
            self.progress.on_eval(state, m)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.d.master:
            plot_losses(read_metrics(self.metrics_path), self.run_dir / "loss.png")

    def checkpoint(self, state: TrainState) -> None:
        save_checkpoint(
            self.run_dir / "checkpoints",
            state,
            self.net,
            self.optimizer,
            self.scheduler,
            self.vocab,
            self.meta,
            self.d,
            self.s.keep_checkpoints,
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
