"""`logad retrain`: one nightly step of the closed loop, with a promotion gate.

    lock the registry -> pick the last N complete days, the newest held out
    -> train a candidate (warm-started from the current bundle, or from scratch)
       in a hidden temporary directory inside the registry
    -> score the held-out day with the candidate and the current bundle
    -> promote only through the gate -> write a decision record -> prune old bundles

Nothing in the registry changes until the end: the candidate joins the registry (under its
version) and the `current` pointer moves only when the gate passes. A crashed run leaves a
hidden `.retrain-*` directory, which the next run removes (it holds the lock, so no other
run can be using it).

The gate: on the held-out day, each model's *calibrated false-alert rate* is the share of
normal windows over that model's own threshold. Normal means labelled 0 when the files carry
labels, else not alerted by the stream. The candidate is promoted when its rate is at most
the current one's plus `margin` and, with labels, its F1 is no lower.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from schemas.daily_files import find_daily_files, read_sessions
from schemas.errors import ConfigError, DataError
from schemas.registry import is_registry, prune, read_pointer
from schemas.windows import MAX_EVENTS, split_points

log = structlog.get_logger(__name__)

LOCK_FILE = ".retrain.lock"
TMP_PREFIX = ".retrain-"
DECISIONS = "decisions"


@dataclass(frozen=True)
class RetrainSettings:
    archive_dir: Path | None = None
    """Directory of daily files written by `logad serve --archive-dir`."""
    registry: Path | None = None
    """Model registry directory (bundles plus the `current` pointer)."""
    last_days: int = 7
    """Train on this many complete days before the held-out (newest complete) day."""
    from_scratch: bool = False
    """Train a fresh model instead of warm-starting from the current bundle."""
    preset: Literal["base", "small", "tiny"] = "base"
    """Model shape when training from scratch (a warm start keeps the bundle's)."""
    epochs: int = 1
    """Passes over the training windows."""
    nproc: int = 1
    """DDP processes through torchrun (one per GPU), as `logad train --nproc`."""
    margin: float = 0.0
    """Promote when candidate false-alert rate <= current rate + margin (absolute)."""
    keep: int = 5
    """Bundles kept in the registry after a promotion (never the current or previous)."""
    exclude_alerted: bool = True
    """Leave out windows the stream alerted on when training."""
    lr: float | None = None
    """Peak learning rate (default: the trainer's)."""
    tokens_per_batch: int | None = None
    """Padded tokens per batch per rank (default: the trainer's)."""
    cpu_threads: int | None = None
    """Intra-op CPU threads for training (default: the trainer's)."""
    device: str = "auto"
    """Training and evaluation device: auto, cpu, cuda, cuda:N."""
    seed: int | None = None
    """Training seed (default: the trainer's)."""
    train_config: Path | None = None
    """A `logad train` config file for every other training knob."""
    eval_tokens_per_batch: int = 16_384
    """Token budget per scoring batch when evaluating on the held-out day."""

    def __post_init__(self) -> None:
        if self.archive_dir is None:
            raise ConfigError("no archive: pass --archive-dir DIR (or set LOGAD_ARCHIVE_DIR)")
        if self.registry is None:
            raise ConfigError("no registry: pass --registry DIR (or set LOGAD_REGISTRY)")
        for name in ("last_days", "epochs", "nproc", "keep", "eval_tokens_per_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.keep < 2:
            raise ValueError("keep must be >= 2 (the current and the previous bundle)")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")


# ---- pure parts: the plan, the figures, the decision


@dataclass(frozen=True)
class DayPlan:
    train_days: tuple[date, ...]
    holdout: date


def plan_days(complete: Sequence[date], last_days: int) -> DayPlan:
    """The newest complete day is held out; the `last_days` complete days before it train."""
    days = sorted(set(complete))
    if len(days) < 2:
        raise DataError(
            f"retrain needs at least two complete days (training and held out); found "
            f"{len(days)}: {[d.isoformat() for d in days]}"
        )
    return DayPlan(tuple(days[-1 - last_days : -1]), days[-1])


@dataclass(frozen=True)
class Figures:
    """One model's results on the held-out day."""

    version: str
    threshold: float
    windows: int
    normal_windows: int
    false_alerts: int
    false_alert_rate: float
    labelled: bool
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None


def figures(
    version: str,
    threshold: float,
    scores: Sequence[float],
    labels: Sequence[int | None],
    alerted: Sequence[bool | None],
) -> Figures:
    """A model's figures from its window scores (flag when score > threshold)."""
    if not len(scores) == len(labels) == len(alerted):
        raise ValueError("scores, labels and alerted differ in length")
    flagged = [s > threshold for s in scores]
    labelled = any(lb is not None for lb in labels)
    normal = [lb == 0 for lb in labels] if labelled else [not a for a in alerted]
    n_normal = sum(normal)
    fa = sum(f and n for f, n in zip(flagged, normal, strict=True))
    far = fa / n_normal if n_normal else 0.0
    if not labelled:
        return Figures(version, threshold, len(scores), n_normal, fa, far, False)
    pos = [lb == 1 for lb in labels]
    tp = sum(f and p for f, p in zip(flagged, pos, strict=True))
    n_pos = sum(pos)
    precision = tp / (tp + fa) if tp + fa else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Figures(version, threshold, len(scores), n_normal, fa, far, True, precision, recall, f1)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(candidate: Figures, current: Figures | None, margin: float) -> Decision:
    """The promotion gate."""
    if current is None:
        return Decision(True, "no current model: the first candidate is promoted")
    c, k = candidate.false_alert_rate, current.false_alert_rate
    rates = f"false-alert rate {c:.6f} vs current {k:.6f} + margin {margin:g}"
    if c > k + margin:
        return Decision(False, f"rejected: {rates} is worse")
    if candidate.f1 is not None and current.f1 is not None:
        f1s = f"F1 {candidate.f1:.4f} vs current {current.f1:.4f}"
        if candidate.f1 < current.f1:
            return Decision(False, f"rejected: {f1s} is worse ({rates} passes)")
        return Decision(True, f"promoted: {rates} passes and {f1s} is no worse")
    return Decision(True, f"promoted: {rates} passes (no labels, F1 not compared)")


# ---- I/O


@contextlib.contextmanager
def registry_lock(registry: Path) -> Iterator[None]:
    """Hold the registry's retrain lock, or raise at once if another run holds it."""
    registry.mkdir(parents=True, exist_ok=True)
    fd = os.open(registry / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another logad retrain is running on {registry} (it holds {LOCK_FILE}); "
                "not starting a second one"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


@dataclass(frozen=True)
class HeldOut:
    sequences: list[tuple[str, ...]]
    labels: list[int | None]
    alerted: list[bool | None]


def read_held_out(path: Path) -> HeldOut:
    """The held-out day's windows (long sessions cut as the trainer and stream cut them)."""
    seqs: list[tuple[str, ...]] = []
    labels: list[int | None] = []
    alerted: list[bool | None] = []
    for s in read_sessions(path, strict=False):
        for a, b in split_points(len(s.events), MAX_EVENTS):
            seqs.append(s.events[a:b])
            labels.append(s.label)
            alerted.append(s.alerted)
    if not seqs:
        raise DataError(f"the held-out day {path} holds no windows")
    return HeldOut(seqs, labels, alerted)


def evaluate_bundle(bundle: Path, held: HeldOut, s: RetrainSettings) -> Figures:
    from trainer.scoring.scorer import WindowScorer

    scorer = WindowScorer.from_bundle(
        bundle, s.device, max_batch_tokens=max(s.eval_tokens_per_batch, 512)
    )
    scores = [r.score for r in scorer.score_events(held.sequences)]
    return figures(scorer.model_version, scorer.threshold, scores, held.labels, held.alerted)


def train_argv(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> list[str]:
    """The `logad train` arguments for the candidate."""
    assert s.archive_dir is not None
    argv = ["train", "--data", str(s.archive_dir), "--out", str(out)]
    argv += ["--from-date", plan.train_days[0].isoformat()]
    argv += ["--to-date", plan.train_days[-1].isoformat()]
    argv += ["--run-dir", str(out.with_name("run")), "--nproc", str(s.nproc)]
    argv += ["--complete-only", "true", "--exclude-alerted", str(s.exclude_alerted).lower()]
    argv += ["--preset", s.preset, "--epochs", str(s.epochs), "--device", s.device]
    for name in ("lr", "tokens_per_batch", "cpu_threads", "seed"):
        v = getattr(s, name)
        if v is not None:
            argv += ["--" + name.replace("_", "-"), str(v)]
    if s.train_config is not None:
        argv += ["--config", str(s.train_config)]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    return argv


def _train_candidate(argv: list[str]) -> None:
    from stream.cli.train import build_parser

    args = build_parser().parse_args(argv)
    rc = args.func(args)
    if rc != 0:
        raise DataError(f"training the candidate failed (exit {rc})")


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    record_path: Path
    record: dict[str, Any]


def run_retrain(s: RetrainSettings, now: datetime) -> Outcome:
    assert s.archive_dir is not None and s.registry is not None
    registry = s.registry
    with registry_lock(registry):
        for stale in registry.glob(TMP_PREFIX + "*"):
            log.warning("retrain_stale_temp_removed", path=str(stale))
            shutil.rmtree(stale, ignore_errors=True)
        # The file itself, not a name rebuilt from its day: a day may be a `.json` array.
        found = find_daily_files([s.archive_dir], complete_only=True)
        complete = {f.day: f.path for f in found if f.day}
        plan = plan_days(list(complete), s.last_days)
        current_dir = registry / read_pointer(registry).version if is_registry(registry) else None
        init_from = None if s.from_scratch or current_dir is None else current_dir
        log.info(
            "retrain_plan",
            train_days=[d.isoformat() for d in plan.train_days],
            holdout=plan.holdout.isoformat(),
            warm_start=str(init_from),
        )
        tmp = registry / f"{TMP_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        tmp.mkdir()
        try:
            candidate_dir = tmp / "candidate"
            _train_candidate(train_argv(s, plan, candidate_dir, init_from))
            held = read_held_out(complete[plan.holdout])
            cand = evaluate_bundle(candidate_dir, held, s)
            cur = evaluate_bundle(current_dir, held, s) if current_dir is not None else None
            decision = decide(cand, cur, s.margin)
            pruned: list[str] = []
            if decision.promote:
                from schemas.registry import promote
                from stream.cli.registry import add_to_registry

                version = add_to_registry(candidate_dir, registry, move=True)
                promote(registry, version)
                pruned = prune(registry, s.keep)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        record = {
            "time": now.isoformat(timespec="seconds"),
            "promoted": decision.promote,
            "reason": decision.reason,
            "candidate": asdict(cand),
            "current": asdict(cur) if cur is not None else None,
            "train_days": [d.isoformat() for d in plan.train_days],
            "holdout_day": plan.holdout.isoformat(),
            "warm_start_from": init_from.name if init_from else None,
            "margin": s.margin,
            "current_after": read_pointer(registry).version if is_registry(registry) else None,
            "pruned": pruned,
        }
        path = write_decision(registry, now, record)
        log.info(
            "retrain_decision",
            promoted=decision.promote,
            reason=decision.reason,
            candidate=cand.version,
            record=str(path),
        )
        return Outcome(decision, path, record)


def write_decision(registry: Path, now: datetime, record: dict[str, Any]) -> Path:
    d = registry / DECISIONS
    d.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    path = d / f"{stamp}.json"
    tmp = d / f".{stamp}.tmp"
    tmp.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
    return path
