"""Thresholds from a false-alert budget on HDFS (CPU): the quantile against peaks over
threshold (POT, a GPD tail), at the same budget, measured on held-out normal sessions.

Needs the bundle `make bench-quality` leaves in bench/out/hdfs/model (or --model).

1. Re-derive the bundle's validation slice of train.jsonl with the trainer's split (normal
   sessions, never trained on) and score it as calibration does: each window's score as if
   its mix were novel (trainer/calibration.py).
2. Score dev_normal (5,544 normal sessions the model never saw: the held-out normal slice),
   each session's score the max over its windows, both as served (known mixes exempted) and
   as calibrated.
3. For each budget (false alerts per 1,000 windows) and each calibration size (random
   subsets of the validation scores, `--draws` of each, seeded; and all of them once), take
   the threshold by each method from the calibration scores alone, and count on dev_normal:
   the exceedances per 1,000 of the calibrated score (what the budget promises) and the
   false alerts per 1,000 sessions as served. No label chooses anything.

Writes bench/results/thresholds_hdfs.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import torch  # noqa: E402

from bench.hdfs_args import add_device_args, hdfs_parser  # noqa: E402
from bench.machine import report_header, shown_path, summary_of, write_result  # noqa: E402
from schemas.bundle import MANIFEST, BundleManifest  # noqa: E402
from schemas.daily_files import read_sessions  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from trainer.evaluate import session_max, split_sessions  # noqa: E402
from trainer.recalibrate import bundle_val_fraction, strategy_scores, validation_slice  # noqa: E402
from trainer.scoring.scorer import WindowScorer  # noqa: E402
from trainer.tail_threshold import (  # noqa: E402
    BOOTSTRAP,
    Method,
    bootstrap_interval,
    threshold_for_budget,
)

MODEL = ROOT / "bench" / "out" / "hdfs" / "model"
BUDGETS = (1.0, 2.0, 5.0)
"""False alerts per 1,000 windows."""
SIZES = (200, 500)
METHODS: tuple[Method, ...] = ("quantile", "pot")


def per_1000(scores: npt.NDArray[np.float64], threshold: float) -> float:
    return 1000.0 * float((scores > threshold).mean())


def summarize(values: Sequence[float], budget: float) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(v.mean()), 3),
        "median": round(float(np.median(v)), 3),
        "p10": round(float(np.quantile(v, 0.1)), 3),
        "p90": round(float(np.quantile(v, 0.9)), 3),
        "mean_abs_error": round(float(np.abs(v - budget).mean()), 3),
        "share_over_budget": round(float((v > budget).mean()), 3),
    }


def compare(
    cal: npt.NDArray[np.float64],
    dev_novel: npt.NDArray[np.float64],
    dev_served: npt.NDArray[np.float64],
    draws: int,
    seed: int,
    resamples: int = BOOTSTRAP,
) -> list[dict[str, Any]]:
    """One row per budget, calibration size and method (module doc, step 3)."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    for budget in BUDGETS:
        q = budget / 1000.0
        for n in (*SIZES, cal.size):
            subsets = (
                [cal]
                if n >= cal.size
                else [rng.choice(cal, size=n, replace=False) for _ in range(draws)]
            )
            for method in METHODS:
                fits = [threshold_for_budget(s, q, method) for s in subsets]
                row: dict[str, Any] = {
                    "budget_per_1000": budget,
                    "calibration_windows": int(min(n, cal.size)),
                    "draws": len(subsets),
                    "method": method,
                    "used_pot": sum(f.method == "pot" for f in fits),
                    "threshold_mean": round(float(np.mean([f.threshold for f in fits])), 4),
                    "exceedances_per_1000": summarize(
                        [per_1000(dev_novel, f.threshold) for f in fits], budget
                    ),
                    "false_alerts_per_1000_served": summarize(
                        [per_1000(dev_served, f.threshold) for f in fits], budget
                    ),
                }
                if len(subsets) == 1:
                    iv = bootstrap_interval(cal, q, method, resamples=resamples, seed=seed)
                    row["threshold"] = round(fits[0].threshold, 4)
                    row["interval_90"] = (
                        None if iv is None else [round(iv.lower, 4), round(iv.upper, 4)]
                    )
                    row["fallback"] = fits[0].fallback
                rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = hdfs_parser(
        __doc__, work=None, results=None, results_help="default: bench/results/thresholds_hdfs.json"
    )
    p.add_argument(
        "--model", type=Path, default=MODEL, help="the HDFS bundle (default: %(default)s)"
    )
    p.add_argument("--draws", type=int, default=200, help="subsets per calibration size")
    p.add_argument("--seed", type=int, default=0)
    add_device_args(p, "scoring")
    a = p.parse_args(argv)
    if not (a.model / MANIFEST).is_file():
        out(f"no bundle at {a.model}: run `make bench-quality` first, or pass --model")
        return 2
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    scorer = WindowScorer.from_bundle(a.model, a.device, explain_known_mixes=True)
    manifest = BundleManifest.from_json((a.model / MANIFEST).read_bytes())
    expected = manifest.metrics.get("val_windows")
    with tempfile.TemporaryDirectory() as cache:
        val = validation_slice(
            [a.data / "train.jsonl"],
            scorer.vocab,
            bundle_val_fraction(manifest),
            Path(cache),
            expected if isinstance(expected, int) else None,
        )
    cal = strategy_scores(scorer.model, val, scorer.strategy, scorer.device, known=scorer.known)
    dev = [s.events for s in read_sessions(a.data / "dev_normal.jsonl")]
    split = split_sessions(dev)
    results = scorer.score_events(split.windows)
    served = session_max([r.score for r in results], split.owner, split.n_sessions)
    novel = session_max([r.score_as_novel for r in results], split.owner, split.n_sessions)
    scored_s = time.perf_counter() - t0
    rows = compare(cal, novel, served, a.draws, a.seed)
    payload = {
        **report_header("thresholds_hdfs"),
        "model": shown_path(a.model),
        "model_version": scorer.model_version,
        "strategy": scorer.strategy.to_dict(),
        "calibration": "the bundle's validation slice of train.jsonl, scored as if every mix "
        "were novel (what thresholds are calibrated on)",
        "held_out": "dev_normal.jsonl, normal sessions only, session score = max over windows",
        "calibration_windows": int(cal.size),
        "held_out_sessions": int(split.n_sessions),
        "budgets_per_1000": list(BUDGETS),
        "draws": a.draws,
        "seed": a.seed,
        "scoring_seconds": round(scored_s, 1),
        "rows": rows,
    }
    for r in rows:
        e = r["exceedances_per_1000"]
        out(
            f"budget {r['budget_per_1000']:g}/1000 n={r['calibration_windows']:>5} "
            f"{r['method']:>8}: exceedances/1000 mean {e['mean']:.2f} "
            f"(p10 {e['p10']:.2f}, p90 {e['p90']:.2f}, |err| {e['mean_abs_error']:.2f}); "
            f"served false alerts/1000 {r['false_alerts_per_1000_served']['mean']:.2f}"
        )
    path = write_result("thresholds_hdfs", payload, path=a.results)
    out(f"{summary_of(payload)}\nwritten to {shown_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
