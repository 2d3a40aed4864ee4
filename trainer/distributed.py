"""DDP set-up from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*).

Without that environment the run is a single process and every collective is a no-op.
Backend: nccl on GPUs, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from schemas.errors import ConfigError
from trainer.model import device_for


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def master(self) -> bool:
        """Rank 0 alone logs and writes."""
        return self.rank == 0

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum in place across ranks (identity when single-process)."""
        if self.enabled:
            dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if any rank passed True (to stop all ranks together)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def check_nproc(nproc: int, device: str, gpu_count: int) -> None:
    """`--nproc` must not exceed the GPUs present when training on GPU."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    on_gpu = device.startswith("cuda") or (device == "auto" and gpu_count > 0)
    if on_gpu and nproc > gpu_count:
        raise ConfigError(f"--nproc {nproc} is more than the {gpu_count} GPU(s) present")
    if device.startswith("cuda") and gpu_count == 0:
        raise ConfigError("device 'cuda' requested but no GPU is present")


def init_distributed(device_setting: str) -> Dist:
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Dist(0, 1, 0, device_for(device_setting))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = device_for(device_setting)
    if device.type == "cuda":
        check_nproc(
            int(os.environ.get("LOCAL_WORLD_SIZE", world)), "cuda", torch.cuda.device_count()
        )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return Dist(rank, world, local_rank, device)


def close_distributed(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
