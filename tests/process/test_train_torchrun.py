"""`logad train` with processes: DataLoader workers, and `--nproc 2` (two DDP ranks on gloo,
started through torchrun); each writes one verified bundle."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.bundle import BUNDLE_FILES, MANIFEST, verify_bundle
from stream.cli.train import main
from tests.train_data import cli_flags, hdfs_day


@pytest.mark.slow
def test_nproc_2_trains_with_gloo_through_torchrun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = hdfs_day(tmp_path / "days", 150)
    out = tmp_path / "m"
    rc = main(
        [
            "--log-level",
            "warning",
            "train",
            *cli_flags(tmp_path),
            "--data",
            str(day),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--nproc",
            "2",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted((*BUNDLE_FILES, MANIFEST))
    verify_bundle(out)
    ckpt = next((tmp_path / "m.run" / "checkpoints").iterdir())
    # Both ranks saved their RNG state; rank 0 alone wrote everything else.
    assert {"rng-rank0.safetensors", "rng-rank1.safetensors"} <= {p.name for p in ckpt.iterdir()}
    meta = orjson.loads((ckpt / "meta.json").read_bytes())
    assert meta["world_size"] == 2


def test_dataloader_workers_prepare_the_batches(tmp_path: Path) -> None:
    day = hdfs_day(tmp_path / "days", 120)
    out = tmp_path / "m"
    argv = ["--log-level", "warning", "train", *cli_flags(tmp_path), "--data", str(day)]
    assert main([*argv, "--out", str(out), "--epochs", "1", "--num-workers", "2"]) == 0
    manifest = verify_bundle(out)
    assert manifest.metrics["steps"] > 0
