"""PNGs for `logad evaluate`: score histograms, ROC and precision-recall; with --incidents, a
timeline of alerts against incident spans and detection per incident type (matplotlib, Agg)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from trainer.incidents import IncidentReport, ScoredSession
from trainer.metrics import Detection, Population, curve

HISTOGRAM, ROC, PR = "scores.png", "roc.png", "pr.png"
TIMELINE, BY_TYPE = "incident_timeline.png", "incidents_by_type.png"


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


def _time(ms: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Epoch ms as matplotlib date numbers: days since its default epoch, 1970-01-01 (the
    axis shows them as UTC times)."""
    return np.asarray(ms, dtype=np.float64) / 86_400_000.0


def plot_incident_timeline(
    sessions: Sequence[ScoredSession],
    report: IncidentReport,
    threshold: float | None,
    title: str,
    out: Path,
) -> None:
    """Session scores over time (at each session's end), alerts marked, incident spans shaded:
    green detected, red missed, labelled with their type."""
    end = np.array([s.end_ms for s in sessions], dtype=np.float64)
    score = np.array([s.score for s in sessions], dtype=np.float64)
    alerted = np.array([s.alerted for s in sessions], dtype=np.bool_)
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    for o in report.outcomes:
        a, b = (float(v) for v in _time([o.incident.start_ms, o.incident.end_ms]))
        ax.axvspan(a, b, color="tab:green" if o.detected else "tab:red", alpha=0.18, lw=0)
        ax.text(
            a,
            1.0,
            o.incident.type or "",
            rotation=90,
            va="top",
            ha="left",
            fontsize=6,
            transform=ax.get_xaxis_transform(),
            color="dimgray",
        )
    ax.plot(
        _time(end[~alerted]),
        score[~alerted],
        ".",
        ms=2,
        color="tab:blue",
        alpha=0.4,
        label=f"sessions ({int((~alerted).sum())})",
    )
    ax.plot(
        _time(end[alerted]),
        score[alerted],
        "x",
        ms=5,
        color="black",
        label=f"alerted ({int(alerted.sum())}; {report.false_alerts} outside incidents)",
    )
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("session score")
    ax.set_title(
        f"{title}: {report.detected}/{len(report.outcomes)} incidents detected "
        "(green detected, red missed)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8)
    ax.xaxis_date(tz=UTC)
    fig.autofmt_xdate()
    fig.tight_layout()
    _save(fig, out)


def plot_detection_by_type(report: IncidentReport, title: str, out: Path) -> None:
    """Per incident type: incidents and detected ones, with the median time to first alert."""
    names = list(report.types)
    total = [report.types[n].incidents for n in names]
    found = [report.types[n].detected for n in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names) + 2), 4.5), dpi=100)
    x = np.arange(len(names))
    ax.bar(x, total, color="lightgray", label="incidents")
    ax.bar(x, found, color="tab:green", label="detected")
    for i, n in enumerate(names):
        med = report.types[n].to_dict()["time_to_first_alert_s"]["median"]
        note = f"{found[i]}/{total[i]}" + ("" if med is None else f"\n{med:.0f} s")
        ax.text(i, total[i], note, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("incidents")
    ax.set_ylim(0, max([1, *total]) * 1.25)
    fpk = report.false_alerts_per_1000
    ax.set_title(
        f"{title}: detection by type (median time to first alert)\nfalse alerts "
        f"{'-' if fpk is None else f'{fpk:.3g}'} per 1,000 sessions outside incidents",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    _save(fig, out)


def write_incident_plots(
    report_dir: Path,
    sessions: Sequence[ScoredSession],
    report: IncidentReport,
    threshold: float | None,
    name: str = "incidents",
) -> list[Path]:
    """The timeline and the per-type bars into report_dir; returns their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / TIMELINE, report_dir / BY_TYPE]
    plot_incident_timeline(sessions, report, threshold, name, paths[0])
    plot_detection_by_type(report, name, paths[1])
    return paths
