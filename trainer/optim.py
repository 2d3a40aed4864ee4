"""AdamW with no decay on biases or LayerNorm, and a cosine schedule with optional warm-up."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

from trainer.settings import TrainSettings


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, object]]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        # Biases and LayerNorm weights are 1-D; decaying them only shrinks the model's scale.
        if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    model: torch.nn.Module, s: TrainSettings, device: torch.device
) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, s.weight_decay),
        lr=s.lr,
        betas=(s.adam_beta1, s.adam_beta2),
        eps=s.adam_eps,
        # One fused kernel for all parameters on GPU; the reference loop on CPU.
        fused=device.type == "cuda",
    )


def cosine_with_warmup(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear 0 -> 1 over warm-up, then cosine 1 -> 0 at total_steps."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> LambdaLR:
    return LambdaLR(
        optimizer, partial(cosine_with_warmup, warmup_steps=warmup_steps, total_steps=total_steps)
    )
