"""The raw-text demo up to its model: simulated raw days, `logad parse`, then a real (tiny)
`logad train` on the parsed days, all in this process."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest

# Imported here, before the unit suite's guard on child processes is on: importing torch
# runs `ldconfig -p` once (ctypes looking for a CUDA library).
import trainer.train  # noqa: F401
from schemas import Vocab
from schemas.bundle import verify_bundle
from stream.cli import build_parser, main
from stream.devtools.demo import DemoSettings, prepare_model


@pytest.mark.slow
def test_the_raw_demo_trains_a_model_on_the_mined_templates(tmp_path: Path) -> None:
    def run(argv: Sequence[str], quiet: bool) -> int:
        if "train" in argv:  # CPU-sized, and no DataLoader worker processes
            cache = str(tmp_path / "token-cache")
            argv = [*argv, "--num-workers", "0", "--device", "cpu", "--token-cache-dir", cache]
        return main(list(argv))

    days = ["--days", "2", "--sessions-per-day", "60", "--preset", "tiny", "--epochs", "1"]
    args = build_parser().parse_args(["demo", "--workdir", str(tmp_path / "demo"), *days])
    settings: DemoSettings = args.build(args)
    prepared = prepare_model(settings, date(2024, 3, 3), run)
    manifest = verify_bundle(prepared.model_dir)
    assert manifest.preset == "tiny"
    assert (manifest.data_from, manifest.data_to) == ("2024-03-01", "2024-03-02")
    # The model's tokens are the mined template ids.
    vocab = Vocab.load(prepared.model_dir / "vocab.json")
    assert sum(t in vocab for t in prepared.templates) > 0.5 * len(prepared.templates)
