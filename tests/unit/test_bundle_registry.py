from __future__ import annotations

from pathlib import Path

import pytest

from schemas import BundleError, Calibration
from schemas.bundle import (
    BUNDLE_FILES,
    CALIBRATION,
    WEIGHTS,
    new_version,
    verify_bundle,
    write_manifest,
)
from schemas.registry import list_bundles, promote, prune, read_pointer, resolve_model, rollback


def _bundle(d: Path, version: str | None = None) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        (d / name).write_bytes(b"{}")
    cal = Calibration({"p50": 1.0}, 2.0, 0.999, 10)
    (d / CALIBRATION).write_bytes(cal.to_json())
    v = version or new_version()
    write_manifest(d, v, "2026-01-01", "2026-01-02", preset="tiny")
    return v


def test_manifest_verifies_and_detects_tampering(tmp_path: Path) -> None:
    v = _bundle(tmp_path / "b")
    assert verify_bundle(tmp_path / "b").version == v
    (tmp_path / "b" / WEIGHTS).write_bytes(b"tampered")
    with pytest.raises(BundleError, match="sha256"):
        verify_bundle(tmp_path / "b")


def test_pickle_files_are_refused(tmp_path: Path) -> None:
    _bundle(tmp_path / "b")
    (tmp_path / "b" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="pickle"):
        verify_bundle(tmp_path / "b")


def test_versions_sort_by_time() -> None:
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert new_version(t) < new_version(t + timedelta(seconds=1))


def test_registry_promote_rollback_prune(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    versions = [f"v2026010{i}T000000Z-aaaaaa" for i in range(1, 5)]
    for v in versions:
        _bundle(reg / v, v)
    promote(reg, versions[0])
    promote(reg, versions[1])
    assert read_pointer(reg).version == versions[1]
    assert resolve_model(reg) == reg / versions[1]
    rollback(reg)
    assert read_pointer(reg).version == versions[0]
    promote(reg, versions[3])
    removed = prune(reg, keep=2)
    left = {m.version for m in list_bundles(reg)}
    assert versions[3] in left and versions[0] in left  # current and previous survive
    assert len(left) == 2 and set(removed) == {versions[1], versions[2]}


def test_calibration_round_trip() -> None:
    c = Calibration({"p50": 1.0, "p99.9": 3.0}, 3.0, 0.999, 100, {"kind": "full"})
    assert Calibration.from_json(c.to_json()) == c
    with pytest.raises(BundleError):
        Calibration.from_json(b'{"threshold": 1}')
