"""Serve's adaptive threshold: a TailTracker per model version re-judges scores in the
scoring thread, before the archive and the topics see them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs

from schemas.bundle import CALIBRATION, Calibration
from schemas.scores import Score
from schemas.windows import Window
from stream.serve.adaptive_threshold import AdaptiveThreshold, bundle_calibrations
from stream.serve.batcher import Batcher
from stream.serve.kafka_io import Acks
from stream.serve.metrics import ServeMetrics
from stream.serve.service import adaptive_threshold
from stream.serve.settings import ModelRuntimeSettings, ServeSettings
from stream.serve.worker import ScoringWorker
from tests.fakes import FakeProducer, FakeScorer
from trainer.calibration import ThresholdRule, calibrate
from trainer.scoring import ScoringStrategy


def _pot_calibration(seed: int = 0) -> Calibration:
    scores = np.random.default_rng(seed).exponential(1.0, 3000)
    rule = ThresholdRule(method="pot", budget=2.0, bootstrap=0)
    cal = calibrate(scores, strategy=ScoringStrategy(), rule=rule)
    assert cal.tail is not None
    return cal


def _score(i: int, value: float, version: str = "v1", threshold: float = 50.0) -> Score:
    return Score(
        window_id=f"w{i}",
        session_id=f"s{i}",
        window_index=0,
        model_version=version,
        score=value,
        threshold=threshold,
        anomalous=value > threshold,
        n_events=2,
        first_ts=0,
        last_ts=1,
        scored_at=0,
    )


def test_scores_are_judged_by_the_tracker_of_their_model() -> None:
    cal = _pot_calibration()
    quantile_cal = replace(cal, tail=None)
    judge = AdaptiveThreshold({"v1": cal, "v0": quantile_cal}.get, refit_every=10, depth=0)
    tracker = judge.tracker("v1")
    assert tracker is not None and tracker.threshold == pytest.approx(cal.threshold)
    high = cal.threshold + 1.0
    out = judge([_score(0, 0.5), _score(1, high)])
    assert [s.anomalous for s in out] == [False, True]  # the bundle's 50 would flag neither
    assert out[1].threshold == pytest.approx(cal.threshold)
    assert tracker.seen == 2
    # A bundle without a tail fit keeps its verdicts, with one warning per version.
    with capture_logs() as logs:
        kept = judge([_score(2, high, "v0"), _score(3, 0.1, "v0")])
    assert kept == [_score(2, high, "v0"), _score(3, 0.1, "v0")]
    assert [e["event"] for e in logs] == ["adaptive_threshold_unavailable"]
    # Back to v1: a new tracker, started from its calibration again.
    assert judge.tracker("v1") is not tracker


def test_calibrations_come_from_the_registry_or_the_bundle(tmp_path: Path) -> None:
    cal = _pot_calibration()
    registry = tmp_path / "registry"
    (registry / "v7").mkdir(parents=True)
    (registry / "v7" / CALIBRATION).write_bytes(cal.to_json())
    (registry / "current").write_bytes(orjson.dumps({"version": "v7"}))
    assert bundle_calibrations(registry)("v7") == cal
    with capture_logs() as logs:
        assert bundle_calibrations(registry)("v8") is None
    assert logs[0]["event"] == "adaptive_threshold_no_calibration"
    single = tmp_path / "bundle"
    single.mkdir()
    (single / CALIBRATION).write_bytes(cal.to_json())
    assert bundle_calibrations(single)("any-version") == cal


def test_serve_settings_switch_it_on() -> None:
    off = ServeSettings(model=Path("m"))
    assert adaptive_threshold(off) is None
    on = replace(off, runtime=ModelRuntimeSettings(adaptive_threshold=True))
    assert isinstance(adaptive_threshold(on), AdaptiveThreshold)
    with pytest.raises(ValueError, match="adaptive_refit_every"):
        ModelRuntimeSettings(adaptive_refit_every=0)


async def test_the_worker_publishes_and_archives_the_judged_verdicts() -> None:
    def flag_all(scores: list[Score]) -> list[Score]:
        return [replace(s, threshold=-1.0, anomalous=True) for s in scores]

    scorer, producer, acks = FakeScorer("v1"), FakeProducer(), Acks()
    archived: list[tuple[Window, Score]] = []
    worker = ScoringWorker(
        scorer,
        Batcher(max_tokens=4096, max_wait_ms=0),
        producer.send,
        acks,
        scores_topic="scores",
        alerts_topic="alerts",
        on_done=lambda w: None,
        metrics=ServeMetrics(),
        on_scored=archived.extend,
        judge=flag_all,
    )
    windows = [Window.build(f"s{i}", 0, ("A", "B"), 1000, 2000, 0, i, i) for i in range(4)]
    worker.submit(windows, now_ms=0)
    worker.stop()
    await worker.run()
    await acks.wait_until(lambda: worker.backlog == 0)
    alerts = [v for t, _k, v in producer.sent if t == "alerts"]
    assert len(alerts) == 4 and all(a["threshold"] == -1.0 for a in alerts)
    assert all(s.anomalous for _w, s in archived)  # the archive saw the same verdicts
