"""The command-line arguments the HDFS benches share (quality_hdfs, raw_hdfs, replay_hdfs)."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "hdfs"


def hdfs_parser(
    doc: str | None, *, work: Path | None, results: Path | None, results_help: str
) -> argparse.ArgumentParser:
    """A parser described by `doc`'s first paragraph, with --data, --out (the work directory,
    when `work` is given) and --results (default `results`, else as `results_help` says)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    p.add_argument(
        "--data", type=Path, default=DATA, help="HDFS data directory (default: %(default)s)"
    )
    if work is not None:
        p.add_argument(
            "--out", type=Path, default=work, help="work directory (default: %(default)s)"
        )
    p.add_argument("--results", type=Path, default=results, help=f"results JSON ({results_help})")
    return p


def add_device_args(p: argparse.ArgumentParser, device_help: str) -> None:
    """--threads (torch CPU threads) and --device (`device_help` says what runs there)."""
    p.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)"
    )
    p.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "auto"],
        help=f"{device_help} (default: %(default)s)",
    )
