"""The evaluation harness: labelled session files in, detection figures out.

Sessions longer than 510 events are cut into windows with `schemas.windows.split_points`,
exactly as the trainer and the stream cut them. A session's score is the **max over its
windows**: the stream alerts on a window, so a session is flagged as soon as any of its
windows is, and the max is the session-level score that matches that behaviour.

No test label chooses anything here: the threshold comes from the bundle's calibration (or
from `recalibrate`, which sees only the normal validation slice of the training data).
Labels are used only to count the outcome.

The scoring is injected (`WindowScoreFn`), so the BERT scorer, a re-aggregated variant of it
and the DeepLog baseline all run through the same code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import structlog
from tqdm import tqdm

from schemas.daily_files import read_sessions
from schemas.errors import DataError
from schemas.windows import MAX_EVENTS, split_points
from trainer.event_files import is_events_file, read_event_sessions
from trainer.metrics import Detection, Population, detection
from trainer.mining.matcher import TemplateMatcher
from trainer.time_gaps import TimedEvents

log = structlog.get_logger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
R = TypeVar("R")

EventSeq = tuple[str, ...]
WindowScoreFn = Callable[[Sequence[EventSeq]], Sequence[float]]
"""Scores a batch of windows (event-id sequences, each <= 510 events); one float each."""

DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class SessionWindows:
    """Sessions cut into windows; `owner[i]` is the session index of window i."""

    windows: list[EventSeq]
    owner: IntArray
    n_sessions: int


def split_sessions(
    sessions: Sequence[Sequence[str]], max_events: int = MAX_EVENTS
) -> SessionWindows:
    """Pure: every session's windows, in order. An empty session gets one empty window, so
    every session has a score (the scorer gives an empty window 0)."""
    windows: list[EventSeq] = []
    owner: list[int] = []
    for i, events in enumerate(sessions):
        cuts = split_points(len(events), max_events) or [(0, 0)]
        for a, b in cuts:
            # A session with gaps gives windows with theirs (a time-aware scorer reads them).
            windows.append(
                events.window(a, b) if isinstance(events, TimedEvents) else tuple(events[a:b])
            )
            owner.append(i)
    return SessionWindows(windows, np.asarray(owner, dtype=np.int64), len(sessions))


def session_max(window_scores: npt.ArrayLike, owner: IntArray, n_sessions: int) -> FloatArray:
    """Pure: each session's score as the max over its windows."""
    w = np.asarray(window_scores, dtype=np.float64)
    if w.shape != owner.shape:
        raise ValueError(f"{w.size} window scores for {owner.size} windows")
    out = np.full(n_sessions, -np.inf)
    np.maximum.at(out, owner, w)
    return out


def read_event_lists(
    paths: Iterable[Path], matcher: TemplateMatcher | None = None
) -> list[EventSeq]:
    """The event sequences of every session in the given session files, or events files
    (trainer/event_files.py: raw events mapped with `matcher`); labels ignored. A session
    whose gaps are known is a `TimedEvents`."""
    seqs: list[EventSeq] = []
    for p in paths:
        if not p.is_file():
            raise DataError(f"no such session file: {p}")
        if is_events_file(p):
            seqs.extend(read_event_sessions(p, matcher))
        else:
            seqs.extend(
                s.events if s.gaps_ms is None else TimedEvents(s.events, s.gaps_ms)
                for s in read_sessions(p)
            )
    return seqs


def in_chunks(
    fn: Callable[[list[EventSeq]], Sequence[R]],
    windows: Sequence[EventSeq],
    chunk: int = DEFAULT_CHUNK,
    desc: str = "scoring",
    progress: bool | None = None,
) -> list[R]:
    """Apply `fn` to `chunk` windows at a time (a tqdm bar on a terminal); results in order.

    Windows are sorted by length first so each chunk batches well, then put back in order.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    show = sys.stderr.isatty() if progress is None else progress
    results: list[R | None] = [None] * len(windows)
    with tqdm(total=len(windows), desc=desc, unit="win", disable=not show, leave=False) as bar:
        for s in range(0, len(order), chunk):
            idx = order[s : s + chunk]
            out = fn([windows[i] for i in idx])
            if len(out) != len(idx):
                raise ValueError(f"scorer returned {len(out)} results for {len(idx)} windows")
            for i, r in zip(idx, out, strict=True):
                results[i] = r
            bar.update(len(idx))
    return results  # type: ignore[return-value]  # every slot was filled above


@dataclass(frozen=True)
class Throughput:
    windows: int
    seconds: float

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return {
            "windows": self.windows,
            "seconds": round(self.seconds, 3),
            "windows_per_s": round(self.windows_per_s, 2),
        }


@dataclass(frozen=True)
class ScoredSets:
    """Session scores of the normal and the anomalous files, and what scoring them cost."""

    normal: FloatArray
    abnormal: FloatArray
    throughput: Throughput


@dataclass(frozen=True)
class WindowRun(Generic[R]):
    """One set of sessions cut into windows, and the scorer's result for each window."""

    split: SessionWindows
    results: list[R]
    seconds: float

    def session_scores(self, window_score: Callable[[R], float]) -> FloatArray:
        """Session scores (max over windows) from a per-window score of the results."""
        return session_max(
            [window_score(r) for r in self.results], self.split.owner, self.split.n_sessions
        )


def run_windows(
    fn: Callable[[list[EventSeq]], Sequence[R]],
    sessions: Sequence[Sequence[str]],
    *,
    chunk: int = DEFAULT_CHUNK,
    desc: str = "scoring",
    progress: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> WindowRun[R]:
    """Split the sessions into windows and score them all; the time covers scoring only."""
    split = split_sessions(sessions)
    t0 = clock()
    results = in_chunks(fn, split.windows, chunk, desc, progress)
    return WindowRun(split, results, clock() - t0)


def throughput(*runs: WindowRun[Any]) -> Throughput:
    return Throughput(sum(len(r.split.windows) for r in runs), sum(r.seconds for r in runs))


def score_sets(
    score: WindowScoreFn,
    normal: Sequence[Sequence[str]],
    abnormal: Sequence[Sequence[str]],
    *,
    chunk: int = DEFAULT_CHUNK,
    progress: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> ScoredSets:
    """Score both sets through one window scorer; session score = max over its windows."""
    runs = [
        run_windows(
            lambda b: list(score(b)),
            sessions,
            chunk=chunk,
            desc=f"scoring {name}",
            progress=progress,
            clock=clock,
        )
        for name, sessions in (("normal", normal), ("abnormal", abnormal))
    ]
    tp = throughput(*runs)
    log.info(
        "sessions_scored",
        windows=tp.windows,
        seconds=round(tp.seconds, 2),
        windows_per_s=round(tp.windows_per_s, 1),
    )
    return ScoredSets(runs[0].session_scores(float), runs[1].session_scores(float), tp)


@dataclass(frozen=True)
class EvalReport:
    """Everything `logad evaluate` reports; `to_dict` is report.json."""

    name: str
    """What was evaluated: a strategy or baseline name."""
    detection: Detection
    throughput: Throughput
    threshold_source: str
    """How the threshold was chosen (never from test labels)."""
    forward_passes_per_window: float
    details: dict[str, Any] = field(default_factory=dict)
    """Model version, strategy, calibration quantiles, files: whatever describes the run."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.detection.to_dict(),
            "threshold_source": self.threshold_source,
            "forward_passes_per_window": round(self.forward_passes_per_window, 3),
            "throughput": self.throughput.to_dict(),
            **self.details,
        }


def evaluate_scores(
    name: str,
    scored: ScoredSets,
    threshold: float,
    threshold_source: str,
    forward_passes_per_window: float,
    population: Population | None = None,
    details: dict[str, Any] | None = None,
) -> EvalReport:
    return EvalReport(
        name=name,
        detection=detection(scored.normal, scored.abnormal, threshold, population),
        throughput=scored.throughput,
        threshold_source=threshold_source,
        forward_passes_per_window=forward_passes_per_window,
        details=details or {},
    )


def format_table(reports: Sequence[EvalReport]) -> str:
    """A compact fixed-width table, one row per report."""
    w = max([22, *(len(r.name) for r in reports)])
    head = (
        f"{'name':<{w}} {'F1':>7} {'prec':>7} {'recall':>7} {'FPR':>8} {'AUROC':>7} "
        f"{'AUPRC':>7} {'FP':>5} {'passes':>6} {'win/s':>8}"
    )
    rows = [head, "-" * len(head)]
    for r in reports:
        d = r.detection
        rows.append(
            f"{r.name:<{w}} {d.f1:7.4f} {d.precision:7.4f} {d.recall:7.4f} {d.fpr:8.5f} "
            f"{d.auroc:7.4f} {d.auprc:7.4f} {d.false_positives:5d} "
            f"{r.forward_passes_per_window:6.2f} {r.throughput.windows_per_s:8.1f}"
        )
    return "\n".join(rows)
