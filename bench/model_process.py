"""The model in serve's process (a thread) or in a process of its own, beside a busy loop.

    .venv/bin/python -m bench.model_process                  # tiny on CPU
    python3 -m bench.model_process --preset base --device cuda

In `logad serve` the consume loop runs Python all the time while the model scores in a
thread; both need the GIL. This measures, on the same windows and a bundle with random
weights (cost does not depend on what a model learned):

- the model's seconds for all windows, scored in batches from a worker thread as serve does
  (`thread`), or sent to a child process (`process`, stream/serve/model_process.py);
- each alone, and beside a busy pure-Python loop in the main thread (dicts, tuples and
  string keys, as a sessionizer's work looks), at serve's GIL switch interval;
- the busy loop's iterations per second, alone and beside each: the other side of the cost.

Writes bench/results/model_process-<preset>-<device>.json (or --out) and its entry in the
index beside it (bench.machine.write_result).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.machine import report_header, write_result
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.vocab import Vocab
from schemas.windows import Window
from stream.serve.model_process import start_process_scorer
from stream.serve.reload import load_window_scorer
from stream.serve.service import model_threads
from stream.serve.settings import ModelRuntimeSettings
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.model import bert_config, build_model, device_for, get_preset
from trainer.scoring.strategy import DEFAULT_STRATEGY


def make_bundle(root: Path, preset: str, n_events: int, seed: int) -> tuple[Path, list[str]]:
    torch.manual_seed(seed)
    events = [f"svc.event{i}" for i in range(n_events)]
    vocab = Vocab.build([events])
    model = build_model(bert_config(get_preset(preset), len(vocab)))
    out = root / "bundle"
    # Random weights and no training windows, so no known mixes or count ceilings: the
    # model's cost alone.
    strategy = dataclasses.replace(
        DEFAULT_STRATEGY, known_mixes=False, known_pairs=False, count_ceilings=False
    )
    cal = calibrate([1.0, 2.0, 3.0], 0.5, strategy=strategy)
    export_bundle(
        out, model, vocab, cal, data_from=None, data_to=None, preset=preset,
        parent_version=None, metrics={},
    )  # fmt: skip
    return out, events


def make_windows(events: list[str], n: int, lo: int, hi: int, seed: int) -> list[Window]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(lo, hi + 1))
        seq = tuple(events[j] for j in rng.integers(0, len(events), size=length))
        out.append(Window.build(f"s{i}", 0, seq, 0, 1, 0, i, i))
    return out


def busy(stop: threading.Event) -> int:
    """Pure-Python work until `stop`: returns iterations done."""
    table: dict[str, list[tuple[int, str]]] = {}
    n = 0
    while not stop.is_set():
        for j in range(200):
            key = f"session-{(n * 200 + j) % 5000}"
            table.setdefault(key, []).append((j, key))
            if len(table[key]) > 20:
                del table[key]
        n += 1
    return n


def timed_scoring(
    score: Callable[[Sequence[Window]], object], windows: list[Window], batch: int, beside: bool
) -> tuple[float, float | None]:
    """Seconds to score every window in batches from a worker thread; with `beside`, the
    main thread runs `busy` meanwhile (its iterations per second are returned)."""
    stop = threading.Event()
    elapsed: list[float] = []

    def work() -> None:
        t0 = time.perf_counter()
        for i in range(0, len(windows), batch):
            score(windows[i : i + batch])
        elapsed.append(time.perf_counter() - t0)
        stop.set()

    worker = threading.Thread(target=work, name="logad-score")
    t0 = time.perf_counter()
    worker.start()
    rate = None
    if beside:
        iters = busy(stop)
        rate = iters / (time.perf_counter() - t0)
    worker.join()
    return elapsed[0], rate


def busy_alone(seconds: float) -> float:
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    t0 = time.perf_counter()
    timer.start()
    n = busy(stop)
    return n / (time.perf_counter() - t0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default=None, help="model preset (default: base GPU, tiny CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--windows", type=int, default=None, help="(default: 2000 GPU, 300 CPU)")
    p.add_argument("--batch", type=int, default=100, help="windows per scorer call")
    p.add_argument("--min-len", type=int, default=8, help="shortest window (default: 8)")
    p.add_argument("--max-len", type=int, default=40, help="longest window (default: 40)")
    p.add_argument("--events", type=int, default=60, help="distinct event ids (default: 60)")
    p.add_argument("--threads", type=int, default=0, help="model threads (0: serve's default)")
    p.add_argument("--out", type=Path, default=None, help="result file")
    args = p.parse_args(argv)
    configure_logging("warning", json=False)
    device = device_for(args.device)
    gpu = device.type == "cuda"
    preset = args.preset or ("base" if gpu else "tiny")
    n = args.windows or (2000 if gpu else 300)
    threads = model_threads(args.threads)
    sys.setswitchinterval(ModelRuntimeSettings.switch_interval_ms / 1000)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="logad-bench-mp-") as tmp:
        bundle, events = make_bundle(Path(tmp), preset, args.events, seed=0)
        windows = make_windows(events, n, args.min_len, args.max_len, seed=1)
        in_thread = load_window_scorer(str(device), threads)(bundle)
        child = start_process_scorer(bundle, str(device), threads)
        try:
            for name, scorer in (("thread", in_thread), ("process", child)):

                def score(ws: Sequence[Window], s: Any = scorer) -> object:
                    return s.score_windows(ws, 0)

                timed_scoring(score, windows, args.batch, beside=False)  # warm-up: every shape
                alone, _ = timed_scoring(score, windows, args.batch, beside=False)
                with_busy, rate = timed_scoring(score, windows, args.batch, beside=True)
                results[name] = {
                    "alone_s": round(alone, 3),
                    "beside_busy_loop_s": round(with_busy, 3),
                    "busy_loop_iters_per_s": round(rate or 0.0, 1),
                }
                say(f"{name}: {results[name]}")
            if in_thread.score_windows(windows[:50], 0) != child.score_windows(windows[:50], 0):
                raise RuntimeError("the process and the thread scored differently")
        finally:
            child.close()
        results["busy_loop_alone_iters_per_s"] = round(busy_alone(3.0), 1)
    say(f"busy loop alone: {results['busy_loop_alone_iters_per_s']} iterations/s")

    result = {
        **report_header("model_process"),
        "config": {
            "device": str(device),
            "preset": preset,
            "windows": n,
            "batch": args.batch,
            "len_range": [args.min_len, args.max_len],
            "model_threads": threads,
            "switch_interval_ms": ModelRuntimeSettings.switch_interval_ms,
        },
        "results": results,
        "process_vs_thread_beside_busy_loop": round(
            results["thread"]["beside_busy_loop_s"] / results["process"]["beside_busy_loop_s"], 3
        ),
    }
    dest = write_result(f"model_process-{preset}-{device.type}", result, path=args.out)
    say(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
