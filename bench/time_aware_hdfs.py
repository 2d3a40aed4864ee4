"""Does time-aware scoring cost HDFS anything? (`make bench-time-hdfs`): time-blind and
time-aware bundles trained on the same blocks with the same seeds, side by side, on CPU.

One seed cannot answer it. On the raw HDFS split (bench/raw_hdfs.py: the dev stream's blocks,
the salted half split, the given event ids) 15 of the 70 anomalous test blocks are one
pattern, `E22 E5` and then nothing. Only the session-end marker's NLL can flag it, and that
NLL sits near the threshold: a seed either catches all 15 (F1 about 0.99) or none (about
0.88), time-blind or time-aware. So this bench trains both ways for each of several seeds and
compares their spread, not one draw.

For each seed of --seeds and each of time_buckets 0 and --time-buckets N:
1. the training half's normal blocks as daily files, with their events' gaps when N > 0
   (HDFS's times are whole seconds);
2. the real `logad train` with bench/quality_hdfs.py's recipe (tiny, p99.9 on the trainer's
   validation slice, end marker), that seed;
3. `logad evaluate`'s API on the test half at the bundle's own threshold, test blocks scored
   with their gaps when N > 0. Precision and F1 are at the HDFS population ratio.

Each bundle is scored twice at its own threshold: as shipped (the trainer's rules, known
ends included: an end marker after an event no training window ended with scores like an
unknown event, trainer/known_mixes.py) and with `known_ends` off, re-calibrated on the
training days (`logad evaluate --known-ends false --calibrate-on DAYS`), which leaves that
end to the model's NLL alone.

Reports, per seed, way and rule setting, F1, precision, recall, FPR and AUROC and the
anomalous patterns missed; their mean, min and max over the seeds; and per seed the paired
difference (time-aware minus time-blind). Writes bench/results/time_aware_hdfs.json and .png
(F1 per seed). The last line printed is `RESULT f1_blind_mean=X f1_time_mean=Y seeds=N`, as
shipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.hdfs_args import add_device_args, hdfs_parser  # noqa: E402
from bench.machine import report_header, shown_path, write_result  # noqa: E402
from bench.raw_hdfs import (  # noqa: E402
    evaluate_variant,
    group_sessions,
    label_blocks,
    read_events,
    sessions_of,
    split_blocks,
    train_variant,
)
from schemas.daily_files import read_sessions  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.sessions import Session  # noqa: E402

RESULTS_JSON = ROOT / "bench" / "results" / "time_aware_hdfs.json"
FIGURES = ("f1", "precision", "recall", "fpr", "auroc")
KEPT = ("threshold", "true_positives", "false_positives")
RULES: dict[str, dict[str, bool]] = {"shipped": {}, "no known ends": {"known_ends": False}}
"""Each bundle's scoring: as the trainer calibrated it, and without the known-ends rule."""
PATTERN_EVENTS = 8
"""A missed block's pattern: its first events, joined."""


def pattern(events: Sequence[str]) -> str:
    head = " ".join(events[:PATTERN_EVENTS])
    return head + (" ..." if len(events) > PATTERN_EVENTS else "")


def missed_patterns(sessions: Sequence[Session], flags: Sequence[bool]) -> dict[str, int]:
    """The anomalous sessions not flagged, counted by pattern, most frequent first."""
    missed = Counter(
        pattern(s.events) for s, f in zip(sessions, flags, strict=True) if s.label == 1 and not f
    )
    return dict(missed.most_common())


def spread(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, min and max of each figure over the rows (one per seed)."""
    return {
        k: {
            "mean": round(statistics.fmean(r[k] for r in rows), 4),
            "min": min(r[k] for r in rows),
            "max": max(r[k] for r in rows),
        }
        for k in FIGURES
    }


def paired(
    blind: Sequence[Mapping[str, Any]], timed: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Per seed, time-aware F1 minus time-blind F1, and how the pairs fall."""
    diffs = [round(t["f1"] - b["f1"], 4) for b, t in zip(blind, timed, strict=True)]
    return {
        "f1_time_minus_blind": diffs,
        "mean": round(statistics.fmean(diffs), 4) if diffs else None,
        "time_better": sum(d > 0 for d in diffs),
        "same": sum(d == 0 for d in diffs),
        "blind_better": sum(d < 0 for d in diffs),
    }


def plot(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = result["config"]["seeds"]
    ways = (("blind", "time-blind"), ("time", f"time-aware ({result['config']['time_buckets']})"))
    fig, axes = plt.subplots(1, len(RULES), figsize=(10, 3.6), sharey=True)
    for ax, rules in zip(axes, RULES, strict=True):
        for offset, (way, label) in enumerate(ways):
            f1 = [r["f1"] for r in result["runs"][rules][way]]
            x = [i + (offset - 0.5) * 0.15 for i in range(len(seeds))]
            ax.scatter(x, f1, marker="os"[offset], label=label, s=40, color=f"C{offset}")
            mean = result["summary"][rules][way]["f1"]["mean"]
            ax.axhline(mean, ls="--", lw=0.8, color=f"C{offset}")
        ax.set_xticks(range(len(seeds)), [str(s) for s in seeds])
        ax.set_xlabel("training seed")
        ax.set_title(f"rules {rules}", fontsize=10)
    axes[0].set_ylabel("test-half F1, bundle's own threshold")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("HDFS (given ids): time-blind vs time-aware per seed; dashed: mean")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    p = hdfs_parser(
        __doc__,
        work=ROOT / "bench" / "out" / "time_aware_hdfs",
        results=RESULTS_JSON,
        results_help="default: bench/results/time_aware_hdfs.json",
    )
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="training seeds, each trained both ways (default: %(default)s)",
    )
    p.add_argument(
        "--time-buckets",
        type=int,
        default=16,
        help="the time-aware way's `logad train --time-buckets` (default: %(default)s)",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: quality_hdfs's)"
    )
    add_device_args(p, "where the models train and score")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.time_buckets < 2:
        raise SystemExit(f"--time-buckets must be at least 2, got {a.time_buckets}")
    if not a.seeds or len(set(a.seeds)) != len(a.seeds):
        raise SystemExit("--seeds must name one or more distinct seeds")
    from bench.quality_hdfs import parser as quality_parser
    from schemas.runtime.logs import configure_logging
    from stream.jobs.replay import read_labels

    configure_logging("warning", None)
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    out("[1/2] reading the stream, grouping, labelling and splitting blocks ...")
    lines = read_events(a.data / "dev_events.jsonl.gz")
    blocks = group_sessions(lines)
    dev_labels = read_labels([a.data / "dev_normal.jsonl", a.data / "dev_abnormal.jsonl"])
    labels = label_blocks(
        blocks, dev_labels, (s.session_id for s in read_sessions(a.data / "train.jsonl"))
    )
    train_blocks, test_blocks = split_blocks(blocks)
    given = [x.event_id for x in lines]
    ways = {"blind": 0, "time": a.time_buckets}
    data = {
        way: (
            sessions_of(train_blocks, blocks, lines, given, labels, with_gaps=n > 0),
            sessions_of(test_blocks, blocks, lines, given, labels, with_gaps=n > 0),
        )
        for way, n in ways.items()
    }
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        rules: {way: [] for way in ways} for rules in RULES
    }
    out(f"[2/2] logad train and evaluate, {len(a.seeds)} seeds x 2 ways ...")
    for seed in a.seeds:
        overrides = [] if a.epochs is None else ["--epochs", str(a.epochs)]
        recipe = quality_parser().parse_args(
            ["--out", str(a.out), "--seed", str(seed), "--threads", str(a.threads),
             "--device", a.device, *overrides]
        )  # fmt: skip
        for way, n in ways.items():
            tr, te = data[way]
            t = train_variant(f"{way}-s{seed}", tr, te, a.out, recipe, n)
            for rules, changes in RULES.items():
                row, flags = evaluate_variant(t, recipe, changes)
                runs[rules][way].append(
                    {
                        "seed": seed,
                        **{k: row[k] for k in (*FIGURES, *KEPT)},
                        "val_loss": t.info["val_loss"],
                        "training_seconds": t.info["training_seconds"],
                        "missed_patterns": missed_patterns(te, flags),
                    }
                )
                out(f"  seed {seed} {way:<5} rules {rules:<13} F1 {row['f1']:.4f}  "
                    f"recall {row['recall']:.4f}  FP {row['false_positives']}")  # fmt: skip
    test = data["blind"][1]
    result: dict[str, Any] = {
        **report_header("time_aware_hdfs"),
        "config": {
            "data": shown_path(a.data),
            "ids": "given event ids (E1..E33)",
            "split": "bench/raw_hdfs.py's salted half split",
            "recipe": "bench/quality_hdfs.py's (tiny, p99.9, end marker)",
            "seeds": a.seeds,
            "time_buckets": a.time_buckets,
            "epochs": recipe.epochs,
            "threads": a.threads,
            "device": a.device,
        },
        "test_blocks": {
            "normal": sum(1 for s in test if s.label == 0),
            "anomalous": sum(1 for s in test if s.label == 1),
        },
        "runs": runs,
        "summary": {r: {way: spread(rows) for way, rows in runs[r].items()} for r in RULES},
        "paired": {r: paired(runs[r]["blind"], runs[r]["time"]) for r in RULES},
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    png = a.results.with_suffix(".png")
    plot(result, png)
    result["plot"] = shown_path(png)
    written = write_result("time_aware_hdfs", result, path=a.results)
    out("")
    for rules in RULES:
        for way in ways:
            sm = result["summary"][rules][way]
            out(f"{rules:<14}{way:<6}" + "  ".join(
                f"{k} {sm[k]['mean']:.4f} ({sm[k]['min']:.4f}..{sm[k]['max']:.4f})"
                for k in ("f1", "recall", "fpr")))  # fmt: skip
        pr = result["paired"][rules]
        out(f"{rules:<14}time-aware minus time-blind F1 per seed: "
            f"{pr['f1_time_minus_blind']} (better {pr['time_better']}, same {pr['same']}, "
            f"worse {pr['blind_better']})")  # fmt: skip
    out(f"results: {written}; plot: {result['plot']}")
    out(
        f"RESULT f1_blind_mean={result['summary']['shipped']['blind']['f1']['mean']} "
        f"f1_time_mean={result['summary']['shipped']['time']['f1']['mean']} seeds={len(a.seeds)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
