"""PNGs for `logad evaluate`: score histograms, ROC and precision-recall (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from trainer.metrics import Detection, Population, curve

HISTOGRAM, ROC, PR = "scores.png", "roc.png", "pr.png"


def _save(fig: Figure, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, out)
    finally:
        plt.close(fig)


def plot_histograms(
    normal: npt.ArrayLike, abnormal: npt.ArrayLike, threshold: float, title: str, out: Path
) -> None:
    """Normal vs anomalous session scores on shared bins (log count axis), threshold line."""
    neg = np.asarray(normal, dtype=np.float64)
    pos = np.asarray(abnormal, dtype=np.float64)
    both = np.concatenate([neg, pos, [threshold]])
    lo, hi = float(both.min()), float(both.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 81).tolist()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.hist(neg, bins=bins, alpha=0.6, label=f"normal (n={neg.size})", color="tab:blue")
    ax.hist(pos, bins=bins, alpha=0.6, label=f"anomalous (n={pos.size})", color="tab:red")
    ax.axvline(threshold, color="black", ls="--", lw=1.2, label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("session score (max over windows)")
    ax.set_ylabel("sessions")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, out)


def plot_roc(
    normal: npt.ArrayLike, abnormal: npt.ArrayLike, det: Detection, title: str, out: Path
) -> None:
    c = curve(normal, abnormal)
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=100)
    ax.plot(np.r_[0.0, c.fpr], np.r_[0.0, c.recall], lw=1.5, label=f"AUROC {det.auroc:.4f}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.plot([det.fpr], [det.recall], "o", color="black", label="calibrated threshold")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate (symlog)")
    ax.set_ylabel("recall")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, out)


def plot_pr(
    normal: npt.ArrayLike,
    abnormal: npt.ArrayLike,
    det: Detection,
    population: Population | None,
    title: str,
    out: Path,
) -> None:
    c = curve(normal, abnormal, population)
    where = "at the population ratio" if population else "on the files as given"
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=100)
    ax.step(c.recall, c.precision, where="post", lw=1.5, label=f"AUPRC {det.auprc:.4f}")
    ax.plot([det.recall], [det.precision], "o", color="black", label="calibrated threshold")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel(f"precision ({where})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    _save(fig, out)


def write_plots(
    report_dir: Path,
    normal: npt.ArrayLike,
    abnormal: npt.ArrayLike,
    det: Detection,
    name: str,
    prefix: str = "",
) -> list[Path]:
    """All three PNGs into report_dir; returns their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / f"{prefix}{n}" for n in (HISTOGRAM, ROC, PR)]
    plot_histograms(normal, abnormal, det.threshold, f"{name}: session scores", paths[0])
    plot_roc(normal, abnormal, det, f"{name}: ROC", paths[1])
    plot_pr(normal, abnormal, det, det.population, f"{name}: precision-recall", paths[2])
    return paths
