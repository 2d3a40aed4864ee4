"""Checkpoints: everything a resumed run needs to continue exactly, with no pickle.

    <run_dir>/checkpoints/step-000001200/
        config.json, model.safetensors    the model (trainer.model.save_model)
        vocab.json                         the run's vocab (a resume must not rebuild it)
        optimizer.safetensors              AdamW state tensors, keyed "<param index>.<name>"
        optimizer.json                     param groups and any non-tensor state
        scheduler.json                     LR scheduler state
        rng-rank<R>.safetensors / .json    torch CPU/CUDA, numpy and python RNG states, per rank
        meta.json                          data position (epoch, step), data fingerprint, settings

A checkpoint is written to `.tmp-step-...` and renamed into place, so the newest complete
`step-*` directory is always whole. Rank 0 writes all but each rank's RNG files.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import safetensors.torch
import structlog
import torch

from schemas.errors import ConfigError
from schemas.vocab import Vocab
from trainer.distributed import Dist
from trainer.loop import TrainState
from trainer.model import save_model

log = structlog.get_logger(__name__)

PREFIX = "step-"
FORMAT = 1


def checkpoint_name(global_step: int) -> str:
    return f"{PREFIX}{global_step:09d}"


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


@dataclass(frozen=True)
class CheckpointMeta:
    state: TrainState
    world_size: int
    file_keys: tuple[str, ...]
    settings: dict[str, Any]
    parent_version: str | None


# --- RNG -----------------------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = st
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    tensors["python_state"] = torch.tensor(py_state, dtype=torch.int64)
    info = {
        "numpy": {
            "name": np_state[0],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "gauss_next": py_gauss},
    }
    return tensors, info


def restore_rng(tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith("torch_cuda_"))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = info["numpy"]
    np.random.set_state(
        (
            n["name"],
            tensors["numpy_keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = info["python"]
    random.setstate((p["version"], tuple(tensors["python_state"].tolist()), p["gauss_next"]))


# --- optimizer and scheduler ------------------------------------------------------------------


def optimizer_to_files(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extras: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                extras.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "extras": extras}


def optimizer_from_files(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], doc: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = t
    for pid, extra in doc.get("extras", {}).items():
        state.setdefault(int(pid), {}).update(extra)
    groups = []
    for g in doc["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


# --- save / load ------------------------------------------------------------------------------


def save_checkpoint(
    root: Path,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    vocab: Vocab,
    meta: dict[str, Any],
    d: Dist,
    keep: int,
) -> Path:
    """Write a checkpoint atomically (every rank calls this; rank 0 publishes it)."""
    final = root / checkpoint_name(state.global_step)
    tmp = root / f".tmp-{final.name}"
    if d.master:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    d.barrier()
    rng_tensors, rng_info = capture_rng()
    safetensors.torch.save_file(rng_tensors, str(tmp / f"rng-rank{d.rank}.safetensors"))
    (tmp / f"rng-rank{d.rank}.json").write_bytes(orjson.dumps(rng_info))
    d.barrier()
    if d.master:
        save_model(model, tmp)
        vocab.save(tmp / "vocab.json")
        opt_tensors, opt_doc = optimizer_to_files(optimizer)
        safetensors.torch.save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_bytes(orjson.dumps(opt_doc))
        (tmp / "scheduler.json").write_bytes(orjson.dumps(scheduler.state_dict()))
        doc = {
            "format": FORMAT,
            "epoch": state.epoch,
            "step_in_epoch": state.step_in_epoch,
            "global_step": state.global_step,
            "world_size": d.world_size,
            **meta,
        }
        (tmp / "meta.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint_saved", path=str(final), epoch=state.epoch, step=state.global_step)
    d.barrier()
    return final


def read_meta(path: Path) -> CheckpointMeta:
    try:
        doc = orjson.loads((path / "meta.json").read_bytes())
        return CheckpointMeta(
            state=TrainState(int(doc["epoch"]), int(doc["step_in_epoch"]), int(doc["global_step"])),
            world_size=int(doc["world_size"]),
            file_keys=tuple(doc["file_keys"]),
            settings=dict(doc.get("settings", {})),
            parent_version=doc.get("parent_version"),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"checkpoint {path} is unreadable: {e}") from None


def read_vocab(path: Path) -> Vocab:
    return Vocab.load(path / "vocab.json")


def restore_training_state(
    path: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    d: Dist,
) -> None:
    """Optimizer, scheduler, then this rank's RNG states (last, so nothing draws after)."""
    optimizer_from_files(
        optimizer,
        safetensors.torch.load_file(str(path / "optimizer.safetensors")),
        orjson.loads((path / "optimizer.json").read_bytes()),
    )
    scheduler.load_state_dict(orjson.loads((path / "scheduler.json").read_bytes()))
    rng_file = path / f"rng-rank{d.rank}.safetensors"
    if rng_file.is_file():
        restore_rng(
            safetensors.torch.load_file(str(rng_file)),
            orjson.loads((path / f"rng-rank{d.rank}.json").read_bytes()),
        )
    else:
        log.warning("checkpoint_rng_missing", rank=d.rank, note="world size changed; reseeded")
