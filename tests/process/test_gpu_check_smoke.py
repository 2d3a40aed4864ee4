"""bench/gpu_check.sh, the one script a lent GPU machine runs, in its dry mode (SMOKE=1: the
same steps with tiny shapes on CPU), so that it cannot rot between device sessions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = {"sanity", "sweep", "ddp_train_evaluate", "train_throughput", "score_throughput",
         "model_process", "seed_epoch", "replay"}  # fmt: skip


@pytest.mark.slow
def test_every_step_of_the_gpu_check_runs_in_its_dry_mode(tmp_path: Path) -> None:
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "PY": sys.executable}
    env["DATA"] = str(REPO / "data" / "hdfs")
    run = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    with tarfile.open(tmp_path / "gpu_check.tgz") as tgz:
        names = tgz.getnames()
        steps = tgz.extractfile("collect/steps.txt")
        assert steps is not None
        lines = steps.read().decode()
        results = {
            Path(n).name: orjson.loads(f.read())
            for n in names
            if n.startswith("collect/results/") and n.endswith(".json")
            if (f := tgz.extractfile(n)) is not None
        }
    codes = dict(re.findall(r"^(\w+) rc=(\d+)", lines, re.M))
    assert set(codes) == STEPS, (codes, run.stdout[-2000:])
    failed = {name: rc for name, rc in codes.items() if rc != "0"}
    assert not failed, (failed, run.stdout[-4000:])
    train = results["train_throughput-tiny-cpu.json"]
    assert train["bucketed_packed"]["non_pad_tokens_per_s"] > 0
    assert {"score_throughput-tiny-cpu.json", "replay_hdfs.json"} <= results.keys()
    epoch = results["seed_epoch-tiny-cpu.json"]
    assert epoch["finished"] and epoch["epoch_seconds"] > 0
