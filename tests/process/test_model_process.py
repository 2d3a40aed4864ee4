"""The model in a child process (stream/serve/model_process.py): the same scores as in-process,
a bad bundle refused at start, and a child that outlives neither its parent nor `close`."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from schemas.errors import BundleError
from schemas.vocab import Vocab
from schemas.windows import Window
from stream.serve.model_process import (
    ModelProcessError,
    ProcessScorer,
    start_process_pool,
    start_process_scorer,
)
from stream.serve.reload import load_window_scorer
from trainer.calibration import calibrate
from trainer.export import export_bundle
from trainer.known_mixes import KnownMixes
from trainer.model import bert_config, build_model, get_preset
from trainer.scoring import ScoringStrategy

EVENTS = [f"E{i}" for i in range(8)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained `tiny` bundle: scores need not mean anything to be compared."""
    torch.manual_seed(0)
    vocab = Vocab.build([EVENTS])
    model = build_model(bert_config(get_preset("tiny"), len(vocab)))
    out = tmp_path_factory.mktemp("mp") / "bundle"
    cal = calibrate([1.0, 2.0, 3.0], 0.5, strategy=ScoringStrategy(groups=3))
    export_bundle(
        out, model, vocab, cal, data_from=None, data_to=None, preset="tiny",
        parent_version=None, metrics={},
    )  # fmt: skip
    return out


def windows(n: int) -> list[Window]:
    out = []
    for i in range(n):
        events = tuple(EVENTS[(i + j) % 8] for j in range(1 + i % 7))
        out.append(Window.build(f"s{i}", 0, events, i, i + 1, 0, i, i + 1, ended=i % 2 == 0))
    return out


def wait_exit(scorer: ProcessScorer, timeout_s: float = 30.0) -> int | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (code := scorer._process.poll()) is not None:
            return code
        time.sleep(0.05)
    return None


def test_scores_equal_the_in_process_scorer_and_close_stops_the_child(bundle: Path) -> None:
    scorer = start_process_scorer(bundle, "cpu", 1)
    try:
        ws = windows(40)
        got = scorer.score_windows(ws, 123)
        want = load_window_scorer("cpu", 1)(bundle).score_windows(ws, 123)
        assert got == want
        assert scorer.model_version == want[0].model_version
        assert scorer.score_windows([], 5) == []
    finally:
        scorer.close()
    assert wait_exit(scorer, 1.0) == 0
    with pytest.raises(ModelProcessError, match="closed"):
        scorer.score_windows(windows(1), 0)
    scorer.close()  # twice is harmless


@pytest.fixture(scope="module")
def known_mix_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle calibrated for known mixes; windows of EVENTS[:2] (with the end marker or
    not) are known ones."""
    torch.manual_seed(0)
    vocab = Vocab.build([EVENTS])
    model = build_model(bert_config(get_preset("tiny"), len(vocab)))
    out = tmp_path_factory.mktemp("mp") / "known"
    ids = sorted(vocab.encode(EVENTS[:2]))
    known = KnownMixes.of([(ids[0], 1, ids[1], 1)], ceilings=())
    strategy = ScoringStrategy(groups=3, known_mixes=True)
    export_bundle(
        out, model, vocab, calibrate([1.0, 2.0], 0.5, strategy=strategy, known=known),
        data_from=None, data_to=None, preset="tiny", parent_version=None, metrics={},
    )  # fmt: skip
    return out


@pytest.mark.parametrize("explain", [False, True])
def test_both_loaders_explain_known_mixes_only_when_told(
    known_mix_bundle: Path, explain: bool
) -> None:
    w = Window.build("s", 0, tuple(EVENTS[:2]), 0, 1, 0, 0, 1, ended=False)
    child = start_process_scorer(known_mix_bundle, "cpu", 1, explain_known_mixes=explain)
    try:
        (got,) = child.score_windows([w], 1)
    finally:
        child.close()
    (want,) = load_window_scorer("cpu", 1, explain)(known_mix_bundle).score_windows([w], 1)
    assert got == want and got.score == 0.0
    assert bool(got.surprising) == explain


def test_child_ignores_sigterm_and_exits_when_the_parent_end_closes(bundle: Path) -> None:
    scorer = start_process_scorer(bundle, "cpu", 1)
    try:
        os.kill(scorer.pid, signal.SIGTERM)  # as a signal to the whole process group would
        os.kill(scorer.pid, signal.SIGINT)
        time.sleep(0.5)
        assert len(scorer.score_windows(windows(3), 0)) == 3
        scorer._conn.close()  # what the kernel does when the parent is killed with -9
        assert wait_exit(scorer) == 0
    finally:
        if scorer._process.poll() is None:
            scorer._process.kill()
            scorer._process.wait()


def test_a_bundle_that_fails_to_verify_is_refused_at_start(bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    weights = bad / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        start_process_scorer(bad, "cpu", 1)


def test_a_pool_scores_from_several_threads_as_one_process_would(bundle: Path) -> None:
    pool = start_process_pool(bundle, "cpu", processes=2, threads=1)
    try:
        assert pool.parallel == 2 and len(set(pool.pids)) == 2
        batches = [windows(40)[i::4] for i in range(4)]
        want = load_window_scorer("cpu", 1)(bundle)
        with ThreadPoolExecutor(2) as ex:
            got = list(ex.map(lambda b: pool.score_windows(b, 7), batches))
        assert got == [want.score_windows(b, 7) for b in batches]
        assert pool.model_version == want.model_version
    finally:
        pool.close()
    assert all(wait_exit(child, 1.0) == 0 for child in pool._children)


def test_a_pool_with_a_bad_bundle_starts_no_child(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spawn(*_a: object) -> None:
        raise AssertionError("a child was started for a bundle that does not verify")

    monkeypatch.setattr("stream.serve.model_process._spawn", no_spawn)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in bundle.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(BundleError, match="sha256"):
        start_process_pool(bad, "cpu", processes=2, threads=1)
    with pytest.raises(ValueError, match="processes"):
        start_process_pool(bundle, "cpu", processes=0, threads=1)
