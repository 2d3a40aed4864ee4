"""Seed and model-size sweep of the HDFS quality benchmark (#5), meant for a GPU.

    .venv/bin/python -m bench.quality_sweep --device cuda --jobs 6 \\
        --runs tiny:2e-3 small:1e-3 base:2e-4 --seeds 0 1 2

Each run (preset, peak learning rate, seed) is `make bench-quality`'s MLM half, unchanged:
the same `logad train` on data/hdfs/train.jsonl with its validation slice, the
same scoring runs, each strategy's threshold at p99.9 of its validation scores, no dev
label choosing anything (bench/quality_hdfs.py; no DeepLog, no ablation). Runs go in
parallel processes (--jobs) sharing the device.

The baseline, in the same run, is `tiny` at 2e-3: the configuration `make bench-quality`
trains on CPU. The question it answers: does a bigger model score better, and does it
narrow the seed-to-seed spread?

Writes bench/results/quality_sweep-<device>.json (every strategy's row per run, and
per configuration the default strategy's F1 on each seed) and prints that summary.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402 - imported here so machine() records the GPU

from bench.machine import machine, results_dir, write_result  # noqa: E402
from bench.quality_hdfs import bool_flag  # noqa: E402
from schemas.runtime.console import out  # noqa: E402

DEFAULT_ROW = "full k=10 max, known mixes in known steps, count ceilings"
"""The row of the strategy new bundles score with (trainer.scoring.DEFAULT_STRATEGY)."""


@dataclass(frozen=True)
class RunSpec:
    preset: str
    lr: float
    seed: int
    epochs: int

    @property
    def slug(self) -> str:
        return f"{self.preset}-lr{self.lr:g}-e{self.epochs}-s{self.seed}"


def parse_run(text: str) -> tuple[str, float]:
    """`PRESET:LR`, e.g. `small:1e-3`."""
    preset, sep, lr = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return preset, float(lr)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PRESET:LR, got {text!r}") from None


def run_one(spec: RunSpec, common: Sequence[str], out_root: Path) -> dict[str, Any]:
    """One training + scoring run, its console output to <out>/<slug>/log.txt."""
    from bench.quality_hdfs import mlm_section, parser, row, train_bundle
    from schemas.bundle import verify_bundle
    from schemas.runtime.logs import configure_logging

    run_dir = out_root / spec.slug
    run_dir.mkdir(parents=True, exist_ok=True)
    a = parser().parse_args(
        [
            *common,
            *("--preset", spec.preset, "--lr", str(spec.lr)),
            *("--seed", str(spec.seed), "--epochs", str(spec.epochs)),
            *("--out", str(run_dir)),
        ]
    )
    result: dict[str, Any] = {**asdict(spec), "slug": spec.slug}
    with (
        (run_dir / "log.txt").open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            configure_logging("warning", None)
            torch.set_num_threads(a.threads)
            torch.manual_seed(a.seed)
            trained = run_dir / "model.trained"
            t0 = time.perf_counter()
            result["train_s"] = round(train_bundle(a.data / "train.jsonl", trained, a, True), 1)
            result["val_loss"] = verify_bundle(trained).metrics.get("val_loss")
            reports, seconds = mlm_section(trained, a, end=True)
            result["score_s"] = {k: round(v, 1) for k, v in seconds.items()}
            result["rows"] = [row(r) for r, _, _ in reports]
            result["run_s"] = round(time.perf_counter() - t0, 1)
        except BaseException as e:  # one failed run must not end the sweep
            traceback.print_exc()
            result["error"] = f"{type(e).__name__}: {e}"
    return result


def default_f1(result: dict[str, Any]) -> float | None:
    for r in result.get("rows", []):
        if r["name"] == DEFAULT_ROW:
            return float(r["f1"])
    return None


def summarize(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (preset, lr, epochs): the default strategy's F1 on each seed, mean and min."""
    groups: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["preset"], r["lr"], r["epochs"]), []).append(r)
    rows = []
    for (preset, lr, epochs), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        f1 = {r["seed"]: default_f1(r) for r in rs}
        ok = [v for v in f1.values() if v is not None]
        rows.append(
            {
                "preset": preset,
                "lr": lr,
                "epochs": epochs,
                "f1_by_seed": f1,
                "f1_mean": round(statistics.fmean(ok), 4) if ok else None,
                "f1_min": min(ok) if ok else None,
                "val_loss_by_seed": {r["seed"]: r.get("val_loss") for r in rs},
                "train_s_by_seed": {r["seed"]: r.get("train_s") for r in rs},
            }
        )
    return rows


def table(summary: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'preset':<6} {'lr':>7} {'ep':>4}  {DEFAULT_ROW} F1 by seed   mean    min"]
    for s in summary:
        seeds = " ".join(
            f"{k}:{'fail' if v is None else f'{v:.4f}'}" for k, v in s["f1_by_seed"].items()
        )
        mean = "-" if s["f1_mean"] is None else f"{s['f1_mean']:.4f}"
        low = "-" if s["f1_min"] is None else f"{s['f1_min']:.4f}"
        lines.append(f"{s['preset']:<6} {s['lr']:>7g} {s['epochs']:>4}  {seeds}   {mean}  {low}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--runs",
        nargs="+",
        type=parse_run,
        default=[("tiny", 2e-3), ("small", 1e-3), ("base", 2e-4)],
        metavar="PRESET:LR",
        help="configurations (default: tiny:2e-3 small:1e-3 base:2e-4)",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="(default: 0 1 2)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default: 60)")
    p.add_argument("--jobs", type=int, default=3, help="runs at a time (default: 3)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    p.add_argument(
        "--prune-last-layer",
        type=bool_flag,
        default=True,
        metavar="{true,false}",
        help="the trainer's prune_last_layer for every run (default: true)",
    )
    p.add_argument("--data", type=Path, help="HDFS data directory (bench-quality's default)")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "out" / "sweep", help="work directory"
    )
    p.add_argument("--results", type=Path, help="results JSON (default: under bench/results/)")
    a = p.parse_args(argv)

    common = ["--device", a.device, "--threads", str(a.threads)]
    common += ["--prune-last-layer", str(a.prune_last_layer).lower()]
    if a.data is not None:
        common += ["--data", str(a.data)]
    specs = [RunSpec(pr, lr, s, a.epochs) for pr, lr in a.runs for s in a.seeds]
    out(f"{len(specs)} runs, {a.jobs} at a time, device {a.device}")
    t0 = time.perf_counter()
    info = machine()
    tag = "gpu" if "gpu" in info and a.device != "cpu" else "cpu"
    tag += "" if a.prune_last_layer else "-whole-last-layer"
    path = a.results or results_dir() / f"quality_sweep-{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked into
    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(run_one, s, common, a.out): s for s in specs}
        for f in as_completed(futures):
            r = f.result()
            results.append(r)
            what = r.get("error") or f"F1 {default_f1(r)}, val loss {r.get('val_loss')}"
            out(f"  {r['slug']}: {what} ({time.perf_counter() - t0:.0f} s)")
            # Rewritten after every run, so a sweep cut short keeps what finished.
            summary = summarize(results)
            doc = {
                "benchmark": "quality_sweep",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": info,
                "config": {
                    "runs": [f"{pr}:{lr:g}" for pr, lr in a.runs],
                    "seeds": a.seeds,
                    "epochs": a.epochs,
                    "jobs": a.jobs,
                    "device": a.device,
                },
                "default_strategy_row": DEFAULT_ROW,
                "sweep_seconds": round(time.perf_counter() - t0, 1),
                "finished_runs": len(results),
                "planned_runs": len(specs),
                "summary": summary,
                "runs": sorted(results, key=lambda r: r["slug"]),
            }
            write_result(path.stem, doc, path=path)

    out(table(summary))
    out(f"results: {path}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
