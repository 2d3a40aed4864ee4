"""`logad retrain`: one nightly step of the closed loop, with a promotion gate.

    lock the registry -> pick the last N complete days, the newest held out
    -> train a candidate (warm-started from the current bundle, or from scratch)
       in a hidden temporary directory inside the registry
    -> score the held-out day with the candidate and the current bundle
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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from schemas.bundle import MANIFEST, BundleManifest, verify_bundle
from schemas.daily_files import find_daily_files, read_sessions
from schemas.errors import ConfigError, DataError
from schemas.registry import is_registry, prune, read_pointer
from schemas.registry_history import write_decision
from schemas.runtime.secret import Secret
from schemas.runtime.settings import REQUIRED, build_settings
from schemas.signing import BundleKeySettings
from schemas.windows import MAX_EVENTS, split_points
from stream.jobs.registry import add_to_registry, promote_bundle, prune_refused, refused_versions
from stream.jobs.retrain_gate import DayPlan, Decision, Figures, decide, figures, plan_days
from stream.jobs.train import check_processes, launch_workers, launches_workers, train_here
from trainer.window_filter import WindowFilterSettings

log = structlog.get_logger(__name__)

LOCK_FILE = ".retrain.lock"
TMP_PREFIX = ".retrain-"


@dataclass(frozen=True)
class CandidateSettings:
    """Candidate training

    How the candidate is trained: as `logad train` would, warm-started from the current
    bundle unless from_scratch; the trainer's own defaults and a train_config file give
    every other knob."""

    last_days: int = 7
    """Train on this many complete days before the held-out (newest complete) day."""
    from_scratch: bool = False
    """Train a fresh model instead of warm-starting from the current bundle."""
    preset: Literal["base", "small", "tiny"] = "base"
    """Model shape when training from scratch (a warm start keeps, and logs, the bundle's)."""
    epochs: int = 1
    """Passes over the training windows."""
    nproc: int = 1
    """DDP processes through torchrun (one per GPU), as `logad train --nproc`."""
    lr: float | None = None
    """Peak learning rate (default: the trainer's)."""
    tokens_per_batch: int | None = None
    """Padded tokens per batch per rank (default: the trainer's)."""
    cpu_threads: int | None = None
    """Intra-op CPU threads for training (default: the trainer's)."""
    seed: int | None = None
    """Training seed (default: the trainer's)."""
    train_config: Path | None = None
    """A `logad train` config file for every other training knob."""

    def __post_init__(self) -> None:
        for name in ("last_days", "epochs", "nproc"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class GateSettings:
    """Promotion gate

    How the candidate is judged against the current model on the held-out day, and how
    many bundles the registry keeps after a promotion."""

    margin: float = 0.0
    """Promote when candidate false-alert rate <= current rate + margin (absolute)."""
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


def evaluate_bundle(
    bundle: Path, held: HeldOut, s: RetrainSettings, key: Secret | None = None
) -> Figures:
    from trainer.scoring.scorer import WindowScorer

    budget = max(s.gate.eval_tokens_per_batch, 512)
    scorer = WindowScorer.from_bundle(bundle, s.device, max_batch_tokens=budget, bundle_key=key)
    scores = [r.score for r in scorer.score_events(held.sequences)]
    return figures(scorer.model_version, scorer.threshold, scores, held.labels, held.alerted)


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
        "device": s.device,
        "lr": c.lr,
        "tokens_per_batch": c.tokens_per_batch,
        "cpu_threads": c.cpu_threads,
        "seed": c.seed,
        "bundle_key": s.signing.bundle_key,
    }


def train_argv(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> list[str]:
    """The `logad train` arguments for the candidate, as its torchrun workers get them."""
    assert s.archive_dir is not None
    argv = ["--data", str(s.archive_dir), "--out", str(out)]
    argv += ["--from-date", plan.train_days[0].isoformat()]
    argv += ["--to-date", plan.train_days[-1].isoformat()]
    for name, v in train_flags(s, out.with_name("run"), init_from).items():
        # A secret never goes on a command line: the ranks read LOGAD_BUNDLE_KEY when it
        # is set, else the candidate is signed when it joins the registry.
        if v is not None and not isinstance(v, Secret):
            text = str(v).lower() if isinstance(v, bool) else str(v)
            argv += ["--" + name.replace("_", "-"), text]
    if s.candidate.train_config is not None:
        argv += ["--config", str(s.candidate.train_config)]
    if init_from is not None:
        argv += ["--init-from", str(init_from)]
    return argv


def _train_candidate(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
    """Train the candidate bundle into `out`, in this process or through torchrun."""
    from trainer.settings import TrainSettings

    assert s.archive_dir is not None
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

    days = DataSelection((s.archive_dir,), plan.train_days[0], plan.train_days[-1], None)
    train_here(settings, TrainRequest(days, out, init_from))


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
        plan = plan_days(list(complete), s.candidate.last_days)
        current_dir = registry / read_pointer(registry).version if is_registry(registry) else None
        key = s.signing.bundle_key
        if current_dir is not None and key is not None:
            verify_bundle(current_dir, key)  # before hours of training, not after
        init_from = None if s.candidate.from_scratch or current_dir is None else current_dir
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
            _train_candidate(s, plan, candidate_dir, init_from)
            excluded = _excluded(candidate_dir)
            held = read_held_out(complete[plan.holdout])
            # The candidate is this run's own, made under its lock: signed on promotion.
            cand = evaluate_bundle(candidate_dir, held, s)
            cur = evaluate_bundle(current_dir, held, s, key) if current_dir is not None else None
            decision = decide(cand, cur, s.gate.margin)
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
            "holdout_day": plan.holdout.isoformat(),
            "warm_start_from": init_from.name if init_from else None,
            "margin": s.gate.margin,
            "current_after": read_pointer(registry).version if is_registry(registry) else None,
            "pruned": _prune(registry, s.gate, now, () if decision.promote else (cand.version,)),
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
