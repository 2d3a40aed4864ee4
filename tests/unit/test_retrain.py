"""The retrain gate as pure functions, the day plan, and the registry lock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from schemas.bundle import verify_bundle
from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.errors import BundleError, ConfigError
from schemas.registry import POINTER, read_pointer
from schemas.runtime.secret import Secret
from schemas.runtime.settings import build_settings
from schemas.sessions import Session
from schemas.signing import BundleKeySettings
from stream.jobs.registry import promote_bundle
from stream.jobs.retrain import (
    TMP_PREFIX,
    CandidateSettings,
    DayPlan,
    GateSettings,
    RetrainSettings,
    registry_lock,
    run_retrain,
    train_argv,
    train_flags,
)
from stream.jobs.retrain_gate import Figures, GateRules, decide, figures
from tests.unit.test_promote_and_watch import fake_bundle


def test_figures_with_labels() -> None:
    f = figures("v", 1.0, [0.5, 2.0, 3.0, 0.1, 1.5], [0, 0, 1, 1, 1], [None] * 5)
    assert f.labelled and f.normal_windows == 2 and f.false_alerts == 1
    assert f.false_alert_rate == 0.5
    assert f.precision == pytest.approx(2 / 3) and f.recall == pytest.approx(2 / 3)
    assert f.f1 == pytest.approx(2 / 3)


def test_figures_without_labels_leave_out_alerted_windows() -> None:
    f = figures("v", 1.0, [2.0, 2.0, 0.5, 0.5], [None] * 4, [True, False, False, False])
    assert not f.labelled and f.f1 is None
    assert (f.normal_windows, f.false_alerts) == (3, 1)
    assert f.false_alert_rate == pytest.approx(1 / 3)


def _fig(far: float, f1: float | None) -> Figures:
    return Figures("v", 1.0, 100, 100, int(far * 100), far, f1 is not None, None, None, f1)


STRICT = GateRules(confidence=0.5)
"""No tolerance for noise: the candidate's rate must not exceed the current one's."""


def test_decide() -> None:
    first = decide(_fig(0.5, None), None, STRICT)
    assert first.promote and "first candidate" in first.reason
    ok = decide(_fig(0.011, 0.9), _fig(0.010, 0.9), GateRules(confidence=0.5, margin=0.002))
    assert ok.promote and "F1" in ok.reason
    worse_far = decide(_fig(0.02, 0.95), _fig(0.01, 0.9), GateRules(confidence=0.5, margin=0.005))
    assert not worse_far.promote and "false-alert rate" in worse_far.reason
    worse_f1 = decide(_fig(0.01, 0.8), _fig(0.01, 0.9), STRICT)
    assert not worse_f1.promote and "F1 0.8000" in worse_f1.reason
    unlabelled = decide(_fig(0.01, None), _fig(0.01, None), STRICT)
    assert unlabelled.promote and "no labels" in unlabelled.reason


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    held = registry_lock(tmp_path)
    with held, pytest.raises(ConfigError, match="another logad retrain"), registry_lock(tmp_path):
        pass
    with registry_lock(tmp_path):  # released
        pass


def test_settings_need_archive_and_registry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no archive"):
        build_settings(RetrainSettings, flags={"registry": str(tmp_path)}, environ={})
    s = build_settings(
        RetrainSettings,
        flags={"archive_dir": "/a", "registry": "/r", "margin": "0.01", "min_sessions": "50"},
        environ={"LOGAD_LAST_DAYS": "3", "LOGAD_CONFIDENCE": "0.99"},
    )
    assert s.candidate.last_days == 3 and s.gate.margin == 0.01 and s.window_filter.exclude_alerted
    assert s.candidate.min_sessions == 50 and s.gate.rules() == GateRules(0.99, 0.01, 0.9, 0.05)
    for bad in ({"confidence": 1.0}, {"kept_fraction": 1.5}, {"loss_tolerance": -0.1}):
        with pytest.raises(ValueError):
            GateSettings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_steps 9 exceeds max_steps 3"):
        CandidateSettings(min_steps=9, max_steps=3)


def test_the_candidate_gets_the_same_train_settings_in_process_and_in_workers(
    tmp_path: Path,
) -> None:
    """Workers rebuild the settings from `logad train` arguments; this process builds them
    from the flags directly: both must come out the same."""
    from stream.cli.train import build_parser
    from trainer.settings import TrainSettings

    config = tmp_path / "train.toml"
    config.write_text("val_fraction = 0.2\nepochs = 9\nwarmup_steps = 7\n")
    s = build_settings(
        RetrainSettings,
        flags={
            "archive_dir": "/a",
            "registry": "/r",
            "exclude_alerted": "false",
            "lr": "0.001",
            "device": "cpu",
            "train_config": str(config),
        },
        environ={},
    )
    out = tmp_path / "candidate"
    files = (Path("/a/d1.jsonl"), Path("/a/d2.jsonl"))
    plan = DayPlan((date(2026, 1, 1), date(2026, 1, 2)), date(2026, 1, 3), files, Path("/a/d3"))
    direct = build_settings(
        TrainSettings, config_file=config, flags=train_flags(s, out.with_name("run")), environ={}
    )
    args = build_parser().parse_args(["train", *train_argv(s, plan, out, None)])
    assert args.build(args) == direct
    alerted = direct.window_filter.exclude_alerted
    assert (alerted, direct.lr, direct.epochs, direct.val_fraction) == (
        False,
        0.001,
        2,  # retrain's own epochs win over the config file's
        0.2,
    )
    # The recipe's knobs reach the trainer as flags (and win over the config file too).
    assert (direct.min_steps, direct.max_steps, direct.warmup_steps) == (200, 3000, 20)
    assert direct.complete_only and direct.run_dir == tmp_path / "run"
    # The days that count, file by file (a stub between them is not trained on).
    assert (args.from_date, args.to_date, args.data) == (None, None, list(files))


SMALL_DAYS = CandidateSettings(min_sessions=1)
SMALL_HOLDOUT = GateSettings(min_holdout_windows=1)
"""Minimums a one-session day meets (these tests train nothing real)."""


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file but the lock file (it stays; the lock is the flock on it)."""
    files = (p for p in root.rglob("*") if p.is_file() and p.name != ".retrain.lock")
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_a_run_that_crashes_while_training_leaves_the_registry_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, registry = tmp_path / "archive", tmp_path / "registry"
    archive.mkdir()
    for d in (1, 2):
        path = archive / daily_file_name(date(2026, 1, d))
        write_sessions(path, [Session(f"s{d}", ("a", "b"))])
        path.with_name(path.name + DONE_SUFFIX).touch()
    (registry / "v1").mkdir(parents=True)
    (registry / "v1" / "weights.bin").write_bytes(b"v1")
    (registry / POINTER).write_bytes(b'{"version": "v1", "previous": null, "updated_at": ""}')
    before = _snapshot(registry)

    def crash(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half-written")
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr("stream.jobs.retrain._train_candidate", crash)
    s = RetrainSettings(
        archive_dir=archive, registry=registry, candidate=SMALL_DAYS, gate=SMALL_HOLDOUT
    )
    with pytest.raises(RuntimeError, match="killed"):
        run_retrain(s, datetime(2026, 1, 3, tzinfo=UTC))
    assert _snapshot(registry) == before  # no candidate, no decision, same pointer
    assert read_pointer(registry).version == "v1"
    assert not list(registry.glob(TMP_PREFIX + "*"))
    with registry_lock(registry):  # the lock went with the run
        pass


def _archive_and_registry(tmp_path: Path, key: Secret | None) -> tuple[Path, Path]:
    archive, registry = tmp_path / "archive", tmp_path / "registry"
    archive.mkdir()
    for d in (1, 2):
        path = archive / daily_file_name(date(2026, 1, d))
        write_sessions(path, [Session(f"s{d}", ("a", "b"))])
        path.with_name(path.name + DONE_SUFFIX).touch()
    promote_bundle(fake_bundle(tmp_path / "v1", "v1"), registry, key=key)
    return archive, registry


def test_with_a_bundle_key_an_unsigned_current_stops_the_run_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, registry = _archive_and_registry(tmp_path, key=None)
    trained: list[Path] = []
    monkeypatch.setattr("stream.jobs.retrain._train_candidate", lambda *a: trained.append(a[2]))
    s = RetrainSettings(
        archive_dir=archive,
        registry=registry,
        signing=BundleKeySettings(Secret("k" * 20)),
        candidate=SMALL_DAYS,
        gate=SMALL_HOLDOUT,
    )
    with pytest.raises(BundleError, match="bundle v1 is not signed"):
        run_retrain(s, datetime(2026, 1, 3, tzinfo=UTC))
    assert trained == []


def test_with_a_bundle_key_the_promoted_candidate_is_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Secret("k" * 20)
    archive, registry = _archive_and_registry(tmp_path, key=key)

    def train(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
        fake_bundle(out, "v2", b"candidate")  # what the trainer's ranks leave, unsigned

    def evaluate(bundle: Path, held: object, s: RetrainSettings, k: object = None) -> Figures:
        version = verify_bundle(bundle, k).version  # type: ignore[arg-type]
        return figures(version, 1.0, [0.0], [0], [False])

    monkeypatch.setattr("stream.jobs.retrain._train_candidate", train)
    monkeypatch.setattr("stream.jobs.retrain.evaluate_bundle", evaluate)
    s = RetrainSettings(
        archive_dir=archive,
        registry=registry,
        signing=BundleKeySettings(key),
        candidate=SMALL_DAYS,
        gate=SMALL_HOLDOUT,
    )
    outcome = run_retrain(s, datetime(2026, 1, 3, tzinfo=UTC))
    assert outcome.decision.promote and read_pointer(registry).version == "v2"
    assert verify_bundle(registry / "v2", key).version == "v2"


def test_a_warm_start_gives_train_its_bundles_preset_not_the_default(tmp_path: Path) -> None:
    from schemas.bundle import BUNDLE_FILES, write_manifest

    warm = tmp_path / "v1"
    warm.mkdir()
    for name in BUNDLE_FILES:
        (warm / name).write_bytes(name.encode())
    write_manifest(warm, "v1", None, None, preset="tiny")
    s = RetrainSettings(archive_dir=tmp_path, registry=tmp_path)
    assert train_flags(s, tmp_path / "run", warm)["preset"] == "tiny"  # no "ignored" warning
    assert train_flags(s, tmp_path / "run")["preset"] == "base"  # from scratch: the setting
    # A warm start's lr by the bundle's preset; from scratch the trainer's; given, as given.
    assert train_flags(s, tmp_path / "run", warm)["lr"] == 2e-3
    assert train_flags(s, tmp_path / "run")["lr"] is None
    given = RetrainSettings(
        archive_dir=tmp_path, registry=tmp_path, candidate=CandidateSettings(lr=1e-5)
    )
    assert train_flags(given, tmp_path / "run", warm)["lr"] == 1e-5


def test_labels_without_an_anomaly_give_no_f1_to_compare() -> None:
    f = figures("v", 1.0, [0.5, 2.0], [0, 0], [None, None])
    assert f.labelled and f.f1 is None and f.false_alert_rate == 0.5
    d = decide(f, f, STRICT)
    assert d.promote and "F1 not compared: no anomalous window labelled" in d.reason
    assert [c.passed for c in d.criteria] == [True, None, None, None]
