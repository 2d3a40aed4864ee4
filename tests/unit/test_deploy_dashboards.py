"""deploy/grafana's dashboard and deploy/prometheus's rules are well formed, and the name
extractor that the integration test (test_serve_dashboards.py) relies on reads PromQL right."""

from __future__ import annotations

import re

import pytest

from stream.serve.metrics import ServeMetrics
from tests.promql_names import (
    PROMETHEUS_BUILTINS,
    REPO,
    dashboard_exprs,
    dashboard_panels,
    deploy_references,
    exposed_names,
    load_dashboard,
    load_rules,
    metric_names,
    rule_exprs,
    unknown_metrics,
)

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}


def balanced(expr: str) -> bool:
    depth = {"(": 0, "[": 0, "{": 0}
    close = {")": "(", "]": "[", "}": "{"}
    for ch in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        if ch in depth:
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if depth[close[ch]] < 0:
                return False
    return not any(depth.values())


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    d = load_dashboard()
    assert d["uid"] and d["title"]
    assert 36 <= d["schemaVersion"] <= 41
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 10
    for p in graphs:
        assert p["title"] and p["description"], p["id"]
        assert set(p["gridPos"]) == {"h", "w", "x", "y"}
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and balanced(t["expr"]), (p["title"], t["expr"])
            assert metric_names(t["expr"]), (p["title"], t["expr"])


def test_dashboard_covers_what_operators_watch() -> None:
    names = set().union(*(metric_names(e) for e in dashboard_exprs(load_dashboard())))
    for wanted in (
        "logad_events_total",
        "logad_windows_scored_total",
        "logad_alerts_total",
        "logad_consumer_lag",
        "logad_batch_latency_seconds_bucket",
        "logad_window_score_bucket",
        "logad_dlq_total",
        "logad_model_info",
        "logad_paused",
        "logad_open_sessions",
    ):
        assert wanted in names, wanted
    exprs = dashboard_exprs(load_dashboard())
    assert any("histogram_quantile(0.99" in e and "batch_latency" in e for e in exprs)
    assert any(p["type"] == "heatmap" for p in dashboard_panels(load_dashboard()))


def test_rules_file_is_prometheus_alerting_rules() -> None:
    rules = load_rules()
    assert set(rules) == {"groups"}
    alerts = []
    for g in rules["groups"]:
        assert g["name"] and g["rules"]
        for r in g["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
            alerts.append(r["alert"])
            assert balanced(r["expr"]) and metric_names(r["expr"]), r["alert"]
            if "for" in r:
                assert DURATION.match(r["for"]), r["alert"]
            assert r["labels"]["severity"] in SEVERITIES, r["alert"]
            assert r["annotations"]["summary"] and r["annotations"]["description"]
    assert len(alerts) == len(set(alerts))
    assert {
        "LogadConsumerLagGrowing",
        "LogadDeadLetterRate",
        "LogadHealthStale",
        "LogadNoModelLoaded",
    } <= set(alerts)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("logad_paused", {"logad_paused"}),
        (
            "histogram_quantile(0.99, sum by (le, instance) "
            '(rate(logad_batch_latency_seconds_bucket{job=~"$job"}[$__rate_interval])))',
            {"logad_batch_latency_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) by (partition) / on(instance) group_left(version) b > 1e3",
            {"a_total", "b"},
        ),
        ("up == 0 and on (job, instance) present_over_time(x_total[1d])", {"up", "x_total"}),
        ("rate(x[5m:1m] offset 1h) > bool Inf", {"x"}),
        ('sum without(partition)(deriv(lag{p="by (x)"}[10m]))', {"lag"}),
        ('label_values(logad_events_total{job=~"$job"}, instance)', {"logad_events_total"}),
        ("label_values(job)", set()),
        ("vector(1) * 2", set()),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exposed_names_are_sample_names() -> None:
    m = ServeMetrics()
    names = exposed_names(m.render().decode())
    assert {"logad_events_total", "logad_batch_latency_seconds_bucket", "logad_paused"} <= names
    # Labelled families have no sample until a label is set.
    assert "logad_consumer_lag" not in names


def test_an_unknown_or_misnamed_metric_is_reported() -> None:
    exposed = exposed_names(ServeMetrics().render().decode())
    # `logad_events` is the family; PromQL selects the sample `logad_events_total`.
    referenced = metric_names("rate(logad_events[5m]) + rate(logad_nonsense_total[5m]) + up")
    assert unknown_metrics(referenced, exposed) == {"logad_events", "logad_nonsense_total"}
    assert "up" in PROMETHEUS_BUILTINS


def test_every_deploy_reference_is_a_metric_serve_defines() -> None:
    """A fast, broker-free version of the live check: labelled metrics given one sample."""
    m = ServeMetrics()
    m.set_model("v1")
    m.lag.labels(partition="0").set(0)
    exposed = exposed_names(m.render().decode())
    refs = deploy_references()
    assert unknown_metrics(refs, exposed) == set()
    assert {"logad-dashboard.json", "logad-rules.yml"} == set().union(*refs.values())
    assert set(rule_exprs(load_rules()))


def test_operations_doc_lists_every_serve_metric() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    listed = set(re.findall(r"`(logad_\w+)", doc))
    for family in ServeMetrics().registry.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        assert name in listed, f"{name} is missing from docs/operations.md's metric table"
