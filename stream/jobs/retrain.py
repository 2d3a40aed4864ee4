"""`logad retrain`: one nightly step of the closed loop, with a promotion gate.

    lock the registry -> count the complete days, newest first: a day counts with
       `min_sessions` sessions; the newest that counts is held out, the last N before it
       train (too little data: a `skipped` record, nothing trained, exit 0)
    -> train a candidate (warm-started from the current bundle, or from scratch) for a
       number of optimizer steps sized from the data, in a hidden temporary directory
       inside the registry
    -> score the held-out day, and the windows the current model alerted on (or operators
       confirmed), with the candidate and the current bundle
    -> promote only through the gate (a refused candidate joins the registry unpromoted,
       kept `keep_refused_days`) -> write a decision record -> prune old bundles

Nothing in the registry changes until the end: the candidate joins the registry (under its
version) and the `current` pointer moves only when the gate passes. A crashed run leaves a
hidden `.retrain-*` directory, which the next run removes (it holds the lock, so no other
run can be using it).

The gate (the plan, the figures and the decision) is in stream/jobs/retrain_gate.py.

With a bundle key (schemas/signing.py), the current bundle's signature is checked before
anything is trained, and the candidate is signed when it joins the registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import structlog

from schemas.bundle import MANIFEST, BundleManifest, verify_bundle
from schemas.daily_files import DayFile, find_daily_files, read_sessions
from schemas.errors import ConfigError, DataError
from schemas.feedback import Feedback, read_feedback
from schemas.registry import is_registry, prune, read_pointer
from schemas.registry_history import write_decision
from schemas.runtime.secret import Secret
from schemas.runtime.settings import REQUIRED, build_settings
from schemas.sessions import Session
from schemas.signing import BundleKeySettings
from schemas.windows import MAX_EVENTS, split_points
from stream.jobs.registry import add_to_registry, promote_bundle, prune_refused, refused_versions
from stream.jobs.retrain_gate import (
    DayCount,
    DayPlan,
    Decision,
    Figures,
    GateRules,
    Minimums,
    Skip,
    decide,
    figures,
    is_watched,
    plan_days,
    verdict_of,
)
from stream.jobs.train import check_processes, launch_workers, launches_workers, train_here
from trainer.window_filter import AlertedWindow, WindowFilterSettings, recurring_from, recurs

if TYPE_CHECKING:
    from trainer.scoring.score import WindowResult

log = structlog.get_logger(__name__)

LOCK_FILE = ".retrain.lock"
TMP_PREFIX = ".retrain-"

WARM_LR: dict[str, float] = {"base": 5e-5, "small": 1e-3, "tiny": 2e-3}
"""A warm start's peak learning rate by the bundle's preset, when `lr` is not given: the
peak that trained each preset best from scratch (docs/quality.md). Measured for tiny on a
warm start (docs/operations.md): 2e-5 over 200 steps moved the held-out loss 2%, 2e-3 66%."""


@dataclass(frozen=True)
class CandidateSettings:
    """Candidate training

    How the candidate is trained: as `logad train` would, warm-started from the current
    bundle unless from_scratch; the trainer's own defaults and a train_config file give
    every other knob."""

    last_days: int = 7
    """Train on this many days that count before the held-out day (the newest that counts)."""
    min_sessions: int = 500
    """Sessions a complete day needs to count, for training or as the held-out day; a
    smaller one (a stub after a restart, a quiet holiday) is left out. With fewer than two
    days that count, nothing is trained: the run writes a `skipped` record and exits 0."""
    from_scratch: bool = False
    """Train a fresh model instead of warm-starting from the current bundle."""
    preset: Literal["base", "small", "tiny"] = "base"
    """Model shape when training from scratch (a warm start keeps, and logs, the bundle's)."""
    epochs: int = 2
    """Passes over the training windows the candidate aims at; min_steps and max_steps
    bound the optimizer steps that comes to (`logad train --epochs`)."""
    min_steps: int = 200
    """Optimizer steps at least, passing over small data again as needed: a night of
    quiet traffic is a handful of batches, too few to move a warm start."""
    max_steps: int = 3000
    """Optimizer steps at most, ending mid-pass on large data (0: no cap)."""
    warmup_steps: int = 20
    """Linear warm-up steps before the cosine decay, so the first steps of a fresh
    optimizer do not jolt the warm-started weights."""
    nproc: int = 1
    """DDP processes through torchrun (one per GPU), as `logad train --nproc`."""
    lr: float | None = None
    """Peak learning rate (default: a warm start's by the bundle's preset, base 5e-5,
    small 1e-3, tiny 2e-3; from scratch, the trainer's)."""
    tokens_per_batch: int | None = None
    """Padded tokens per batch per rank (default: the trainer's)."""
    cpu_threads: int | None = None
    """Intra-op CPU threads for training (default: the trainer's)."""
    seed: int | None = None
    """Training seed (default: the trainer's)."""
    train_config: Path | None = None
    """A `logad train` config file for every other training knob (retrain's own knobs
    above win over it)."""

    def __post_init__(self) -> None:
        for name in ("last_days", "epochs", "nproc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_sessions", "min_steps", "max_steps", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} exceeds max_steps {self.max_steps}")


@dataclass(frozen=True)
class GateSettings:
    """Promotion gate

    How the candidate is judged against the current model on the held-out day (every
    criterion must pass or be not comparable; docs/operations.md), and how many bundles the
    registry keeps after a promotion."""

    min_holdout_windows: int = 200
    """Normal windows the held-out day needs; fewer and nothing is trained (`skipped`)."""
    confidence: float = 0.95
    """False alerts: the candidate's rate passes up to the upper bound of a one-sided
    Wilson score interval at this confidence for the current model's rate on the same
    normal windows (0.5: no more than the current rate itself)."""
    margin: float = 0.0
    """False alerts: extra absolute slack on the rate, on top of that bound."""
    kept_fraction: float = 0.9
    """Alerted kept: of the windows the current model alerted on during the training and
    held-out days (plus those operators confirmed), the candidate must flag at least this
    fraction of the share the current model flags."""
    loss_tolerance: float = 0.05
    """Validation loss: the candidate's mean event NLL on the held-out day's normal windows
    may exceed the current model's by at most this fraction."""
    keep: int = 5
    """Bundles kept in the registry after a promotion (never the current or previous;
    refused candidates are not counted)."""
    keep_refused_days: float = 14.0
    """Days a refused candidate stays in the registry, to inspect or promote by hand
    (`logad promote VERSION --reason TEXT`); 0 removes it at once."""
    eval_tokens_per_batch: int = 16_384
    """Token budget per scoring batch when evaluating on the held-out day."""

    def __post_init__(self) -> None:
        if self.eval_tokens_per_batch < 1:
            raise ValueError("eval_tokens_per_batch must be >= 1")
        if self.keep < 2:
            raise ValueError("keep must be >= 2 (the current and the previous bundle)")
        if self.keep_refused_days < 0:
            raise ValueError(f"keep_refused_days must be >= 0, got {self.keep_refused_days}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if not 0 <= self.kept_fraction <= 1:
            raise ValueError(f"kept_fraction must be in [0, 1], got {self.kept_fraction}")
        if self.loss_tolerance < 0 or self.min_holdout_windows < 0:
            raise ValueError("loss_tolerance and min_holdout_windows must be >= 0")

    def rules(self) -> GateRules:
        return GateRules(self.confidence, self.margin, self.kept_fraction, self.loss_tolerance)


@dataclass(frozen=True)
class RetrainSettings:
    """Every knob of `logad retrain`, built from defaults < file < LOGAD_* env < flags."""

    archive_dir: Path | None = field(default=None, metadata=REQUIRED)
    """Directory of daily files written by `logad serve --archive-dir`."""
    registry: Path | None = field(default=None, metadata=REQUIRED)
    """Model registry directory (bundles plus the `current` pointer)."""
    device: str = "auto"
    """Training and evaluation device: auto, cpu, cuda, cuda:N."""
    candidate: CandidateSettings = field(default=CandidateSettings())
    gate: GateSettings = field(default=GateSettings())
    signing: BundleKeySettings = field(default=BundleKeySettings())
    window_filter: WindowFilterSettings = field(default=WindowFilterSettings())

    def __post_init__(self) -> None:
        if self.archive_dir is None:
            raise ConfigError("no archive: pass --archive-dir DIR (or set LOGAD_ARCHIVE_DIR)")
        if self.registry is None:
            raise ConfigError("no registry: pass --registry DIR (or set LOGAD_REGISTRY)")


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


_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ArchiveWindow:
    events: tuple[str, ...]
    ended: bool
    pattern: tuple[str, ...] | None = None
    """The alert pattern the archive recorded (alerted windows only)."""
    gaps_ms: tuple[int, ...] | None = None
    """The window's gaps (the line's, its first 0), for a time-aware candidate."""

    def recurs(self, recurring: frozenset[str]) -> bool:
        """Whether it alerted on recurring events only: a new normal, not an incident."""
        return recurs(self.pattern, recurring)


def _windows(s: Session) -> Iterator[ArchiveWindow]:
    """A line's windows, cut as the trainer and stream cut them (only the last ends the
    session, if the line did)."""
    cuts = split_points(len(s.events), MAX_EVENTS)
    for i, (a, b) in enumerate(cuts):
        gaps = None if s.gaps_ms is None else (0, *s.gaps_ms[a + 1 : b])
        yield ArchiveWindow(s.events[a:b], s.ended and i == len(cuts) - 1, s.pattern, gaps)


@dataclass(frozen=True)
class DayScan:
    count: DayCount
    watched: list[ArchiveWindow]
    """Windows alerted on or confirmed anomalous, less those acknowledged normal."""
    alerted: list[AlertedWindow] = field(default_factory=list)
    """The alerted windows with a pattern, for `recurring_from`."""


def scan_day(day: DayFile, feedback: Sequence[Feedback]) -> DayScan:
    """Count a complete day's sessions and normal windows, and collect its watched windows."""
    assert day.day is not None
    ids: set[str] = set()
    windows = normal = labelled = unlabelled_normal = 0
    kept: list[ArchiveWindow] = []
    alerted: list[AlertedWindow] = []
    for s in read_sessions(day.path, strict=False):
        ids.add(s.session_id)
        verdict = verdict_of(s.session_id, (s.start_ts, s.end_ts), feedback) if feedback else None
        for w in _windows(s):
            windows += 1
            labelled += s.label is not None
            normal += s.label == 0
            unlabelled_normal += not s.alerted
            if is_watched(s.alerted, verdict):
                kept.append(w)
            t = s.end_ts if s.end_ts is not None else s.start_ts
            if s.alerted and s.pattern and t is not None:
                alerted.append(AlertedWindow(t, s.pattern, verdict == "anomalous"))
    count = DayCount(
        day.day, day.path, len(ids), windows, normal if labelled else unlabelled_normal
    )
    return DayScan(count, kept, alerted)


def recurring_in(scans: Sequence[DayScan], s: WindowFilterSettings) -> frozenset[str]:
    """The events the days' alerts recur on (trainer/window_filter.py), or none when the
    rule is off."""
    if not s.adopt_recurring:
        return frozenset()
    if s.adopt_events:
        return frozenset(s.adopt_events)
    per_day = {(x.count.day - _EPOCH).days: x.count.windows for x in scans}
    return recurring_from((a for x in scans for a in x.alerted), per_day, s)


def scan_days(
    found: Sequence[DayFile], last_days: int, min_sessions: int, feedback: Sequence[Feedback]
) -> list[DayScan]:
    """Scan complete days newest first, until `last_days` + 1 of them count (older ones
    are not read)."""
    scans: list[DayScan] = []
    for day in sorted(found, key=lambda f: f.day or date.min, reverse=True):
        scans.append(scan_day(day, feedback))
        if sum(x.count.sessions >= min_sessions for x in scans) > last_days:
            break
    return scans


@dataclass(frozen=True)
class HeldOut:
    sequences: list[tuple[str, ...]]
    labels: list[int | None]
    alerted: list[bool | None]
    ended: list[bool] = field(default_factory=list)
    watched: list[ArchiveWindow] = field(default_factory=list)
    """Windows of the training and held-out days the candidate must still flag."""
    gaps: list[tuple[int, ...] | None] = field(default_factory=list)
    """Per window, its gaps (None: the line had none); a time-aware candidate sees them."""
    confirmed: list[bool] = field(default_factory=list)
    """Per window, whether an operator confirmed its session anomalous."""


def read_held_out(
    path: Path,
    watched: Sequence[ArchiveWindow] = (),
    recurring: frozenset[str] = frozenset(),
    feedback: Sequence[Feedback] = (),
) -> HeldOut:
    """The held-out day's windows (long sessions cut as the trainer and stream cut them).
    A window that alerted on `recurring` events only counts as not alerted: the new normal
    a candidate should learn. Windows of sessions operators confirmed anomalous are marked."""
    held = HeldOut([], [], [], [], list(watched), [], [])
    for s in read_sessions(path, strict=False):
        verdict = verdict_of(s.session_id, (s.start_ts, s.end_ts), feedback) if feedback else None
        for w in _windows(s):
            held.confirmed.append(verdict == "anomalous")
            held.sequences.append(w.events)
            held.labels.append(s.label)
            held.alerted.append(s.alerted and not w.recurs(recurring))
            held.ended.append(w.ended)
            held.gaps.append(w.gaps_ms)
    if not held.sequences:
        raise DataError(f"the held-out day {path} holds no windows")
    return held


def _nll(result: WindowResult) -> tuple[float, int]:
    """A window's summed event NLL and event count, leaving out events a count ceiling
    scored (a rule, not the model's prediction)."""
    nll = np.asarray(result.nll, dtype=np.float64)
    use = ~np.isnan(nll)
    use[list(result.past_ceiling)] = False
    return float(nll[use].sum()), int(use.sum())


def evaluate_bundle(
    bundle: Path, held: HeldOut, s: RetrainSettings, key: Secret | None = None
) -> Figures:
    from trainer.scoring.scorer import WindowScorer

    budget = max(s.gate.eval_tokens_per_batch, 512)
    # Known mixes explained too: each window then has its events' NLLs, for the loss.
    scorer = WindowScorer.from_bundle(
        bundle, s.device, max_batch_tokens=budget, bundle_key=key, explain_known_mixes=True
    )
    ended = held.ended or [True] * len(held.sequences)
    gaps = held.gaps or None
    results = scorer.score_events(held.sequences, ended, gaps)
    watched = scorer.score_events(
        [w.events for w in held.watched],
        [w.ended for w in held.watched],
        [w.gaps_ms for w in held.watched],
    )
    return figures(
        scorer.model_version,
        scorer.threshold,
        [r.score for r in results],
        held.labels,
        held.alerted,
        nll=[_nll(r) for r in results],
        watched_scores=[r.score for r in watched],
        confirmed=held.confirmed,
    )


def warm_lr(s: RetrainSettings, preset: str, warm: bool) -> float | None:
    """The candidate's peak learning rate: the one given, else a warm start's by preset,
    else None (from scratch: the trainer's)."""
    if s.candidate.lr is not None or not warm:
        return s.candidate.lr
    return WARM_LR.get(preset)


def train_flags(s: RetrainSettings, run_dir: Path, init_from: Path | None = None) -> dict[str, Any]:
    """The candidate's `logad train` settings that retrain gives (None: not given, so
    train_config, the LOGAD_* environment or the trainer's default stands). A warm start
    keeps its bundle's shape, so the preset given is the bundle's."""
    c = s.candidate
    preset: str = c.preset
    if init_from is not None:
        manifest = BundleManifest.from_json((init_from / MANIFEST).read_bytes())
        preset = manifest.preset or preset
    return {
        "run_dir": run_dir,
        "complete_only": True,
        **asdict(s.window_filter),
        "preset": preset,
        "epochs": c.epochs,
        "min_steps": c.min_steps,
        "max_steps": c.max_steps,
        "warmup_steps": c.warmup_steps,
        "device": s.device,
        "lr": warm_lr(s, preset, init_from is not None),
        "tokens_per_batch": c.tokens_per_batch,
        "cpu_threads": c.cpu_threads,
        "seed": c.seed,
        "bundle_key": s.signing.bundle_key,
    }


def train_argv(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> list[str]:
    """The `logad train` arguments for the candidate, as its torchrun workers get them.
    The training days are named file by file: a day too small to count may lie between."""
    argv = ["--data", *map(str, plan.train_files), "--out", str(out)]
    for name, v in train_flags(s, out.with_name("run"), init_from).items():
        # A secret never goes on a command line: the ranks read LOGAD_BUNDLE_KEY when it
        # is set, else the candidate is signed when it joins the registry.
        if v is None or isinstance(v, Secret) or v == ():
            continue
        text = str(v).lower() if isinstance(v, bool) else str(v)
        if isinstance(v, tuple):
            text = ",".join(map(str, v))
        argv += ["--" + name.replace("_", "-"), text]
    if s.candidate.train_config is not None:
        argv += ["--config", str(s.candidate.train_config)]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    return argv


def _train_candidate(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
    """Train the candidate bundle into `out`, in this process or through torchrun."""
    from trainer.settings import TrainSettings

    nproc = s.candidate.nproc
    flags = train_flags(s, out.with_name("run"), init_from)
    settings = build_settings(TrainSettings, config_file=s.candidate.train_config, flags=flags)
    check_processes(nproc, settings)
    if launches_workers(nproc):
        rc = launch_workers(nproc, train_argv(s, plan, out, init_from))
        if rc != 0:
            raise DataError(f"training the candidate failed (exit {rc})")
        return
    from trainer.dataset import DataSelection
    from trainer.train import TrainRequest

    train_here(settings, TrainRequest(DataSelection(plan.train_files), out, init_from))


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    record_path: Path
    record: dict[str, Any]


def _day_record(c: DayCount, minimums: Minimums) -> dict[str, Any]:
    return {
        "day": c.day.isoformat(),
        "sessions": c.sessions,
        "windows": c.windows,
        "normal_windows": c.normal_windows,
        "counts": c.sessions >= minimums.sessions,
    }


def _skip(
    s: RetrainSettings, now: datetime, skip: Skip, scans: Sequence[DayScan], minimums: Minimums
) -> Outcome:
    assert s.registry is not None
    registry = s.registry
    record = {
        "time": now.isoformat(timespec="seconds"),
        "action": "skipped",
        "by_hand": False,
        "promoted": False,
        "reason": skip.reason,
        "days": [_day_record(x.count, minimums) for x in sorted(scans, key=lambda x: x.count.day)],
        "min_sessions": minimums.sessions,
        "min_holdout_windows": minimums.holdout_windows,
        "current_after": read_pointer(registry).version if is_registry(registry) else None,
    }
    path = write_decision(registry, now, record)
    log.warning("retrain_skipped", reason=skip.reason, record=str(path))
    return Outcome(Decision(False, skip.reason), path, record)


def _training(candidate: Path, s: RetrainSettings, init_from: Path | None) -> dict[str, Any]:
    """The recipe the candidate was trained with and what it came to."""
    metrics = BundleManifest.from_json((candidate / MANIFEST).read_bytes()).metrics
    c = s.candidate
    return {
        "steps": metrics.get("steps"),
        "train_windows": metrics.get("train_windows"),
        "epochs": c.epochs,
        "min_steps": c.min_steps,
        "max_steps": c.max_steps,
        "warmup_steps": c.warmup_steps,
        "lr": train_flags(s, Path(), init_from)["lr"],
    }


def run_retrain(s: RetrainSettings, now: datetime) -> Outcome:
    assert s.archive_dir is not None and s.registry is not None
    registry = s.registry
    feedback = read_feedback(s.window_filter.feedback) if s.window_filter.feedback else []
    minimums = Minimums(s.candidate.min_sessions, s.gate.min_holdout_windows)
    with registry_lock(registry):
        for stale in registry.glob(TMP_PREFIX + "*"):
            log.warning("retrain_stale_temp_removed", path=str(stale))
            shutil.rmtree(stale, ignore_errors=True)
        # The file itself, not a name rebuilt from its day: a day may be a `.json` array.
        found = [f for f in find_daily_files([s.archive_dir], complete_only=True) if f.day]
        scans = scan_days(found, s.candidate.last_days, minimums.sessions, feedback)
        plan = plan_days([x.count for x in scans], s.candidate.last_days, minimums)
        if isinstance(plan, Skip):
            return _skip(s, now, plan, scans, minimums)
        used = {*plan.train_days, plan.holdout}
        used_scans = [x for x in scans if x.count.day in used]
        # Decided over the held-out day too: a release seen on two days is adopted a night
        # sooner. Its windows are no longer watched, and count as normal on the held-out day.
        recurring = recurring_in(used_scans, s.window_filter)
        if recurring:
            s = replace(
                s, window_filter=replace(s.window_filter, adopt_events=tuple(sorted(recurring)))
            )
        watched = [w for x in used_scans for w in x.watched if not w.recurs(recurring)]
        current_dir = registry / read_pointer(registry).version if is_registry(registry) else None
        key = s.signing.bundle_key
        if current_dir is not None and key is not None:
            verify_bundle(current_dir, key)  # before hours of training, not after
        init_from = None if s.candidate.from_scratch or current_dir is None else current_dir
        log.info(
            "retrain_plan",
            train_days=[d.isoformat() for d in plan.train_days],
            holdout=plan.holdout.isoformat(),
            left_out=[d.isoformat() for d in plan.left_out],
            watched_windows=len(watched),
            recurring_events=sorted(recurring),
            warm_start=str(init_from),
        )
        tmp = registry / f"{TMP_PREFIX}{now.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        tmp.mkdir()
        try:
            candidate_dir = tmp / "candidate"
            _train_candidate(s, plan, candidate_dir, init_from)
            excluded = _excluded(candidate_dir)
            training = _training(candidate_dir, s, init_from)
            held = read_held_out(plan.holdout_file, watched, recurring, feedback)
            # The candidate is this run's own, made under its lock: signed on promotion.
            cand = evaluate_bundle(candidate_dir, held, s)
            cur = evaluate_bundle(current_dir, held, s, key) if current_dir is not None else None
            decision = decide(cand, cur, s.gate.rules())
            reason = decision.reason
            if decision.promote:
                promote_bundle(
                    candidate_dir, registry, move=True, key=key, by_hand=False, reason=reason
                )
            else:  # kept a while, to inspect or promote by hand
                add_to_registry(candidate_dir, registry, move=True, key=key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        labelled = sum(lb is not None for lb in held.labels)
        record = {
            "time": now.isoformat(timespec="seconds"),
            "action": "promoted" if decision.promote else "refused",
            "by_hand": False,
            "promoted": decision.promote,
            "reason": decision.reason,
            "criteria": [asdict(c) for c in decision.criteria],
            "labelled": labelled > 0,
            "labelled_windows": labelled,
            "candidate": asdict(cand),
            "current": asdict(cur) if cur is not None else None,
            "train_days": [d.isoformat() for d in plan.train_days],
            "excluded": excluded,
            "recurring_events": sorted(recurring),
            "holdout_day": plan.holdout.isoformat(),
            "left_out_days": [d.isoformat() for d in plan.left_out],
            "days": [_day_record(x.count, minimums) for x in scans if x.count.day in used],
            "training": training,
            "warm_start_from": init_from.name if init_from else None,
            "gate": asdict(s.gate.rules()),
            "margin": s.gate.margin,
            "feedback": str(s.window_filter.feedback) if s.window_filter.feedback else None,
            "current_after": read_pointer(registry).version if is_registry(registry) else None,
            "pruned": _prune(registry, s.gate, now, () if decision.promote else (cand.version,)),
        }
        path = write_decision(registry, now, record)
        log.info(
            "retrain_decision",
            promoted=decision.promote,
            reason=decision.reason,
            candidate=cand.version,
            steps=training["steps"],
            record=str(path),
        )
        return Outcome(decision, path, record)


def _excluded(bundle: Path) -> dict[str, Any] | None:
    """The windows the candidate's training left out, per reason (trainer/window_filter.py):
    the trainer records them in the bundle's manifest, whichever process trained it."""
    excluded = BundleManifest.from_json((bundle / MANIFEST).read_bytes()).metrics.get("excluded")
    return excluded if isinstance(excluded, dict) else None


def _prune(
    registry: Path, gate: GateSettings, now: datetime, refused_now: tuple[str, ...]
) -> list[str]:
    """Refused candidates past their days, then the oldest bundles beyond `keep` (not
    counting refused ones, this run's included)."""
    removed = prune_refused(registry, now, gate.keep_refused_days)
    if gate.keep_refused_days == 0:
        for version in refused_now:
            shutil.rmtree(registry / version, ignore_errors=True)
            removed.append(version)
        refused_now = ()
    aside = {*refused_versions(registry), *refused_now}
    return removed + prune(registry, gate.keep, aside=aside)
