"""bench/gpu_check.sh, the one script a lent GPU machine runs, in its dry mode (SMOKE=1: the
same steps with tiny shapes on CPU), so that it cannot rot between device sessions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = {"sanity", "sweep", "ddp_train_evaluate", "train_throughput", "score_throughput",
         "model_process", "seed_epoch", "replay", "stream_e2e"}  # fmt: skip


def dry_run(out: Path, only: str | None = None) -> tuple[dict[str, str], dict[str, Any], str]:
    """Run the script with SMOKE=1 (and ONLY=`only`): each step's exit code, the results it
    collected by file name, and the end of its output."""
    env = {**os.environ, "SMOKE": "1", "OUT": str(out), "PY": sys.executable}
    env["DATA"] = str(REPO / "data" / "hdfs")
    if only is not None:
        env["ONLY"] = only
    run = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    with tarfile.open(out / "gpu_check.tgz") as tgz:
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
    return dict(re.findall(r"^(\w+) rc=(\d+)", lines, re.M)), results, run.stdout[-4000:]


@pytest.mark.slow
def test_every_step_of_the_gpu_check_runs_in_its_dry_mode(tmp_path: Path) -> None:
    codes, results, tail = dry_run(tmp_path)
    assert set(codes) == STEPS, (codes, tail)
    failed = {name: rc for name, rc in codes.items() if rc != "0"}
    assert not failed, (failed, tail)
    train = results["train_throughput-tiny-cpu.json"]
    assert train["bucketed_packed"]["non_pad_tokens_per_s"] > 0
    assert {"score_throughput-tiny-cpu.json", "replay_hdfs.json"} <= results.keys()
    epoch = results["seed_epoch-tiny-cpu.json"]
    assert epoch["finished"] and epoch["epoch_seconds"] > 0
    e2e = results["stream_e2e.json"]
    assert e2e["serve_no_cache_vs_scorer_only"] > 0
    latency = e2e["results"]["latency"]
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]


@pytest.mark.slow
def test_only_runs_the_named_steps_with_a_quick_bundle(tmp_path: Path) -> None:
    codes, results, tail = dry_run(tmp_path, only="replay")
    # No sweep ran, so a few steps of `logad train` made the bundle the step needs.
    assert codes == {"sanity": "0", "bundle": "0", "replay": "0"}, (codes, tail)
    assert set(results) == {"replay_hdfs.json", "index.json"}, sorted(results)
