from __future__ import annotations

from pathlib import Path

import pytest

from schemas import BundleError, Calibration
from schemas.bundle import (
    BUNDLE_FILES,
    CALIBRATION,
    TEMPLATES,
    WEIGHTS,
    new_version,
    read_bundle_templates,
    verify_bundle,
    write_manifest,
)
from schemas.registry import list_bundles, promote, prune, read_pointer, resolve_model, rollback
from schemas.templates import TemplateEntry, TemplateSet, write_templates


def _bundle(d: Path, version: str | None = None, templates: TemplateSet | None = None) -> str:
    d.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_FILES:
        (d / name).write_bytes(b"{}")
    if templates is not None:
        write_templates(d / TEMPLATES, templates)
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


def _templates() -> TemplateSet:
    from trainer.mining import DEFAULT_PARAMS

    entry = TemplateEntry("T1", "Routing GET <*> to <*>", 3, "gw.log:1", ("5", "Routing"))
    return TemplateSet(DEFAULT_PARAMS, (entry,))


def test_templates_travel_in_the_manifest_and_are_verified(tmp_path: Path) -> None:
    b = tmp_path / "b"
    _bundle(b, templates=_templates())
    manifest = verify_bundle(b)
    assert TEMPLATES in manifest.files
    assert read_bundle_templates(b) == _templates()
    # Tampered: the hash check refuses it, in verification and when read for serving.
    text = (b / TEMPLATES).read_text().replace("Routing GET", "Routing PUT")
    (b / TEMPLATES).write_text(text)
    with pytest.raises(BundleError, match=r"templates\.json fails its sha256 check"):
        verify_bundle(b)
    with pytest.raises(BundleError, match=r"templates\.json fails its sha256 check"):
        read_bundle_templates(b)
    (b / TEMPLATES).unlink()
    with pytest.raises(BundleError, match=r"lacks templates\.json"):
        verify_bundle(b)


def test_a_bundle_without_templates_loads_and_refuses_one_slipped_in(tmp_path: Path) -> None:
    b = tmp_path / "b"
    _bundle(b)
    assert TEMPLATES not in verify_bundle(b).files
    assert read_bundle_templates(b) is None
    write_templates(b / TEMPLATES, _templates())  # not in the manifest: not the bundle's
    with pytest.raises(BundleError, match=r"templates\.json is not in its manifest"):
        verify_bundle(b)
    with pytest.raises(BundleError, match=r"templates\.json is not in its manifest"):
        read_bundle_templates(b)


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
