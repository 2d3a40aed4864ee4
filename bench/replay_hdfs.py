"""HDFS replay benchmark: `logad replay` of the dev event stream against the session-file
evaluation of the same blocks, with the same bundle and threshold.

1. Replay: `logad replay --events dev_events.jsonl.gz` through the stream's real
   sessionizer (a gap long enough for HDFS blocks) and the bundle's scorer; a block's score
   is its highest window score.
2. Session files, like for like: the same blocks' sessions built from the events file
   itself (each block's events in file order), cut with `split_points` and scored through
   the same scorer (`logad evaluate`'s harness).
3. Session files as published: dev_normal.jsonl / dev_abnormal.jsonl (all 14,171 blocks).

Labels come from dev_normal / dev_abnormal; the 48 blocks of the stream that are training
blocks (no dev label) are left out of the figures. Precision and F1 are extrapolated to
the HDFS population ratio. Writes bench/results/replay_hdfs.json (replay_hdfs-cuda.json on
a GPU) and its entry in bench/results/index.json.
"""

from __future__ import annotations

import argparse
import gzip
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
import orjson  # noqa: E402
import torch  # noqa: E402

from bench.hdfs_args import DATA, add_device_args, hdfs_parser  # noqa: E402
from bench.machine import report_header, shown_path, write_result  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.runtime.logs import configure_logging  # noqa: E402
from schemas.scores import Score  # noqa: E402
from stream.jobs.replay import read_labels  # noqa: E402
from trainer.evaluate import read_event_lists, run_windows  # noqa: E402
from trainer.metrics import Detection, Population, detection  # noqa: E402
from trainer.scoring.scorer import WindowScorer  # noqa: E402

POPULATION = Population(normals=552_640, abnormals=16_838)
HOUR_MS = 3_600_000
# The longest silence inside one dev block is 12.9 h and the longest block spans 14.9 h
# (measured on dev_events): a 14 h gap keeps every block whole. The duration limit must
# exceed a block's span plus the gap, so that its window closes by the gap (the block ended)
# and not by the limit first (cut while it might go on, so scored without the end marker).
GAP_MS = 14 * HOUR_MS
MAX_DURATION_MS = 36 * HOUR_MS


def sessions_of_events(path: Path) -> dict[str, tuple[str, ...]]:
    """Each session's event ids in file order (sessions in order of first appearance)."""
    acc: dict[str, list[str]] = {}
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                e = orjson.loads(raw)
                acc.setdefault(e["session_id"], []).append(str(e["event_id"]))
    return {k: tuple(v) for k, v in acc.items()}


def figures(block_scores: dict[str, float], labels: dict[str, int], threshold: float) -> Detection:
    normal = [v for k, v in block_scores.items() if labels.get(k) == 0]
    abnormal = [v for k, v in block_scores.items() if labels.get(k) == 1]
    return detection(normal, abnormal, threshold, POPULATION)


def row(name: str, d: Detection, blocks: int, windows: int, seconds: float) -> dict[str, Any]:
    return {
        "name": name,
        "blocks_labelled": d.n_normal + d.n_abnormal,
        "blocks_scored": blocks,
        "windows": windows,
        "f1": round(d.f1, 4),
        "precision": round(d.precision, 4),
        "recall": round(d.recall, 4),
        "fpr": round(d.fpr, 5),
        "false_positives": d.false_positives,
        "true_positives": d.true_positives,
        "n_normal": d.n_normal,
        "n_abnormal": d.n_abnormal,
        "auroc": round(d.auroc, 4),
        "auprc": round(d.auprc, 4),
        "seconds": round(seconds, 1),
        "windows_per_s": round(windows / seconds, 1) if seconds > 0 else None,
    }


def block_scores(scores: Sequence[Score]) -> dict[str, float]:
    """A block's score: its highest window score."""
    out: dict[str, float] = {}
    for s in scores:
        out[s.session_id] = max(s.score, out.get(s.session_id, -np.inf))
    return out


def replay(
    a: argparse.Namespace, work: Path, extra: Sequence[str] = ()
) -> tuple[list[Score], float]:
    """The real command line, scores to a file, read back."""
    from stream.cli import main as logad

    scores_path = work / "scores.jsonl"
    t0 = time.perf_counter()
    rc = logad(
        [
            "--log-level",
            "warning",
            "replay",
            "--events",
            str(a.events),
            "--model",
            str(a.model),
            "--gap-ms",
            str(a.gap_ms),
            "--max-duration-ms",
            str(a.max_duration_ms),
            "--device",
            a.device,
            "--out",
            str(scores_path),
            *extra,
        ]
    )
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"logad replay failed with exit code {rc}")
    return [Score.decode(x) for x in scores_path.read_bytes().splitlines() if x], seconds


def main(argv: Sequence[str] | None = None) -> int:
    p = hdfs_parser(
        __doc__,
        work=None,
        results=None,
        results_help="default: bench/results/replay_hdfs.json, -<device> off CPU",
    )
    p.add_argument(
        "--model",
        type=Path,
        default=ROOT / "bench" / "out" / "hdfs" / "model",
        help="bundle (default: %(default)s, from make bench-quality)",
    )
    p.add_argument(
        "--events",
        type=Path,
        default=DATA / "dev_events.jsonl.gz",
        help="event stream (default: %(default)s)",
    )
    p.add_argument("--gap-ms", type=int, default=GAP_MS, help="session gap (default: %(default)s)")
    p.add_argument(
        "--max-duration-ms",
        type=int,
        default=MAX_DURATION_MS,
        help="longest window span (default: %(default)s)",
    )
    add_device_args(p, "scoring device for both paths; the README's figures are CPU's")
    a = p.parse_args(argv)
    configure_logging("warning", None)
    torch.set_num_threads(a.threads)
    dev_files = [a.data / "dev_normal.jsonl", a.data / "dev_abnormal.jsonl"]
    labels = read_labels(dev_files)

    out("[1/3] logad replay of the event stream (and again, explaining known mixes) ...")
    with tempfile.TemporaryDirectory() as tmp:
        scores, replay_s = replay(a, Path(tmp))
        explained, explained_s = replay(a, Path(tmp), ["--explain-known-mixes"])
    threshold = scores[0].threshold
    replayed, explained_blocks = block_scores(scores), block_scores(explained)
    assert set(replayed) == set(explained_blocks)

    out("[2/3] the same blocks as session files ...")
    scorer = WindowScorer.from_bundle(a.model, a.device)
    assert scorer.threshold == threshold
    blocks = sessions_of_events(a.events)
    ids = list(blocks)

    def score(batch: list[tuple[str, ...]]) -> list[float]:
        return [r.score for r in scorer.score_events(batch)]

    run = run_windows(score, [blocks[k] for k in ids], desc="blocks")
    from_files = dict(zip(ids, run.session_scores(float).tolist(), strict=True))

    out("[3/3] dev_normal / dev_abnormal ...")
    normal = read_event_lists([dev_files[0]])
    abnormal = read_event_lists([dev_files[1]])
    runs = [run_windows(score, s, desc=n) for n, s in (("normal", normal), ("abnormal", abnormal))]
    dev_det = detection(
        runs[0].session_scores(float), runs[1].session_scores(float), threshold, POPULATION
    )

    both = sorted(set(replayed) & set(from_files))
    diff = np.array([abs(replayed[k] - from_files[k]) for k in both])
    flag_diff = [k for k in both if (replayed[k] > threshold) != (from_files[k] > threshold)]
    d_replay = figures(replayed, labels, threshold)
    d_files = figures(from_files, labels, threshold)
    rows = [
        row("replay (logad replay, sessionizer)", d_replay, len(replayed), len(scores), replay_s),
        row(
            "replay --explain-known-mixes (the model runs on every window)",
            figures(explained_blocks, labels, threshold),
            len(explained_blocks),
            len(explained),
            explained_s,
        ),
        row(
            "session file of the same blocks",
            d_files,
            len(from_files),
            len(run.split.windows),
            run.seconds,
        ),
        row(
            "dev_normal + dev_abnormal",
            dev_det,
            len(normal) + len(abnormal),
            sum(len(r.split.windows) for r in runs),
            sum(r.seconds for r in runs),
        ),
    ]
    cmp = {
        "blocks_compared": len(both),
        "blocks_only_in_replay": len(set(replayed) - set(from_files)),
        "blocks_only_in_file": len(set(from_files) - set(replayed)),
        "max_abs_score_difference": float(diff.max()) if diff.size else 0.0,
        "blocks_with_different_scores": int((diff > 1e-6).sum()),
        "blocks_flagged_differently": len(flag_diff),
        "replay_windows": len(scores),
        "file_windows": len(run.split.windows),
        "max_abs_score_difference_explained": max(
            abs(replayed[k] - explained_blocks[k]) for k in replayed
        ),
        "windows_without_forward_pass": sum(
            1 for s in scores if s.score == 0.0 and not s.surprising
        ),
    }
    results = {
        **report_header("replay_hdfs", key="benchmark"),
        "model": shown_path(a.model),
        "model_version": scorer.model_version,
        "strategy": scorer.strategy.to_dict(),
        "end_marker": scorer.end_marker,
        "threshold": threshold,
        "sessionizer": {"gap_ms": a.gap_ms, "max_duration_ms": a.max_duration_ms},
        "events_file": shown_path(a.events),
        "stream_blocks": len(blocks),
        "stream_blocks_without_dev_label": sum(1 for k in blocks if k not in labels),
        "population": {"normals": POPULATION.normals, "abnormals": POPULATION.abnormals},
        "rows": rows,
        "replay_vs_session_file": cmp,
        "note": (
            "replay's windows/s includes reading, decoding and sessionizing the events "
            "file and starting the command; the session-file rows time the scorer only"
        ),
    }
    name = "replay_hdfs" if a.device == "cpu" else f"replay_hdfs-{a.device}"
    written = write_result(name, results, path=a.results)
    for r in rows:
        out(
            f"{r['name']:<38} F1 {r['f1']:.4f}  P {r['precision']:.4f}  R {r['recall']:.4f}  "
            f"FPR {r['fpr']:.5f}  AUROC {r['auroc']:.4f}  "
            f"({r['n_normal']} normal, {r['n_abnormal']} anomalous blocks)"
        )
    out(
        f"replay vs file: {cmp['blocks_compared']} blocks, max |score diff| "
        f"{cmp['max_abs_score_difference']:.3g}, {cmp['blocks_flagged_differently']} flagged "
        "differently"
    )
    out(
        f"replay {replay_s:.1f} s; explaining known mixes {explained_s:.1f} s "
        f"({cmp['windows_without_forward_pass']} windows without a forward pass; max |score "
        f"diff| {cmp['max_abs_score_difference_explained']:.3g})"
    )
    out(f"results: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
