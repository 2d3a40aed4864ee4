"""Throughput of `score_token_windows` (windows/s, events/s) against baselines in the same run.

    .venv/bin/python -m bench.score_throughput                 # tiny on CPU, 1 thread
    .venv/bin/python -m bench.score_throughput --preset base   # on a GPU

Scored the product's one way (every event masked once over k = 10 passes, the window's
largest NLL; no known-mix or count-ceiling rule, which need training windows) on synthetic
windows whose lengths are drawn uniformly from [--min-len, --max-len]. Variants, all on the
same windows:

- batched_masked_head: `score_token_windows` as shipped (length-sorted batches across windows
  and passes, LM head at masked positions only).
- per_window_full_head: the straightforward alternative: one batch per window holding its
  k passes, `model(...).logits` over every position, then gather. Its scores (the max
  NLL) are checked against the shipped ones (max_abs_diff in the output).
- batched_whole_encoder: `score_token_windows` with every position through every layer
  (HF's whole encoder, then the head at the masked positions), as it scored before
  `masked_logits` ran the last layer at the masked positions only. Scores are compared.
- unbatched_masked_head (--unbatched): `score_token_windows` with one pass per forward.

The GPU defaults (base, 400 windows) are sized for a short device session; --unbatched
with many more windows is not.

Writes bench/results/score_throughput-<preset>-<device>.json (bench.machine.write_result).
Randomly initialized weights: the cost of a forward pass does not depend on what the model
has learned.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

import numpy as np
import orjson
import torch
from transformers import BertForMaskedLM

from bench.machine import report_header, write_result
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.vocab import CLS_ID, MASK_ID, SEP_ID
from trainer.model import (
    autocast_for,
    bert_config,
    build_model,
    device_for,
    get_preset,
    masked_logits,
)
from trainer.scoring import passes as scoring_passes
from trainer.scoring.passes import mask_groups
from trainer.scoring.score import score_token_windows
from trainer.scoring.strategy import DEFAULT_STRATEGY, ScoringStrategy


def synthetic_windows(n: int, lo: int, hi: int, vocab_size: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(lo, hi + 1, size=n)
    return [rng.integers(5, vocab_size, size=k).tolist() for k in lengths]


def per_window_full_head(
    model: BertForMaskedLM, windows: Sequence[Sequence[int]], groups: int, device: torch.device
) -> list[float]:
    """Max NLL per window, the naive way: a batch of k passes per window, full LM head."""
    scores = []
    with torch.inference_mode():
        for w in windows:
            base = torch.tensor([CLS_ID, *w, SEP_ID], device=device)
            nll = torch.empty(len(w), device=device)
            passes = mask_groups(len(w), groups)
            ids = base.repeat(len(passes), 1)
            for g, members in enumerate(passes):
                ids[g, [p + 1 for p in members]] = MASK_ID
            with autocast_for(device):
                logits = model(input_ids=ids).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            for g, members in enumerate(passes):
                pos = torch.tensor(members, device=device)
                nll[pos] = -logp[g, pos + 1, base[pos + 1]]
            scores.append(float(nll.max()) if len(w) else 0.0)
    return scores


def whole_encoder_logits(
    model: BertForMaskedLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """`masked_logits` as it was: HF's whole encoder at every position, then the head at the
    selected positions."""
    hidden = model.bert(
        input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
    ).last_hidden_state
    logits: torch.Tensor = model.cls(hidden[positions])
    return logits


def timed(
    fn: Callable[[], list[float]], device: torch.device, repeats: int
) -> tuple[float, list[float]]:
    """Best of `repeats` wall-clock runs (after one warm-up), syncing the device."""
    out = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", help="model preset (default: base on GPU, tiny on CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--windows", type=int, help="windows to score (default: 400 GPU, 64 CPU)")
    p.add_argument("--min-len", type=int, default=20, help="shortest window (default: 20)")
    p.add_argument("--max-len", type=int, default=300, help="longest window (default: 300)")
    p.add_argument("--vocab-size", type=int, default=10_000, help="vocab size (default: 10000)")
    p.add_argument(
        "--groups",
        type=int,
        default=DEFAULT_STRATEGY.groups,
        help=f"mask groups k (default: {DEFAULT_STRATEGY.groups}, new bundles' default)",
    )
    p.add_argument(
        "--max-batch-tokens", type=int, default=32768, help="batch budget (default: 32768)"
    )
    p.add_argument("--repeats", type=int, default=2, help="timed runs, best kept (default: 2)")
    p.add_argument(
        "--out",
        type=Path,
        help="result file (default: bench/results/score_throughput-<preset>-<device>.json)",
    )
    p.add_argument("--threads", type=int, default=1, help="CPU torch threads (default: 1)")
    p.add_argument(
        "--unbatched",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also time one pass per forward (default: off)",
    )
    p.add_argument("--seed", type=int, default=0, help="window RNG seed (default: 0)")
    args = p.parse_args(argv)
    configure_logging("warning")

    device = device_for(args.device)
    torch.set_num_threads(args.threads)
    preset_name = args.preset or ("base" if device.type == "cuda" else "tiny")
    n_windows = args.windows or (400 if device.type == "cuda" else 64)
    torch.manual_seed(args.seed)
    preset = dataclasses.replace(get_preset(preset_name), dropout=0.0)
    model = build_model(bert_config(preset, args.vocab_size), device)
    model.train(False)
    windows = synthetic_windows(n_windows, args.min_len, args.max_len, args.vocab_size, args.seed)
    n_events = sum(len(w) for w in windows)
    strategy = ScoringStrategy(groups=args.groups)

    def shipped(budget: int, logits: Callable[..., torch.Tensor]) -> Callable[[], list[float]]:
        def run() -> list[float]:
            with mock.patch.object(scoring_passes, "masked_logits", logits):
                res = score_token_windows(model, windows, strategy, device, max_batch_tokens=budget)
            return [r.score for r in res]

        return run

    variants: dict[str, Callable[[], list[float]]] = {
        "batched_masked_head": shipped(args.max_batch_tokens, masked_logits),
        "batched_whole_encoder": shipped(args.max_batch_tokens, whole_encoder_logits),
        "per_window_full_head": lambda: per_window_full_head(model, windows, args.groups, device),
    }
    if args.unbatched:
        variants["unbatched_masked_head"] = shipped(1, masked_logits)

    results: dict[str, dict[str, float]] = {}
    outputs: dict[str, list[float]] = {}
    for name, fn in variants.items():
        seconds, outputs[name] = timed(fn, device, args.repeats)
        results[name] = {
            "seconds": round(seconds, 4),
            "windows_per_s": round(n_windows / seconds, 1),
            "events_per_s": round(n_events / seconds, 1),
        }
    shipped_scores = np.array(outputs["batched_masked_head"])
    naive_scores = np.array(outputs["per_window_full_head"])
    base = results["batched_masked_head"]["seconds"]
    report = {
        **report_header("score_throughput"),
        "config": {
            "device": device.type,
            "preset": preset_name,
            "windows": n_windows,
            "events": n_events,
            "len_range": [args.min_len, args.max_len],
            "vocab_size": args.vocab_size,
            "groups": args.groups,
            "max_batch_tokens": args.max_batch_tokens,
            "repeats": args.repeats,
            "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
        },
        "results": results,
        # How many times longer each baseline takes than the shipped path.
        "speedup_vs_baseline": {
            name: round(r["seconds"] / base, 2)
            for name, r in results.items()
            if name != "batched_masked_head"
        },
        "max_abs_score_diff_vs_per_window_full_head": float(
            np.max(np.abs(shipped_scores - naive_scores))
        ),
        "max_abs_score_diff_vs_batched_whole_encoder": float(
            np.max(np.abs(shipped_scores - np.array(outputs["batched_whole_encoder"])))
        ),
    }
    out = write_result(f"score_throughput-{preset_name}-{device.type}", report, path=args.out)
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
