"""End to end: `logad train` on a slice of the HDFS training sessions writes a verified
five-file bundle, a run directory with metrics and a loss plot, and warm-starts a second
bundle from the first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import safetensors.torch

from schemas import Session, Vocab
from schemas.bundle import BUNDLE_FILES, MANIFEST, Calibration, verify_bundle
from schemas.daily_files import read_sessions, write_sessions
from stream.cli.train import main
from tests.train_data import cli_flags, hdfs_day
from trainer.end_marker import END_EVENT
from trainer.scoring import DEFAULT_STRATEGY, ScoringStrategy, WindowScorer


@pytest.mark.slow
def test_train_exports_bundle_then_warm_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = hdfs_day(tmp_path / "days", 250)
    out = tmp_path / "models" / "m1"
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
            "2",
        ]
    )
    assert rc == 0
    assert f"written to {out}" in capsys.readouterr().out

    # Exactly the five files, verified, and no pickle anywhere.
    assert sorted(p.name for p in out.iterdir()) == sorted((*BUNDLE_FILES, MANIFEST))
    manifest = verify_bundle(out)
    assert manifest.preset == "tiny" and manifest.parent_version is None
    assert (manifest.data_from, manifest.data_to) == ("2026-01-01", "2026-01-01")
    assert manifest.metrics["steps"] > 0 and manifest.metrics["val_windows"] > 0
    cal = Calibration.from_json((out / "calibration.json").read_bytes())
    assert cal.n_windows == manifest.metrics["val_windows"]
    # HDFS interleaves (trainer/known_mixes.py, order_varies): by default, known mixes then
    # count in any order; the rest is the default strategy, with known ends (end marker).
    assert ScoringStrategy.from_dict(cal.strategy) == replace(
        DEFAULT_STRATEGY, known_pairs=False, known_ends=True
    )
    assert manifest.metrics["val_fraction"] == 0.1 and manifest.metrics["end_marker"] is True
    assert END_EVENT in Vocab.load(out / "vocab.json")
    assert cal.quantiles["p50"] <= cal.threshold
    # The training windows' event mixes, for a known_mixes strategy: (token id, count) pairs.
    assert 0 < len(cal.known_mixes) <= manifest.metrics["train_windows"]
    vocab_size = len(Vocab.load(out / "vocab.json"))
    for key in cal.known_mixes:
        assert all(0 < t < vocab_size and c > 0 for t, c in zip(key[::2], key[1::2], strict=True))
    assert cal.known_pairs and all(0 < t < vocab_size for p in cal.known_pairs for t in p)
    # Count ceilings: at most each event's largest count in one training window.
    assert cal.count_ceilings and all(0 < t < vocab_size for t, _ in cal.count_ceilings)
    most = {t: max(k[i + 1] for k in cal.known_mixes for i in range(0, len(k), 2) if k[i] == t)
            for t, _ in cal.count_ceilings}  # fmt: skip
    assert all(0 <= c <= most[t] for t, c in cal.count_ceilings)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no tmp left

    run = tmp_path / "models" / "m1.run"
    records = [orjson.loads(x) for x in (run / "metrics.jsonl").read_bytes().splitlines()]
    assert {r["kind"] for r in records} == {"train", "val"}
    assert sum(r["kind"] == "val" for r in records) == 2  # once per epoch
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((run / "checkpoints").iterdir())) <= 2
    for p in run.rglob("*"):
        assert p.suffix not in (".pt", ".bin", ".pkl", ".pth")

    # A new day brings an event id never seen: the warm start extends the vocab.
    old_vocab = Vocab.load(out / "vocab.json")
    sessions = list(read_sessions(day))
    sessions += [Session(f"new-{i}", ("E5", "E_NEW", "E5")) for i in range(40)]
    (tmp_path / "days2").mkdir()
    write_sessions(tmp_path / "days2" / day.name, sessions)
    out2 = tmp_path / "models" / "m2"
    rc = main(
        [
            "--log-level",
            "warning",
            "train",
            *cli_flags(tmp_path),
            "--data",
            str(tmp_path / "days2"),
            "--out",
            str(out2),
            "--epochs",
            "1",
            "--init-from",
            str(out),
            "--score-known-pairs",
            "false",
            "--score-count-ceilings",
            "false",
        ]
    )
    assert rc == 0
    m2 = verify_bundle(out2)
    # Calibrated for known mixes in any order: the new sessions' mix E5 E5 E_NEW is known.
    cal2 = Calibration.from_json((out2 / "calibration.json").read_bytes())
    assert cal2.strategy["known_counts"] is True and cal2.strategy["known_pairs"] is False
    assert cal2.strategy["count_ceilings"] is False and cal2.count_ceilings is not None
    scored = WindowScorer.from_bundle(out2, device="cpu").score_events([["E_NEW", "E5", "E5"]])
    assert scored[0].known and scored[0].score == 0.0
    assert m2.parent_version == manifest.version and m2.version > manifest.version
    new_vocab = Vocab.load(out2 / "vocab.json")
    assert new_vocab.tokens[: len(old_vocab)] == old_vocab.tokens
    assert new_vocab.tokens[len(old_vocab) :] == ("E_NEW",)
    w = safetensors.torch.load_file(str(out2 / "model.safetensors"))
    assert w["bert.embeddings.word_embeddings.weight"].shape[0] == len(new_vocab)


def test_score_groups_sets_the_calibrated_strategy(tmp_path: Path) -> None:
    day = hdfs_day(tmp_path / "days", 40)
    out = tmp_path / "m"
    argv = ["--log-level", "warning", "train", *cli_flags(tmp_path), "--data", str(day)]
    assert main([*argv, "--out", str(out), "--epochs", "1", "--score-groups", "6"]) == 0
    cal = Calibration.from_json((out / "calibration.json").read_bytes())
    assert ScoringStrategy.from_dict(cal.strategy).groups == 6
    assert DEFAULT_STRATEGY.groups == 10  # what a bundle gets without the flag
    assert main([*argv, "--out", str(tmp_path / "m2"), "--score-groups", "0"]) == 2
