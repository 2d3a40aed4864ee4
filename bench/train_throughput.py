"""Training throughput: non-pad tokens/s, padding efficiency and MFU, input pipeline included.

    .venv/bin/python -m bench.train_throughput --preset tiny --steps 8            # CPU
    .venv/bin/python -m bench.train_throughput --preset base                      # one GPU

What is timed is the real path of `logad train`: daily file -> token cache (memory-mapped)
-> vocab mapping -> length bucketing under the token budget -> masking in the collate step
(DataLoader workers) -> host-to-device copy -> `train_step` (bf16 autocast + SDPA on GPU,
LM head at the masked positions only, global masked-token normalization, the finite-loss
check, clipping, fused AdamW, scheduler). Steps after --warmup are timed.

Baselines, same run and data: the same path with the last layer computed at every position
(`MaskedLM(whole_encoder=True)`, the trainer's `prune_last_layer=false`), and the naive
set-up. Every window padded to 512 tokens, batch rows
= budget / 512, the full-vocab LM head (logits at every position), fp32 (no TF32), eager
attention, same optimizer.

Data: --data files, or synthetic sessions (log-normal lengths, Zipf-distributed event ids)
written to a temporary daily file. MFU counts the useful (non-pad) model FLOPs:
3 x forward, forward = per layer 2n(4h^2 + 2hi) + 4n^2h per sequence, plus the LM head on
the masked tokens; peak is bf16 dense (H100/H200 SXM: 989 TFLOP/s). The FLOPs counted are
the whole model's, also for the pruned last layer, so there MFU is an effective figure.

Writes bench/results/train_throughput-<preset>-<device>.json (or --out) and its entry in the
index beside it (bench.machine.write_result).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM

from bench.machine import report_header, write_result
from schemas.daily_files import daily_file_name
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.vocab import PAD_ID
from trainer.batching import epoch_rng, padding_efficiency, plan_batches
from trainer.collate import Batch, iterate, make_batch
from trainer.dataset import DataSelection, TrainingData, load_training_data
from trainer.distributed import Dist
from trainer.loop import MaskedLM, epoch_batches, mask_spec, train_step
from trainer.model import bert_config, build_model, device_for, get_preset
from trainer.optim import build_optimizer, build_scheduler
from trainer.settings import TrainSettings
from trainer.token_cache import TokenCache

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
"""Dense bf16 tensor-core peaks (SXM parts), for MFU."""


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def synthesize(path: Path, n: int, mean_len: float, n_events: int, seed: int) -> None:
    """Sessions with log-normal lengths (some past 510, so they split) and Zipf event ids."""
    rng = np.random.default_rng(seed)
    sigma = 0.9
    mu = np.log(mean_len) - sigma**2 / 2
    lengths = np.clip(rng.lognormal(mu, sigma, n).astype(np.int64), 1, 2000)
    ranks = np.arange(1, n_events + 1)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    events = rng.choice(n_events, size=int(lengths.sum()), p=p)
    pos = 0
    with path.open("wb") as fh:
        for i, k in enumerate(lengths.tolist()):
            ev = [f"E{e}" for e in events[pos : pos + k].tolist()]
            pos += k
            fh.write(orjson.dumps({"session_id": f"s{i}", "events": ev}) + b"\n")


def forward_flops(n: int, masked: int, h: int, inter: int, layers: int, vocab: int) -> float:
    per_layer = 2 * n * (4 * h * h + 2 * h * inter) + 4 * n * n * h
    head = 2 * masked * (h * h + h * vocab)
    return float(layers * per_layer + head)


def window_lengths(b: Batch) -> list[int]:
    """Each window's tokens: per row, or per segment of a packed row (whose attention stays
    inside each window, so useful FLOPs count window by window)."""
    if b.segments is None:
        return [int(n) for n in (b.input_ids != PAD_ID).sum(dim=1).tolist()]
    return [int(n) for row in b.segments for n in torch.bincount(row[row >= 0]).tolist() if n]


def batch_flops(b: Batch, cfg: Any) -> tuple[float, float]:
    """(useful training FLOPs on the real tokens, FLOPs on the padded shape)."""
    lens = window_lengths(b)
    rows = b.input_ids.shape[0]
    h, i, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    per_seq_masked = b.n_masked / max(1, len(lens))
    useful = sum(forward_flops(n, 0, h, i, L, V) for n in lens)
    useful += forward_flops(0, b.n_masked, h, i, L, V)
    width = b.input_ids.shape[1]
    padded = rows * forward_flops(width, 0, h, i, L, V)
    padded += forward_flops(0, int(per_seq_masked * len(lens)), h, i, L, V)
    return 3 * useful, 3 * padded


def batches_forever(data: TrainingData, s: TrainSettings, d: Dist) -> Iterator[Batch]:
    epoch = 0
    while True:
        _, ds = epoch_batches(data, s, d, epoch)
        yield from iterate(ds, s.num_workers, d.device.type == "cuda")
        epoch += 1


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_bucketed(
    data: TrainingData,
    s: TrainSettings,
    d: Dist,
    steps: int,
    warmup: int,
    *,
    whole_encoder: bool = False,
) -> dict[str, Any]:
    torch.manual_seed(s.seed)
    model = build_model(bert_config(get_preset(s.preset), len(data.vocab)), d.device)
    net = MaskedLM(model, whole_encoder=whole_encoder)
    opt = build_optimizer(model, s, d.device)
    sched = build_scheduler(opt, s.warmup_steps, steps + warmup)
    peak = peak_flops(d.device)
    stream = batches_forever(data, s, d)
    tokens = padded = useful = padded_flops = 0.0
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(d.device)
            t0 = time.perf_counter()
        b = next(stream)  # data time counts: the pipeline is part of what is measured
        m = train_step(net, opt, sched, b, d, s.grad_clip)
        if step >= warmup:
            tokens += m.tokens
            padded += m.padded_tokens
            u, p = batch_flops(b, model.config)
            useful += u
            padded_flops += p
    sync(d.device)
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {
        "steps": steps,
        "seconds": elapsed,
        "non_pad_tokens_per_s": tokens / elapsed,
        "padded_tokens_per_s": padded / elapsed,
        "padding_efficiency": tokens / padded,
        "model_tflops_per_s": useful / elapsed / 1e12,
        "mfu": useful / elapsed / peak if peak else None,
        "hfu_padded": padded_flops / elapsed / peak if peak else None,
    }
    if d.device.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(d.device) / 2**30
    return out


def run_naive(
    data: TrainingData, s: TrainSettings, d: Dist, steps: int, warmup: int
) -> dict[str, Any]:
    """Pad to 512, full-vocab head, fp32, eager attention: the set-up the design replaces."""
    torch.manual_seed(s.seed)
    cfg = bert_config(get_preset(s.preset), len(data.vocab))
    cfg._attn_implementation = "eager"
    model = BertForMaskedLM(cfg)
    torch.nn.Module.to(model, d.device)
    model.train()
    opt = build_optimizer(model, s, d.device)
    rows = max(1, s.tokens_per_batch // 512)
    order = np.random.default_rng(s.seed).permutation(data.train_idx)
    g = torch.Generator().manual_seed(s.seed)
    spec = mask_spec(s)
    tokens = 0.0
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            sync(d.device)
            t0 = time.perf_counter()
        idx = order[(step * rows) % len(order) :][:rows]
        b = make_batch(data.store, idx, 512, len(data.vocab), spec, g)  # width 512: pad to 512
        ids = b.input_ids.to(d.device)
        labels = torch.full_like(ids, -100).view(-1)
        labels[b.flat_idx.to(d.device)] = b.targets.to(d.device)
        logits = model(input_ids=ids, attention_mask=(ids != PAD_ID)).logits
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels, reduction="mean")
        loss.backward()  # type: ignore[no-untyped-call]
        if not torch.isfinite(loss).item():
            raise RuntimeError("naive baseline loss is not finite")
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            tokens += b.n_tokens
    sync(d.device)
    elapsed = time.perf_counter() - t0
    return {
        "steps": steps,
        "seconds": elapsed,
        "non_pad_tokens_per_s": tokens / elapsed,
        "padded_tokens_per_s": steps * rows * 512 / elapsed,
        "padding_efficiency": tokens / (steps * rows * 512),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=["base", "small", "tiny"])
    ap.add_argument("--tokens-per-batch", type=int, default=65536)
    ap.add_argument("--bucket-width", type=int, default=TrainSettings.bucket_width)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 50 GPU, 6 CPU)")
    ap.add_argument(
        "--warmup", type=int, default=None, help="untimed steps (default: 10 GPU, 2 CPU)"
    )
    ap.add_argument(
        "--baseline-steps",
        type=int,
        default=None,
        help="timed naive steps (default: 10 GPU, 2 CPU; 0 skips the baseline)",
    )
    ap.add_argument("--num-workers", type=int, default=None, help="(default: 4 GPU, 0 CPU)")
    ap.add_argument(
        "--pack-tokens",
        type=int,
        default=0,
        help="also train with each batch packed into rows of this many tokens (pack_tokens), "
        "beside the unpacked run; 0 skips it (default: 0)",
    )
    ap.add_argument(
        "--data",
        nargs="*",
        type=Path,
        default=None,
        help="daily files (default: synthetic sessions)",
    )
    ap.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="synthetic sessions (default: enough for the timed steps)",
    )
    ap.add_argument("--mean-len", type=float, default=40.0, help="synthetic mean session length")
    ap.add_argument("--events", type=int, default=2000, help="synthetic distinct event ids")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpu-threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    configure_logging("warning", json=False)

    device = device_for(args.device)
    gpu = device.type == "cuda"
    if not gpu and args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    steps = args.steps or (50 if gpu else 6)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 2)
    naive_steps = args.baseline_steps if args.baseline_steps is not None else (10 if gpu else 2)
    workers = args.num_workers if args.num_workers is not None else (4 if gpu else 0)
    s = TrainSettings(
        preset=args.preset,
        tokens_per_batch=args.tokens_per_batch,
        bucket_width=args.bucket_width,
        num_workers=workers,
        device=str(device),
        val_fraction=0.01,
    )
    d = Dist(0, 1, 0, device)

    with tempfile.TemporaryDirectory(prefix="logad-bench-") as tmp:
        cache = TokenCache(Path(tmp) / "cache")
        files = args.data
        t = time.perf_counter()
        if not files:
            n = args.sessions or int((steps + warmup) * args.tokens_per_batch / args.mean_len * 5)
            path = Path(tmp) / daily_file_name(datetime.now(UTC).date())
            synthesize(path, n, args.mean_len, args.events, seed=0)
            files = [path]
        synth_s = time.perf_counter() - t
        t = time.perf_counter()
        data = load_training_data(DataSelection(tuple(files)), cache, s.val_fraction, s.vocab_size)
        tokenize_s = time.perf_counter() - t
        t = time.perf_counter()
        load_training_data(DataSelection(tuple(files)), cache, s.val_fraction, s.vocab_size)
        cached_load_s = time.perf_counter() - t
        lengths = data.store.token_lengths(data.train_idx)
        plan = plan_batches(lengths, s.tokens_per_batch, s.bucket_width, epoch_rng(0, 0))

        say(
            f"{args.preset} on {device}: {len(data.train_idx)} windows, "
            f"{int(lengths.sum())} tokens, {len(plan)} batches per epoch"
        )
        bucketed = run_bucketed(data, s, d, steps, warmup)
        say(
            f"  bucketed: {bucketed['non_pad_tokens_per_s']:,.0f} non-pad tokens/s, "
            f"padding efficiency {bucketed['padding_efficiency']:.3f}, mfu {bucketed['mfu']}"
        )
        packed = None
        if args.pack_tokens:
            packed_s = dataclasses.replace(s, pack_tokens=args.pack_tokens)
            packed = run_bucketed(data, packed_s, d, steps, warmup)
            say(
                f"  bucketed, packed into {args.pack_tokens}-token rows: "
                f"{packed['non_pad_tokens_per_s']:,.0f} non-pad tokens/s "
                f"({packed['non_pad_tokens_per_s'] / bucketed['non_pad_tokens_per_s']:.2f}x), "
                f"mfu {packed['mfu']}"
            )
        whole = run_bucketed(data, s, d, steps, warmup, whole_encoder=True)
        say(
            f"  bucketed, whole last layer: {whole['non_pad_tokens_per_s']:,.0f} non-pad "
            f"tokens/s ({bucketed['non_pad_tokens_per_s'] / whole['non_pad_tokens_per_s']:.2f}x)"
        )
        naive = run_naive(data, s, d, naive_steps, 1 if naive_steps else 0) if naive_steps else None
        if naive:
            say(
                f"  naive (pad 512, full head, fp32 eager): "
                f"{naive['non_pad_tokens_per_s']:,.0f} non-pad tokens/s"
            )

    result = {
        **report_header("train_throughput"),
        "device": str(device),
        "preset": args.preset,
        "tokens_per_batch": args.tokens_per_batch,
        "bucket_width": args.bucket_width,
        "num_workers": workers,
        "data": {
            "source": [str(f) for f in args.data] if args.data else "synthetic",
            "sessions": data.n_sessions,
            "train_windows": len(data.train_idx),
            "mean_window_tokens": float(lengths.mean()),
            "synthesize_s": synth_s,
            "tokenize_s": tokenize_s,
            "cached_load_s": cached_load_s,
            "plan_padding_efficiency": padding_efficiency(plan, lengths, s.bucket_width),
        },
        "peak_flops": peak_flops(device),
        "bucketed_masked_head": bucketed,
        "bucketed_whole_last_layer": whole,
        "pack_tokens": args.pack_tokens,
        "bucketed_packed": packed,
        "packed_vs_unpacked": (
            packed["non_pad_tokens_per_s"] / bucketed["non_pad_tokens_per_s"] if packed else None
        ),
        "speedup_vs_whole_last_layer": (
            bucketed["non_pad_tokens_per_s"] / whole["non_pad_tokens_per_s"]
        ),
        "naive_pad512_fullhead_fp32": naive,
        "speedup_vs_naive": (
            bucketed["non_pad_tokens_per_s"] / naive["non_pad_tokens_per_s"] if naive else None
        ),
    }
    dest = write_result(f"train_throughput-{args.preset}-{device.type}", result, path=args.out)
    say(f"wrote {dest}")


if __name__ == "__main__":
    main()
