"""A PNG of training and validation loss from metrics.jsonl (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_losses(records: list[dict[str, Any]], out: Path) -> None:
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    val = [(r["step"], r["loss"]) for r in records if r.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        if train:
            marker = "." if len(train) < 60 else None
            ax.plot(*zip(*train, strict=True), marker=marker, label="train (per masked token)")
        if val:
            ax.plot(*zip(*val, strict=True), "o-", label="validation", lw=1.5)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross entropy")
        ax.set_title("logad MLM loss")
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend()
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
        fig.savefig(tmp)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
