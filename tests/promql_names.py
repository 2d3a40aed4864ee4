"""The metric names that deploy/'s Grafana dashboard and Prometheus rules query.

`metric_names` takes a PromQL expression apart far enough to find its series names: it drops
Grafana variables, strings, label matchers, range and subquery brackets, and the label lists
of `by`/`without`/`on`/`ignoring`/`group_*`; what is left that is an identifier, not called
like a function and not a keyword, is a metric name. It is no PromQL parser (promtool is not
available here), but it reads everything deploy/ writes, and the unit tests hold it to that.

Names are compared with a scrape's sample names as they are (`logad_events_total`,
`logad_batch_latency_seconds_bucket`), not folded to their family: PromQL selects samples by
that name, so a query for `logad_events` would find nothing although the family is called so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "logad-dashboard.json"
RULES = REPO / "deploy" / "prometheus" / "logad-rules.yml"

PROMETHEUS_BUILTINS = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)
"""Series Prometheus writes itself for every target: never in logad's /metrics."""

KEYWORDS = frozenset(
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
        "group_left", "group_right", "atan2", "inf", "nan", "start", "end",
    }
)  # fmt: skip

_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# Grafana's `label_values(selector, label)`: the second argument is a label, not a series.
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(([^,()]*(?:\{[^}]*\})?)\s*(?:,[^)]*)?\)")
# A whole identifier (not the tail of a number like 1e3 or of a longer name), not called.
_IDENT = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression (or a Grafana variable query) selects."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VAR.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _LABEL_VALUES.sub(lambda m: m.group(1) if m.group(0).count(",") else " ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {n for n in _IDENT.findall(text) if n.lower() not in KEYWORDS}


def _panels(panels: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every panel, those folded into a collapsed row too."""
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def dashboard_panels(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(_panels(dashboard.get("panels", [])))


def dashboard_exprs(dashboard: Mapping[str, Any]) -> list[str]:
    """Each panel target's `expr`, and each query variable's query."""
    exprs = [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            exprs.append(q.get("query", "") if isinstance(q, Mapping) else str(q))
    return exprs


def rule_exprs(rules: Mapping[str, Any]) -> list[str]:
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def load_rules(path: Path = RULES) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def deploy_references() -> dict[str, set[str]]:
    """Metric name -> the deploy files that query it."""
    out: dict[str, set[str]] = {}
    sources = {
        DASHBOARD.name: dashboard_exprs(load_dashboard()),
        RULES.name: rule_exprs(load_rules()),
    }
    for where, exprs in sources.items():
        for expr in exprs:
            for name in metric_names(expr):
                out.setdefault(name, set()).add(where)
    return out


def exposed_names(exposition: str) -> set[str]:
    """The sample names in a /metrics reply (Prometheus text format)."""
    return {s.name for fam in text_string_to_metric_families(exposition) for s in fam.samples}


def unknown_metrics(referenced: Iterable[str], exposed: set[str]) -> set[str]:
    """Names queried that the scrape does not have and Prometheus does not make itself."""
    return set(referenced) - exposed - PROMETHEUS_BUILTINS
