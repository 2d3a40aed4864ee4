"""The training loop: `train_step` and `evaluate` return metrics; `fit` runs the epochs.

Loss recipe (torchtitan's): the sum of cross entropy over the masked positions, divided by
the *global* number of masked tokens across ranks. DDP averages gradients over ranks, so the
loss is multiplied by the world size; the update then equals one rank's on the whole global
batch. The LM head runs only at the masked positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM

from schemas.errors import LogadError
from trainer.batching import IntArray, epoch_rng, plan_batches, shard_batches, shard_eval_batches
from trainer.collate import VALIDATION_EPOCH, Batch, EpochBatches, iterate
from trainer.dataset import TrainingData
from trainer.distributed import Dist
from trainer.end_marker import END_EVENT
from trainer.masking import MaskSpec
from trainer.model import autocast_for, flat_selection, gathered_logits
from trainer.prefix_cuts import CutSpec
from trainer.settings import TrainSettings


class NonFiniteLossError(LogadError):
    """The loss became NaN or infinite; the run stops before the optimizer applies it."""


class MaskedLM(torch.nn.Module):
    """BertForMaskedLM whose forward returns logits at the given flat positions only.

    DDP must wrap a module whose forward does the work (its hooks run in forward), so the
    masked-only head lives here rather than in a free function. The flat indices come from
    the CPU collate step: a boolean-mask gather on the GPU would synchronize every step.
    As in scoring, the last layer computes only the masked positions (trainer.model.
    gathered_logits); `whole_encoder` runs every position through it instead, the same
    logits at more cost (kept for the throughput bench's comparison and the tests).
    """

    def __init__(self, model: BertForMaskedLM, *, whole_encoder: bool = False) -> None:
        super().__init__()
        self.module = model
        self.whole_encoder = whole_encoder

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        flat_idx: torch.Tensor,
        row_masked: int,
        token_type_ids: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if not self.whole_encoder:
            shape = (input_ids.shape[0], input_ids.shape[1])
            rows, keep = flat_selection(flat_idx, shape, row_masked)
            return gathered_logits(
                self.module, input_ids, attention_mask, rows, keep, token_type_ids, segments
            )
        if segments is not None:
            raise ValueError("packed rows need the pruned last layer (prune_last_layer)")
        hidden = self.module.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        selected = hidden.reshape(-1, hidden.shape[-1]).index_select(0, flat_idx)
        logits: torch.Tensor = self.module.cls(selected)
        return logits


@dataclass(frozen=True)
class TrainState:
    """Where training stands: the data position a resumed run continues from."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


@dataclass(frozen=True)
class StepMetrics:
    loss: float
    """Mean cross entropy per masked token over the global batch."""
    lr: float
    grad_norm: torch.Tensor | None
    """Pre-clip global gradient norm, left on the device (reading it would synchronize)."""
    masked_tokens: int
    tokens: int
    """Non-pad tokens over all ranks."""
    padded_tokens: int
    """This rank's padded tokens (rows x padded length)."""


@dataclass(frozen=True)
class EvalMetrics:
    loss: float
    """Cross entropy per masked token, summed over all ranks' shards."""
    accuracy: float
    masked_tokens: int


def batch_to(
    b: Batch, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    nb = device.type == "cuda"
    types, segments = b.token_type_ids, b.segments
    return (
        b.input_ids.to(device, non_blocking=nb),
        b.flat_idx.to(device, non_blocking=nb),
        b.targets.to(device, non_blocking=nb),
        None if types is None else types.to(device, non_blocking=nb),
        None if segments is None else segments.to(device, non_blocking=nb),
    )


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch: Batch,
    d: Dist,
    grad_clip: float,
) -> StepMetrics:
    net.train()
    ids, flat_idx, targets, types, segments = batch_to(batch, d.device)
    counts = torch.tensor([batch.n_masked, batch.n_tokens], dtype=torch.float64, device=d.device)
    d.all_reduce(counts)
    with autocast_for(d.device):
        logits = net(ids, ids != 0, flat_idx, batch.row_masked, types, segments)
    loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
    loss = loss_sum * d.world_size / counts[0].float()
    loss.backward()  # type: ignore[no-untyped-call]
    # Any rank's NaN poisons the sum, so every rank sees it and all stop together.
    reported = d.all_reduce(loss_sum.detach().double().reshape(1))
    # The one host sync per step: we must know the loss is finite before stepping.
    total, n_masked, n_tokens = torch.cat([reported, counts]).tolist()
    mean_loss = total / n_masked
    if not math.isfinite(mean_loss):
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLossError(
            f"training loss became {mean_loss} at lr {scheduler.get_last_lr()[0]:.3g}; "
            "try a lower --lr, more --warmup-steps or a smaller --grad-clip"
        )
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip) if grad_clip > 0 else None
    lr = float(scheduler.get_last_lr()[0])
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepMetrics(
        loss=mean_loss,
        lr=lr,
        grad_norm=grad_norm,
        masked_tokens=int(n_masked),
        tokens=int(n_tokens),
        padded_tokens=batch.n_padded,
    )


def evaluate(net: torch.nn.Module, batches: Iterable[Batch], d: Dist) -> EvalMetrics:
    """Every rank scores its shard; the sums are all-reduced (per masked token, not batch)."""
    head = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net
    head.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=d.device)
    with torch.inference_mode():
        for b in batches:
            ids, flat_idx, targets, types, segments = batch_to(b, d.device)
            with autocast_for(d.device):
                logits = head(ids, ids != 0, flat_idx, b.row_masked, types, segments)
            ce = F.cross_entropy(logits.float(), targets, reduction="sum")
            hits = (logits.argmax(dim=-1) == targets).sum()
            sums += torch.stack(
                [
                    ce.double(),
                    hits.double(),
                    torch.tensor(b.n_masked, device=d.device, dtype=torch.float64),
                ]
            )
    d.all_reduce(sums)
    loss_sum, hits_sum, n = sums.tolist()
    return EvalMetrics(
        loss=loss_sum / n if n else math.nan,
        accuracy=hits_sum / n if n else math.nan,
        masked_tokens=int(n),
    )


@dataclass(frozen=True)
class EpochPlan:
    """The batches this rank takes in one epoch, and their numbers in the global plan."""

    batches: list[IntArray]
    plan_ids: list[int]


def rank_plan(data: TrainingData, s: TrainSettings, d: Dist, epoch: int) -> EpochPlan:
    lengths = data.store.token_lengths(data.train_idx)
    plan = plan_batches(lengths, s.tokens_per_batch, s.bucket_width, epoch_rng(s.seed, epoch))
    usable = len(plan) // d.world_size * d.world_size
    return EpochPlan(
        shard_batches(plan, d.rank, d.world_size), list(range(d.rank, usable, d.world_size))
    )


def epoch_batches(
    data: TrainingData,
    s: TrainSettings,
    d: Dist,
    epoch: int,
    start: int = 0,
    stop: int | None = None,
) -> tuple[EpochPlan, EpochBatches]:
    """This rank's batches of `epoch` (shuffled and masked afresh from the seed and the
    epoch), from its `start`-th batch on, and before its `stop`-th (None: to the end)."""
    plan = rank_plan(data, s, d, epoch)
    if stop is not None:
        plan = EpochPlan(plan.batches[:stop], plan.plan_ids[:stop])
    batches = EpochBatches(
        data.store,
        data.train_idx,
        plan.batches,
        plan.plan_ids,
        epoch=epoch,
        seed=s.seed,
        bucket_width=s.bucket_width,
        vocab_size=len(data.vocab),
        spec=mask_spec(s),
        cuts=cut_spec(data, s),
        start=start,
        time_buckets=s.time_buckets,
        pack_tokens=s.pack_tokens,
    )
    return plan, batches


def steps_per_epoch(data: TrainingData, s: TrainSettings, d: Dist) -> int:
    # The count of batches does not depend on the shuffle, so epoch 0 stands for all.
    return len(rank_plan(data, s, d, 0).plan_ids)


def planned_steps(steps_per_epoch: int, s: TrainSettings) -> int:
    """The run's optimizer steps: `epochs` passes, raised to min_steps, capped at
    max_steps."""
    steps = max(steps_per_epoch * s.epochs, s.min_steps)
    return min(steps, s.max_steps) if s.max_steps else steps


def mask_spec(s: TrainSettings) -> MaskSpec:
    return MaskSpec(s.mask_prob, s.mask_token_frac, s.random_token_frac)


def cut_spec(data: TrainingData, s: TrainSettings) -> CutSpec | None:
    """Prefix cuts for training batches (trainer/prefix_cuts.py); validation keeps whole
    sessions, as calibration scores them."""
    if s.prefix_cut_fraction == 0 or END_EVENT not in data.vocab:
        return None
    return CutSpec(s.prefix_cut_fraction, data.vocab.id_of(END_EVENT))


def validation_batches(data: TrainingData, s: TrainSettings, d: Dist) -> EpochBatches:
    """This rank's validation batches, with fixed masks so epochs compare like for like."""
    lengths = data.store.token_lengths(data.val_idx)
    plan = plan_batches(lengths, s.tokens_per_batch, s.bucket_width, None)
    ids = list(range(len(plan)))
    return EpochBatches(
        data.store,
        data.val_idx,
        shard_eval_batches(plan, d.rank, d.world_size),
        shard_eval_batches(ids, d.rank, d.world_size),
        epoch=VALIDATION_EPOCH,
        seed=s.seed,
        bucket_width=s.bucket_width,
        vocab_size=len(data.vocab),
        spec=mask_spec(s),
        time_buckets=s.time_buckets,
        pack_tokens=s.pack_tokens,
    )


class Hooks:
    """What `fit` calls out to: progress and metrics, checkpoints, and a test-only halt."""

    def on_step(self, state: TrainState, m: StepMetrics) -> None: ...
    def on_eval(self, state: TrainState, m: EvalMetrics) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def checkpoint(self, state: TrainState) -> None: ...


@dataclass(frozen=True)
class FitResult:
    state: TrainState
    last_train_loss: float | None
    last_eval: EvalMetrics | None
    halted: bool = False


def fit(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: TrainingData,
    s: TrainSettings,
    d: Dist,
    state: TrainState,
    hooks: Hooks,
    halt: Callable[[TrainState], bool] | None = None,
) -> FitResult:
    pin = d.device.type == "cuda"
    val = validation_batches(data, s, d)
    last_loss: float | None = None
    last_eval: EvalMetrics | None = None
    spe = steps_per_epoch(data, s, d)
    total = planned_steps(spe, s)
    # The last pass may be cut short (max_steps, or min_steps past whole passes).
    for epoch in range(state.epoch, -(-total // spe)):
        stop = min(spe, total - epoch * spe)
        plan, batches = epoch_batches(data, s, d, epoch, state.step_in_epoch, stop)
        n_steps = len(plan.plan_ids)
        for batch in iterate(batches, s.num_workers, pin):
            m = train_step(net, optimizer, scheduler, batch, d, s.grad_clip)
            last_loss = m.loss
            state = replace(
                state, step_in_epoch=state.step_in_epoch + 1, global_step=state.global_step + 1
            )
            hooks.on_step(state, m)
            mid_epoch = state.step_in_epoch < n_steps
            if mid_epoch and s.eval_every_steps and state.global_step % s.eval_every_steps == 0:
                last_eval = evaluate(net, iterate(val, 0, pin), d)
                hooks.on_eval(state, last_eval)
            if (
                mid_epoch
                and s.checkpoint_every_steps
                and (state.global_step % s.checkpoint_every_steps == 0)
            ):
                hooks.checkpoint(state)
            if halt is not None and halt(state):
                return FitResult(state, last_loss, last_eval, halted=True)
        last_eval = evaluate(net, iterate(val, 0, pin), d)
        hooks.on_eval(state, last_eval)
        state = TrainState(epoch=epoch + 1, step_in_epoch=0, global_step=state.global_step)
        hooks.checkpoint(state)
        hooks.on_epoch_end(state)
        if halt is not None and halt(state):
            return FitResult(state, last_loss, last_eval, halted=True)
    return FitResult(state, last_loss, last_eval)
