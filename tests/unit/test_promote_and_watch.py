"""`logad promote` and the registry watcher behind hot reload, with fake bundles and loaders."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from schemas.bundle import BUNDLE_FILES, write_manifest
from schemas.errors import BundleError
from schemas.registry import read_pointer
from schemas.scores import Score
from schemas.windows import Window
from stream.cli import main
from stream.jobs.registry import add_to_registry
from stream.serve.metrics import ServeMetrics
from stream.serve.reload import ModelWatcher
from stream.serve.worker import Scorer


def fake_bundle(path: Path, version: str, payload: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    for name in BUNDLE_FILES:
        (path / name).write_bytes(payload + name.encode())
    write_manifest(path, version, None, None)
    return path


class Loaded:
    def __init__(self, version: str) -> None:
        self.model_version = version

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        return []


def test_promote_copies_into_the_registry_and_flips_the_pointer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "registry"
    a = fake_bundle(tmp_path / "a", "v1")
    b = fake_bundle(tmp_path / "b", "v2", b"other")
    assert main(["promote", str(a), "--registry", str(reg)]) == 0
    assert read_pointer(reg).version == "v1"
    assert (reg / "v1" / "manifest.json").is_file() and a.is_dir()
    assert main(["promote", str(b), "--registry", str(reg), "--move"]) == 0
    p = read_pointer(reg)
    assert (p.version, p.previous) == ("v2", "v1")
    assert not b.exists()
    assert main(["promote", "v1", "--registry", str(reg)]) == 0  # by version name
    assert read_pointer(reg).version == "v1"
    assert "promoted v1" in capsys.readouterr().out
    assert not list(reg.glob(".*.tmp"))


def test_promote_refuses_a_tampered_or_conflicting_bundle(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    a = fake_bundle(tmp_path / "a", "v1")
    (a / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="sha256"):
        add_to_registry(a, reg)
    assert main(["promote", str(a), "--registry", str(reg)]) == 2
    fake_bundle(tmp_path / "b", "v2")
    add_to_registry(tmp_path / "b", reg)
    fake_bundle(tmp_path / "c", "v2", b"different")
    with pytest.raises(BundleError, match="different bundle"):
        add_to_registry(tmp_path / "c", reg)


async def test_watcher_offers_a_new_model_and_refuses_a_broken_one(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    for v in ("v1", "v2", "v3"):
        add_to_registry(fake_bundle(tmp_path / v, v), reg)
    main(["promote", "v1", "--registry", str(reg)])
    offered: list[Scorer] = []
    loads: list[str] = []

    def load(bundle: Path) -> Scorer:
        loads.append(bundle.name)
        if bundle.name == "v3":
            raise BundleError("v3 does not load")
        return Loaded(bundle.name)

    metrics = ServeMetrics()
    watcher = ModelWatcher(reg, "v1", load, lambda s, _t: offered.append(s), metrics, check_s=0.01)
    assert not await watcher.check()  # unchanged pointer: nothing loaded
    main(["promote", "v2", "--registry", str(reg)])
    assert await watcher.check()
    assert [s.model_version for s in offered] == ["v2"]
    main(["promote", "v3", "--registry", str(reg)])
    assert not await watcher.check()
    assert not await watcher.check()  # refused once, not retried until the pointer moves
    assert loads == ["v2", "v3"]
    assert metrics.model_refused._value.get() == 1
    task = asyncio.create_task(watcher.run())  # the polling loop finds a later promotion
    main(["promote", "v1", "--registry", str(reg)])
    for _ in range(200):
        if len(offered) == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert [s.model_version for s in offered] == ["v2", "v1"]


def test_rollback_and_models_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reg = tmp_path / "registry"
    for v in ("v1", "v2"):
        main(["promote", str(fake_bundle(tmp_path / v, v)), "--registry", str(reg)])
    capsys.readouterr()
    assert main(["models", "--registry", str(reg)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listing[1:]] == [["-", "v1"], ["*", "v2"]]
    assert main(["rollback", "--registry", str(reg)]) == 0
    assert "current v1 (was v2)" in capsys.readouterr().out
    assert read_pointer(reg).version == "v1"
    main(["models", "--registry", str(reg)])
    listing = capsys.readouterr().out.splitlines()
    # v2 was rolled back from: no longer where a rollback goes (v1 is the oldest)
    assert [line.split()[:3] for line in listing[1:]] == [
        ["*", "v1", "?..?"],
        ["v2", "?..?", "rolled-back"],
    ]
    # A registry with no pointer: one clear line, exit 2.
    assert main(["rollback", "--registry", str(tmp_path / "nowhere")]) == 2
    assert "no current model" in capsys.readouterr().err
