"""The seed's epoch, timed: one epoch of 2.46M synthetic sessions (seed-like lengths, in daily
files) through `logad train`, resumable across time-limited runs.

    python3 -m bench.seed_epoch --workdir DIR --device cuda --time-limit-s 480
    python3 -m bench.seed_epoch --workdir DIR --device cuda --time-limit-s 480   # resumes
    .venv/bin/python -m bench.seed_epoch --workdir /tmp/se --sessions 3000 --days 3 \\
        --preset tiny --device cpu                                              # a dry run

The seed trains BERT-base for 10 epochs of 2.46M sessions from 286 daily files. This writes
--days daily files of --sessions sessions in all (log-normal lengths around --mean-len
events, Zipf event ids; `bench.train_throughput.synthesize`), once, then runs `logad train
--epochs 1` on them with checkpoints, under --time-limit-s. A run stopped by the limit
leaves its checkpoints, and the same command continues from the newest one (`--resume`).
Each part's wall time is kept in DIR/parts.json; the result sums them (data synthesis
apart), and projects 10 epochs from the epoch's time, or, for an unfinished epoch, from the
share of it done so far (metrics.jsonl). Writes bench/results/seed_epoch-<preset>-<device>.json
(or --out) and its entry in bench/results/index.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.machine import report_header, write_result
from bench.train_throughput import synthesize
from schemas.daily_files import daily_file_name
from schemas.runtime.console import out as say

SEED_EPOCHS = 10
FIRST_DAY = date(2026, 1, 1)


def write_days(data: Path, sessions: int, days: int, mean_len: float, events: int) -> float:
    """The daily files, unless a finished earlier run wrote them; returns the seconds taken."""
    done = data / ".complete"
    if done.exists():
        return 0.0
    t0 = time.perf_counter()
    data.mkdir(parents=True, exist_ok=True)
    per_day, extra = divmod(sessions, days)
    for i in range(days):
        day = FIRST_DAY + timedelta(days=i)
        n = per_day + (1 if i < extra else 0)
        synthesize(data / daily_file_name(day), n, mean_len, events, seed=i)
    done.write_text(f"{sessions} sessions in {days} files\n")
    return time.perf_counter() - t0


def last_train_record(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    return train[-1] if train else None


def train_part(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One time-limited `logad train` run, resuming when an earlier part left checkpoints."""
    run_dir = work / "run"
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    cmd = [sys.executable, "-m", "stream.cli", "train", "--data", str(work / "data"),
           "--out", str(work / "bundle"), "--run-dir", str(run_dir),
           "--token-cache-dir", str(work / "token-cache"), "--preset", args.preset,
           "--epochs", "1", "--device", args.device,
           "--checkpoint-every-steps", str(args.checkpoint_every_steps),
           "--tokens-per-batch", str(args.tokens_per_batch)]  # fmt: skip
    if args.pack_tokens:
        cmd += ["--pack-tokens", str(args.pack_tokens)]
    if resume:
        cmd.append("--resume")
    t0 = time.perf_counter()
    try:
        rc = subprocess.run(cmd, timeout=args.time_limit_s).returncode
    except subprocess.TimeoutExpired:
        rc = None  # stopped by the limit: the next part resumes
    return {"seconds": round(time.perf_counter() - t0, 1), "rc": rc, "resumed": resume}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True, help="data, run and bundle go here")
    p.add_argument("--sessions", type=int, default=2_460_000, help="(default: 2460000)")
    p.add_argument("--days", type=int, default=286, help="daily files (default: 286)")
    p.add_argument("--mean-len", type=float, default=40.0, help="mean events (default: 40)")
    p.add_argument("--events", type=int, default=2000, help="distinct event ids (default: 2000)")
    p.add_argument("--preset", default="base", choices=["base", "small", "tiny"])
    p.add_argument("--device", default="cuda", help="(default: cuda)")
    p.add_argument("--tokens-per-batch", type=int, default=65_536, help="(default: 65536)")
    p.add_argument("--pack-tokens", type=int, default=0, help="pack_tokens (default: 0)")
    p.add_argument("--checkpoint-every-steps", type=int, default=500, help="(default: 500)")
    p.add_argument(
        "--time-limit-s", type=float, default=None, help="stop this part after (default: none)"
    )
    p.add_argument("--out", type=Path, default=None, help="result file (default: bench/results)")
    args = p.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    synth_s = write_days(work / "data", args.sessions, args.days, args.mean_len, args.events)
    parts_path = work / "parts.json"
    parts = orjson.loads(parts_path.read_bytes()) if parts_path.exists() else []
    if not (work / "bundle").exists():
        parts.append(train_part(args, work))
        parts_path.write_bytes(orjson.dumps(parts))
    finished = (work / "bundle" / "manifest.json").exists()
    record = last_train_record(work / "run")
    fraction = 1.0 if finished else float(record["epoch"]) if record else 0.0
    seconds = sum(part["seconds"] for part in parts)
    epoch_s = seconds / fraction if fraction > 0 else None
    result = {
        **report_header("seed_epoch"),
        "preset": args.preset,
        "device": args.device,
        "sessions": args.sessions,
        "days": args.days,
        "mean_len": args.mean_len,
        "tokens_per_batch": args.tokens_per_batch,
        "pack_tokens": args.pack_tokens,
        "synthesize_s": round(synth_s, 1),
        "parts": parts,
        "finished": finished,
        "epoch_fraction_done": round(fraction, 4),
        "train_seconds": round(seconds, 1),
        "last_tokens_per_s": record.get("tokens_per_s") if record else None,
        "epoch_seconds": round(epoch_s, 1) if epoch_s else None,
        f"projected_{SEED_EPOCHS}_epochs_hours": (
            round(epoch_s * SEED_EPOCHS / 3600, 2) if epoch_s else None
        ),
    }
    name = f"seed_epoch-{args.preset}-{args.device.split(':')[0]}"
    dest = write_result(name, result, path=args.out)
    say(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    say(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
