from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.bundle import Calibration
from schemas.daily_files import write_sessions
from schemas.errors import ConfigError, LogadError
from schemas.sessions import Session
from schemas.threshold import AlertBudget
from schemas.vocab import UNK_ID, Vocab
from schemas.windows import MAX_EVENTS
from stream.cli import evaluate as cli_evaluate
from stream.cli.command import execute
from tests.unit.untrained_bundle import untrained_bundle
from trainer.calibration import ThresholdRule
from trainer.end_marker import END_EVENT, encode_window, marks, uses_end_marker, with_end
from trainer.evaluate import (
    in_chunks,
    score_sets,
    session_max,
    split_sessions,
)
from trainer.evaluate_run import passes_per_window, recalibration_rule, threshold_source
from trainer.evaluate_settings import EvaluateSettings
from trainer.scoring import ScoringStrategy


def test_split_sessions_cuts_like_the_stream() -> None:
    sw = split_sessions([["a"] * (2 * MAX_EVENTS + 3), ["b"] * 5, []])
    assert [len(w) for w in sw.windows] == [MAX_EVENTS, MAX_EVENTS, 3, 5, 0]
    assert sw.owner.tolist() == [0, 0, 0, 1, 2]
    assert sw.n_sessions == 3


def test_session_score_is_the_max_over_windows() -> None:
    owner = np.array([0, 0, 0, 1, 2])
    assert session_max([1.0, 5.0, 2.0, 0.5, 0.0], owner, 3).tolist() == [5.0, 0.5, 0.0]
    with pytest.raises(ValueError):
        session_max([1.0], owner, 3)


def test_in_chunks_returns_results_in_input_order() -> None:
    windows = [("a",) * n for n in (5, 1, 3, 2, 4)]
    seen: list[int] = []

    def fn(batch: list[tuple[str, ...]]) -> list[int]:
        seen.append(len(batch))
        return [len(w) for w in batch]

    assert in_chunks(fn, windows, chunk=2, progress=False) == [5, 1, 3, 2, 4]
    assert seen == [2, 2, 1]


def _bad_count(batch: Sequence[Sequence[str]]) -> list[float]:
    return [float(sum(e == "BAD" for e in w)) for w in batch]


def test_score_sets_flags_a_session_by_any_window() -> None:
    long_bad = ["ok"] * MAX_EVENTS + ["BAD"]  # the anomaly sits in the second window
    normal = [["ok"] * 3, ["ok"] * (MAX_EVENTS + 20)]
    abnormal = [long_bad, ["BAD", "BAD"], ["ok"]]
    ticks = iter(range(100))
    scored = score_sets(_bad_count, normal, abnormal, progress=False, clock=lambda: next(ticks))
    assert scored.normal.tolist() == [0.0, 0.0]
    assert scored.abnormal.tolist() == [1.0, 2.0, 0.0]
    assert scored.throughput.windows == 7
    assert scored.throughput.seconds == 2.0  # one tick per set, from the injected clock


def test_passes_per_window() -> None:
    assert passes_per_window(ScoringStrategy(groups=6), [3, 10, 0]) == pytest.approx(9 / 3)


def test_end_marker_goes_on_each_window_shorter_than_a_full_one() -> None:
    assert with_end(("a", "b")) == ("a", "b", END_EVENT)
    assert with_end(()) == (END_EVENT,)
    # A session of 600 events: a full (split) window, then its last piece, marked.
    sw = split_sessions([["a"] * 600])
    assert [with_end(w)[-1] for w in sw.windows] == ["a", END_EVENT]
    # Exactly 510 events: the marker would not fit, so none (the rule's one ambiguity).
    assert not marks(MAX_EVENTS) and marks(MAX_EVENTS - 1)
    assert with_end(("a",) * MAX_EVENTS) == ("a",) * MAX_EVENTS
    vocab = Vocab.build([["a", END_EVENT]])
    assert uses_end_marker(vocab) and not uses_end_marker(Vocab.build([["a"]]))
    end = vocab.id_of(END_EVENT)
    assert encode_window(vocab, ["a", "zz"], True) == [vocab.id_of("a"), UNK_ID, end]
    assert encode_window(vocab, ["a", "zz"], False) == [vocab.id_of("a"), UNK_ID]
    assert len(encode_window(vocab, ["a"] * MAX_EVENTS, True)) == MAX_EVENTS


# ------------------------------------------------------------------ the command, end to end


def _sessions(path: Path, seqs: list[list[str]], label: int) -> Path:
    write_sessions(
        path,
        (Session(f"s{label}-{i}", tuple(s), label=label) for i, s in enumerate(seqs)),
    )
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model in a real bundle: the plumbing, not the quality, is tested."""
    out = tmp_path_factory.mktemp("b") / "bundle"
    return untrained_bundle(out, "ABCD", [0.1, 0.2, 0.3, 2.0])


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli_evaluate.register(sub)
    return execute(parser.parse_args(argv))


def _evaluate(bundle: Path, normal: Path, abnormal: Path, *flags: str) -> int:
    """`logad evaluate --model BUNDLE --normal N --abnormal A FLAGS...`."""
    argv = ["evaluate", "--model", str(bundle), "--normal", str(normal)]
    return _run([*argv, "--abnormal", str(abnormal), *flags])


def _files(tmp: Path) -> tuple[Path, Path]:
    normal = _sessions(tmp / "n.jsonl", [["A", "B", "C", "D"] * 3] * 6 + [["A", "B"]], 0)
    abnormal = _sessions(tmp / "a.jsonl", [["D", "D", "NEW"], ["C", "A"] * 300], 1)
    return normal, abnormal


def test_evaluate_writes_report_and_plots(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    normal, abnormal = _files(tmp_path)
    report = tmp_path / "report"
    rc = _evaluate(
        bundle,
        normal,
        abnormal,
        "--report",
        str(report),
        "--device",
        "cpu",
        "--population-normals",
        "700",
        "--population-abnormals",
        "20",
    )
    assert rc == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert (r["n_normal"], r["n_abnormal"]) == (7, 2)
    assert r["threshold"] == pytest.approx(0.3)  # the bundle's calibrated threshold (p50)
    assert r["population"] == {"normals": 700, "abnormals": 20}
    assert 0 <= r["fpr"] <= 1 and 0 <= r["recall"] <= 1 and 0 <= r["auroc"] <= 1
    assert r["false_positives"] == round(r["fpr"] * 7)
    assert r["throughput"]["windows"] == 7 + 3  # the 600-event session is two windows
    assert r["forward_passes_per_window"] == pytest.approx(2.0)
    assert r["strategy"]["groups"] == 2 and r["end_marker"] is False
    for png in ("scores.png", "roc.png", "pr.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "full/max" in printed and "AUROC" in printed


def test_recalibrates_for_an_overridden_strategy(bundle: Path, tmp_path: Path) -> None:
    normal, abnormal = _files(tmp_path)
    train = _sessions(tmp_path / "train.jsonl", [["A", "B", "C", "D"] * 2] * 60, 0)
    report = tmp_path / "r"
    rc = _evaluate(
        bundle,
        normal,
        abnormal,
        "--report",
        str(report),
        "--device",
        "cpu",
        "--groups",
        "3",
        "--calibrate-on",
        str(train),
        "--val-fraction",
        "0.2",
        "--threshold-quantile",
        "0.9",
        "--token-cache-dir",
        str(tmp_path / "cache"),
    )
    assert rc == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert r["strategy"]["groups"] == 3
    assert "re-calibrated" in r["threshold_source"]
    assert r["threshold"] != pytest.approx(0.3)


def test_recalibrates_for_a_false_alert_budget(bundle: Path, tmp_path: Path) -> None:
    normal, abnormal = _files(tmp_path)
    rng = np.random.default_rng(0)
    seqs = [list(rng.choice(list("ABCD"), size=int(rng.integers(2, 12)))) for _ in range(400)]
    train = _sessions(tmp_path / "train.jsonl", seqs, 0)
    common = ["--device", "cpu", "--calibrate-on", str(train), "--val-fraction", "0.2"]
    common += ["--token-cache-dir", str(tmp_path / "cache")]
    thresholds = []
    for budget in ("50", "5"):
        report = tmp_path / f"r{budget}"
        flags = ["--report", str(report), "--alert-budget", budget, "--threshold-method", "pot"]
        assert _evaluate(bundle, normal, abnormal, *flags, *common) == 0
        r = orjson.loads((report / "report.json").read_bytes())
        assert (
            f"{budget} false alerts per 1,000 windows by a GPD tail (POT)" in r["threshold_source"]
        )
        thresholds.append(r["threshold"])
    # A smaller budget is a higher threshold.
    assert thresholds[1] > thresholds[0]


def test_a_budget_and_a_quantile_together_are_refused(bundle: Path, tmp_path: Path) -> None:
    normal, abnormal = _files(tmp_path)
    flags = ["--alert-budget", "1", "--threshold-quantile", "0.99"]
    with pytest.raises(LogadError, match="not both"):
        _evaluate(bundle, normal, abnormal, *flags, "--calibrate-on", str(normal))


def test_recalibration_rule_keeps_the_bundles_budget_unless_overridden() -> None:
    pot = Calibration(
        quantiles={},
        threshold=1.0,
        threshold_quantile=0.999,
        n_windows=10,
        threshold_method="pot",
        budget=AlertBudget(2.0, "per_hour", 0.001, 2000.0),
    )
    keep = recalibration_rule(EvaluateSettings(groups=3), pot)
    assert (keep.method, keep.budget, keep.unit, keep.windows_per_hour) == (
        "pot",
        2.0,
        "per_hour",
        2000.0,
    )
    own = recalibration_rule(EvaluateSettings(alert_budget=1.0, threshold_method="quantile"), pot)
    assert (own.method, own.budget, own.unit) == ("quantile", 1.0, "per_1000_windows")
    assert recalibration_rule(EvaluateSettings(threshold_quantile=0.99), pot).budget is None
    plain = dataclasses.replace(pot, threshold_method="quantile", budget=None)
    assert recalibration_rule(EvaluateSettings(groups=3), plain) == ThresholdRule()


def test_overrides_without_calibration_data_are_refused(bundle: Path, tmp_path: Path) -> None:
    normal, abnormal = _files(tmp_path)
    with pytest.raises(ConfigError, match="calibrate-on"):
        _evaluate(bundle, normal, abnormal, "--groups", "3")


def test_population_needs_both_sizes(bundle: Path, tmp_path: Path) -> None:
    normal, abnormal = _files(tmp_path)
    with pytest.raises(ConfigError, match="population"):
        _evaluate(bundle, normal, abnormal, "--population-normals", "10")


def test_missing_session_file_is_one_clear_error(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(LogadError, match="no such session file"):
        _evaluate(bundle, tmp_path / "nope.jsonl", tmp_path / "nope.jsonl", "--device", "cpu")


def test_threshold_source_says_when_the_method_fell_back() -> None:
    cal = Calibration(quantiles={}, threshold=1.0, threshold_quantile=0.999, n_windows=47)
    assert "fallback" not in threshold_source(cal)
    fell = dataclasses.replace(cal, fallback="47 windows give 11 peaks, fewer than 20")
    assert threshold_source(fell, "re-calibrated").endswith(
        "; fallback: 47 windows give 11 peaks, fewer than 20"
    )
