"""The registry an operator works with: refused candidates kept and promoted by hand with a
reason, rollback back through the promotion history, every criterion in the decision
record, and `logad models` showing the decisions (fake bundles, no training)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from schemas.bundle import verify_bundle
from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.registry import read_pointer, rollback_target
from schemas.registry_history import Move, read_decisions, read_moves, serving_stack
from schemas.sessions import Session
from stream.cli import main
from stream.jobs.registry import promote_bundle, prune_refused
from stream.jobs.retrain import CandidateSettings, GateSettings, RetrainSettings, run_retrain
from stream.jobs.retrain_gate import DayPlan, Figures, figures
from tests.unit.test_promote_and_watch import fake_bundle

T0 = datetime(2026, 1, 3, tzinfo=UTC)
SMALL_DAYS = CandidateSettings(min_sessions=1)
"""A one-session day counts (nothing real is trained here)."""


def _registry(tmp_path: Path, *versions: str) -> Path:
    reg = tmp_path / "registry"
    for v in versions:
        promote_bundle(fake_bundle(tmp_path / v, v, v.encode()), reg)
    return reg


def test_plain_rollbacks_walk_back_and_never_return_to_the_one_left(tmp_path: Path) -> None:
    reg = _registry(tmp_path, "v1", "v2", "v3")
    assert main(["rollback", "--registry", str(reg), "--reason", "v3 floods alerts"]) == 0
    assert read_pointer(reg).version == "v2"
    assert main(["rollback", "--registry", str(reg)]) == 0
    assert read_pointer(reg).version == "v1"  # further back, not v3 again
    assert main(["rollback", "--registry", str(reg)]) == 2  # nothing older
    assert read_pointer(reg).version == "v1"
    assert main(["rollback", "--registry", str(reg), "--to", "v3"]) == 0
    assert read_pointer(reg).version == "v3"
    assert rollback_target(reg) == "v1"  # v2 was rolled back from on the way
    records = [r for r in read_decisions(reg) if r["action"] == "rolled_back"]
    assert [(r["from"], r["version"], r["by_hand"]) for r in records] == [
        ("v3", "v2", True),
        ("v2", "v1", True),
        ("v1", "v3", True),
    ]
    assert records[0]["reason"] == "v3 floods alerts"
    assert main(["rollback", "--registry", str(reg), "--to", "v9"]) == 2


def test_serving_stack_of_a_registry_older_than_its_history() -> None:
    assert serving_stack([], "v2", "v1") == ["v1", "v2"]
    move = Move("t", "promoted", "v3", "v2", True, "")
    assert serving_stack([move], "v3", "v2") == ["v2", "v3"]
    back = Move("t", "rolled_back", "v2", "v3", True, "")
    assert serving_stack([move, back], "v2", "v3") == ["v2"]


def _archive(tmp_path: Path) -> Path:
    archive = tmp_path / "archive"
    archive.mkdir()
    for d in (1, 2):
        path = archive / daily_file_name(date(2026, 1, d))
        write_sessions(path, [Session(f"s{d}", ("a", "b"))])  # no labels
        path.with_name(path.name + DONE_SUFFIX).touch()
    return archive


def _refusing_retrain(monkeypatch: pytest.MonkeyPatch, version: str, far: float = 0.5) -> None:
    def train(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
        fake_bundle(out, version, version.encode())

    def evaluate(bundle: Path, held: object, s: RetrainSettings, k: object = None) -> Figures:
        v = verify_bundle(bundle).version
        return figures(v, 1.0, [2.0 if v == version else 0.0], [None], [far == 0.0])

    monkeypatch.setattr("stream.jobs.retrain._train_candidate", train)
    monkeypatch.setattr("stream.jobs.retrain.evaluate_bundle", evaluate)


def _rows(listing: str) -> dict[str, str]:
    """`logad models` lines by version (the mark column may be blank)."""
    rows = {}
    for line in listing.splitlines()[1:]:
        words = line.split()
        rows[words[1] if words[0] in ("*", "-") else words[0]] = line
    return rows


def test_a_refused_candidate_is_kept_listed_and_promoted_by_hand_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = _registry(tmp_path, "v1")
    _refusing_retrain(monkeypatch, "v2")
    gate = GateSettings(min_holdout_windows=1)
    s = RetrainSettings(
        archive_dir=_archive(tmp_path), registry=reg, candidate=SMALL_DAYS, gate=gate
    )
    outcome = run_retrain(s, T0)
    rec = outcome.record
    assert rec["action"] == "refused" and rec["by_hand"] is False
    assert rec["labelled"] is False and rec["labelled_windows"] == 0
    assert [(c["name"], c["passed"]) for c in rec["criteria"]] == [
        ("false_alert_rate", False),
        ("alerted_kept", None),
        ("val_loss", None),
        ("f1", None),
    ]
    # 1 false alert in 1 window against 0 in 1: beyond even the 95% bound for one window.
    rate = rec["criteria"][0]
    assert (rate["value"], rate["current"]) == (1.0, 0.0) and 0.7 < rate["limit"] < 0.75
    assert read_pointer(reg).version == "v1" and (reg / "v2" / "manifest.json").is_file()
    capsys.readouterr()
    assert main(["models", "--registry", str(reg)]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["v1"].startswith("*") and "refused" in rows["v2"]
    assert "false-alert rate" in rows["v2"]
    # The gate's refusal needs a reason to override; the record says it was by hand.
    assert main(["promote", "v2", "--registry", str(reg)]) == 2
    assert "--reason" in capsys.readouterr().err
    assert main(["promote", str(reg / "v2"), "--registry", str(reg)]) == 2  # by its path too
    assert main(["promote", "v2", "--registry", str(reg), "--reason", "known spike"]) == 0
    assert read_pointer(reg).version == "v2"
    last = read_decisions(reg)[-1]
    assert (last["action"], last["by_hand"], last["version"]) == ("promoted", True, "v2")
    assert last["reason"] == "known spike" and last["overrides_refusal"] is True
    assert [m.version for m in read_moves(reg)] == ["v1", "v2"]
    main(["models", "--registry", str(reg)])
    rows = _rows(capsys.readouterr().out)
    assert rows["v2"].startswith("*") and "promoted-by-hand" in rows["v2"]
    assert "known spike" in rows["v2"]


def test_refused_candidates_go_after_their_days_unless_promoted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _registry(tmp_path, "v1")
    archive = _archive(tmp_path)
    gate = GateSettings(keep_refused_days=14, min_holdout_windows=1)
    s = RetrainSettings(archive_dir=archive, registry=reg, candidate=SMALL_DAYS, gate=gate)
    _refusing_retrain(monkeypatch, "v2")
    run_retrain(s, T0)
    _refusing_retrain(monkeypatch, "v3")
    run_retrain(s, T0 + timedelta(days=1))
    promote_bundle(reg / "v3", reg, reason="by hand")
    promote_bundle(reg / "v1", reg)
    assert prune_refused(reg, T0 + timedelta(days=13), 14) == []
    assert prune_refused(reg, T0 + timedelta(days=15), 14) == ["v2"]  # v3 served since
    assert not (reg / "v2").exists() and (reg / "v3").is_dir()


def test_keep_refused_days_zero_removes_the_candidate_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _registry(tmp_path, "v1")
    gate = GateSettings(keep_refused_days=0, min_holdout_windows=1)
    _refusing_retrain(monkeypatch, "v2")
    s = RetrainSettings(
        archive_dir=_archive(tmp_path), registry=reg, candidate=SMALL_DAYS, gate=gate
    )
    out = run_retrain(s, T0)
    assert out.record["pruned"] == ["v2"] and not (reg / "v2").exists()
    with pytest.raises(ValueError, match="keep_refused_days"):
        GateSettings(keep_refused_days=-1)
