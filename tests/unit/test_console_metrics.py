"""The console's pipeline panel: serve's real /metrics text parsed into a snapshot, rates
between two scrapes, and the registry's history as the panel shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.registry_history import Move, append_move, write_decision
from stream.console.metrics_scrape import parse_metrics, rates
from stream.console.metrics_watch import MetricsWatch
from stream.console.registry_info import registry_view
from stream.console.views import pipeline_view
from stream.jobs.registry import promote_bundle
from stream.serve.metrics import ServeMetrics
from tests.unit.test_promote_and_watch import fake_bundle


def _serve_metrics(events: int, scored: int, dlq: int, lags: dict[str, int]) -> str:
    m = ServeMetrics()
    m.events.inc(events)
    m.scored.inc(scored)
    m.dlq.inc(dlq)
    for p, v in lags.items():
        m.lag.labels(partition=p).set(v)
    m.set_model("v20261201T010000000Z-abc123")
    m.observe_scores([(1.0, 8.25)])
    m.health.assigned = 2
    return m.render().decode()


def test_parse_serve_metrics() -> None:
    snap = parse_metrics(_serve_metrics(1000, 40, 3, {"10": 7, "2": 5, "0": 0}), at=100.0)
    assert snap.counters == {"events": 1000.0, "windows": 40.0, "alerts": 0.0, "dlq": 3.0}
    assert list(snap.lag) == ["0", "2", "10"]  # by partition number
    assert snap.lag["10"] == 7.0
    assert snap.model_version == "v20261201T010000000Z-abc123"
    assert snap.threshold == 8.25
    assert snap.ready is True
    with pytest.raises(ValueError):
        parse_metrics("logad_events_total{ 12\n", at=0.0)


def test_rates_between_scrapes_and_after_a_restart() -> None:
    a = parse_metrics(_serve_metrics(1000, 40, 3, {}), at=100.0)
    b = parse_metrics(_serve_metrics(3000, 90, 3, {}), at=104.0)
    assert rates(a, b) == {"events": 500.0, "windows": 12.5, "alerts": 0.0, "dlq": 0.0}
    restarted = parse_metrics(_serve_metrics(10, 1, 0, {}), at=108.0)
    assert rates(b, restarted)["events"] is None  # counters began again


def test_watch_keeps_a_bounded_history_and_the_panel_shows_it() -> None:
    watch = MetricsWatch("http://127.0.0.1:9/metrics", interval_s=1.0, window_s=3.0)
    for i in range(10):
        watch.record(parse_metrics(_serve_metrics(100 * i, i, 0, {"0": i}), at=float(i)))
    assert len(watch.history) == 4
    view = pipeline_view(watch)
    assert view["rates"]["events"] == 100.0
    assert view["series"]["t"] == [6.0, 7.0, 8.0, 9.0]
    assert view["lag"] == {"0": 9.0} and view["lag_total"] == 9.0
    assert view["model_version"].startswith("v2026")
    assert pipeline_view(None) == {"configured": False}


def test_registry_view_lists_moves_and_decisions_newest_first(tmp_path: Path) -> None:
    reg = tmp_path / "registry"
    for v in ("v1", "v2"):
        promote_bundle(fake_bundle(tmp_path / v, v, v.encode()), reg)
    append_move(reg, Move("2026-12-02T00:00:00+00:00", "rolled_back", "v1", "v2", True, "noisy"))
    write_decision(
        reg,
        datetime(2026, 12, 2, tzinfo=UTC),
        {
            "time": "2026-12-02T00:00:00+00:00",
            "action": "rolled_back",
            "version": "v1",
            "reason": "noisy",
            "by_hand": True,
        },
    )
    view = registry_view(reg)
    assert view["current"]["version"] == "v2"  # the pointer, not the history written by hand
    assert view["moves"][0]["action"] == "rolled_back" and view["moves"][0]["reason"] == "noisy"
    assert [m["version"] for m in view["moves"]] == ["v1", "v2", "v1"]
    first = view["decisions"][0]
    assert (first["action"], first["version"], first["reason"]) == ("rolled_back", "v1", "noisy")
    assert first["record"]["by_hand"] is True
    assert "error" in registry_view(tmp_path / "nowhere")
