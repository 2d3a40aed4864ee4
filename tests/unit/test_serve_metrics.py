"""The serve metrics endpoint: /metrics, /healthz (loop alive), /readyz (assigned + model)."""

from __future__ import annotations

import urllib.error
import urllib.request

from stream.serve.metrics import Health, MetricsServer, ServeMetrics


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_is_a_pure_function_of_time() -> None:
    now = [100.0]
    h = Health(stale_s=5.0, clock=lambda: now[0], last_tick=100.0)
    assert h.alive()
    now[0] = 105.5
    assert not h.alive()
    h.tick()
    assert h.alive()
    assert not h.ready()
    h.assigned, h.model_loaded = 2, True
    assert h.ready()


def test_endpoint_serves_metrics_health_and_readiness() -> None:
    m = ServeMetrics(stale_s=30.0)
    server = MetricsServer(m, "127.0.0.1", 0)
    server.start()
    try:
        assert get(server.port, "/healthz")[0] == 200
        assert get(server.port, "/readyz") == (503, "assigned=0 model_loaded=false\n")
        m.set_model("v7")
        m.health.assigned = 3
        m.events.inc(42)
        m.lag.labels(partition="1").set(9)
        m.batch_latency.observe(0.02)
        assert get(server.port, "/readyz")[0] == 200
        code, text = get(server.port, "/metrics")
        assert code == 200
        assert "logad_events_total 42.0" in text
        assert 'logad_consumer_lag{partition="1"} 9.0' in text
        assert 'logad_model_info{version="v7"} 1.0' in text
        assert "logad_batch_latency_seconds_bucket" in text
        m.set_model("v8")  # a switch replaces the version label, it does not add one
        assert 'version="v7"' not in get(server.port, "/metrics")[1]
        m.health.last_tick -= 60
        assert get(server.port, "/healthz")[0] == 503
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_scores_health_and_model_gauges_read_at_scrape_time() -> None:
    now = [1000.0]
    m = ServeMetrics(stale_s=30.0)
    m.health.clock = lambda: now[0]
    m.health.last_tick = 1000.0
    text = m.render().decode()
    assert "logad_model_loaded 0.0" in text
    assert "logad_ready 0.0" in text
    assert "logad_last_tick_age_seconds 0.0" in text
    assert "logad_window_score_count 0.0" in text
    now[0] = 1042.5  # a stuck loop ticks no more; the scrape still sees its age
    m.set_model("v1")
    m.health.assigned = 1
    m.observe_scores([(0.3, 4.0), (5.0, 4.0), (200.0, 4.0)])
    text = m.render().decode()
    assert "logad_last_tick_age_seconds 42.5" in text
    assert "logad_model_loaded 1.0" in text
    assert "logad_ready 1.0" in text
    assert "logad_threshold 4.0" in text
    assert "logad_window_score_count 3.0" in text
    assert 'logad_window_score_bucket{le="0.5"} 1.0' in text
    assert 'logad_window_score_bucket{le="8.0"} 2.0' in text
    assert 'logad_window_score_bucket{le="+Inf"} 3.0' in text
