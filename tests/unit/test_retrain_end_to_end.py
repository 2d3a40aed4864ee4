"""`logad retrain` end to end on an unlabelled archive, training for real (a tiny model, in
this process): a night with too little data is `skipped` (exit 0, nothing trained, shown by
`logad models`); once a second day counts, the candidate trains the steps the recipe sizes,
and the record lists all four criteria, says the data carried no labels, and leaves out the
stub day between the days it used."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.feedback import Feedback, append_feedback
from schemas.registry import list_bundles, read_pointer
from schemas.registry_history import read_decisions
from schemas.sessions import Session
from stream.cli import main
from stream.devtools.simulate.traffic import SimSession, simulate_day
from tests.train_data import tiny_settings
from trainer.dataset import DataSelection
from trainer.train import TrainRequest, run_training

DAY1, DAY2, DAY3 = (date(2026, 2, d) for d in (1, 2, 3))
TRAIN_TOML = (
    "val_fraction = 0.2\nthreshold_quantile = 0.99\nnum_workers = 0\ncheckpoint_every_steps = 0\n"
)


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _archive_day(archive: Path, day: date, sims: list[SimSession]) -> None:
    """What serve archives: no labels; the stream alerted on the injected anomalies."""
    lines = [
        Session(
            s.session_id,
            s.to_session().events,
            s.events[0].ts,
            s.events[-1].ts,
            score=9.0 if s.anomaly else 0.1,
            alerted=s.anomaly is not None,
        )
        for s in sims
    ]
    assert all(len(line.events) <= 510 for line in lines)  # one window per line
    path = archive / daily_file_name(day)
    write_sessions(path, lines)
    path.with_name(path.name + DONE_SUFFIX).touch()


@pytest.mark.slow
def test_a_stub_night_is_skipped_then_a_real_day_trains_and_gates_on_all_four(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    seed = tmp_path / "seed"
    seed.mkdir()
    write_sessions(
        seed / daily_file_name(date(2026, 1, 31)),
        [s.to_session() for s in simulate_day(random.Random(1), _ms(DAY1) - 86_400_000, 300)],
    )
    bundle = tmp_path / "v1"
    s = tiny_settings(tmp_path, epochs=1, val_fraction=0.2, threshold_quantile=0.99)
    run_training(s, TrainRequest(DataSelection((seed,)), bundle))
    registry, archive = tmp_path / "registry", tmp_path / "archive"
    archive.mkdir()
    assert main(["promote", str(bundle), "--registry", str(registry)]) == 0
    v1 = read_pointer(registry).version

    kinds = ("unknown_event",)
    day1 = simulate_day(random.Random(2), _ms(DAY1), 300, 0.05, kinds)
    day2 = simulate_day(random.Random(3), _ms(DAY2), 20, 0.05, kinds)  # a 20-session stub
    day3 = simulate_day(random.Random(4), _ms(DAY3), 300, 0.05, kinds)
    _archive_day(archive, DAY1, day1)
    _archive_day(archive, DAY2, day2)
    feedback = tmp_path / "feedback.jsonl"
    anomalous3 = next(x for x in day3 if x.anomaly)
    normal1 = next(x for x in day1 if not x.anomaly)
    append_feedback(
        feedback,
        [
            Feedback("normal", session_id=anomalous3.session_id, note="known"),
            Feedback("anomalous", session_id=normal1.session_id, note="incident"),
            # The stub is not used, so its span adds nothing.
            Feedback("anomalous", start_ms=_ms(DAY2), end_ms=_ms(DAY2) + 86_400_000),
        ],
    )
    config = tmp_path / "train.toml"
    config.write_text(TRAIN_TOML)
    retrain = ["retrain", "--archive-dir", str(archive), "--registry", str(registry)]
    retrain += ["--min-sessions", "100", "--min-holdout-windows", "50", "--feedback", str(feedback)]
    retrain += ["--min-steps", "6", "--max-steps", "6", "--tokens-per-batch", "1024"]
    retrain += ["--train-config", str(config), "--device", "cpu", "--cpu-threads", "1"]

    # 1. Day 1 counts, the stub does not: one day is not enough. Exit 0, nothing trained.
    capsys.readouterr()
    assert main(retrain) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("skipped, nothing trained: not enough data")
    [skipped] = read_decisions(registry)[-1:]
    assert (skipped["action"], skipped["promoted"], skipped["by_hand"]) == ("skipped", False, False)
    assert "2026-02-02 (20)" in skipped["reason"] and "at least 100 sessions" in skipped["reason"]
    assert [(d["day"], d["sessions"], d["counts"]) for d in skipped["days"]] == [
        (DAY1.isoformat(), 300, True),
        (DAY2.isoformat(), 20, False),
    ]
    assert [b.version for b in list_bundles(registry)] == [v1]
    assert read_pointer(registry).version == v1 == skipped["current_after"]
    assert main(["models", "--registry", str(registry)]) == 0
    assert "last retrain" in (listing := capsys.readouterr().out)
    assert ": skipped: not enough data" in listing

    # 2. Day 3 completes: train on day 1 (the stub between is left out), hold out day 3.
    _archive_day(archive, DAY3, day3)
    assert main(retrain) == 0
    record = read_decisions(registry)[-1]
    assert record["action"] in ("promoted", "refused") and record["labelled"] is False
    assert [c["name"] for c in record["criteria"]] == [
        "false_alert_rate",
        "alerted_kept",
        "val_loss",
        "f1",
    ]
    by_name = {c["name"]: c for c in record["criteria"]}
    for name in ("false_alert_rate", "alerted_kept", "val_loss"):
        c = by_name[name]
        assert isinstance(c["value"], float) and isinstance(c["limit"], float), c
        assert c["passed"] in (True, False) and c["note"]
    assert by_name["f1"]["passed"] is None and by_name["f1"]["note"] == "not compared: no labels"
    assert (record["train_days"], record["holdout_day"]) == ([DAY1.isoformat()], DAY3.isoformat())
    assert record["left_out_days"] == [DAY2.isoformat()]
    assert record["training"]["steps"] == 6 and record["warm_start_from"] == v1
    # Watched: alerted windows of days 1 and 3, less the one acknowledged normal, plus the
    # one confirmed anomalous.
    alerted = sum(x.anomaly is not None for x in day1 + day3)
    assert record["candidate"]["watched"] == record["current"]["watched"] == alerted - 1 + 1
    normal3 = sum(x.anomaly is None for x in day3)
    assert record["candidate"]["normal_windows"] == normal3
    assert record["candidate"]["val_loss"] > 0 and record["current"]["val_loss"] > 0
    assert record["gate"] == {
        "confidence": 0.95,
        "margin": 0.0,
        "kept_fraction": 0.9,
        "loss_tolerance": 0.05,
    }
