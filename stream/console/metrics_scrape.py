"""serve's /metrics as the console reads it: a `Snapshot` of the numbers the pipeline panel
shows, parsed with prometheus_client's text parser, and per-second rates between two."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

COUNTERS = {
    "events": "logad_events_total",
    "windows": "logad_windows_scored_total",
    "alerts": "logad_alerts_total",
    "dlq": "logad_dlq_total",
}
"""Counter samples the panel turns into rates: name in the panel -> sample name."""


@dataclass(frozen=True)
class Snapshot:
    """One scrape: when (seconds), the counters, and the gauges shown as they are."""

    at: float
    counters: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)
    """Consumer lag per input partition (label `partition`)."""
    model_version: str | None = None
    threshold: float | None = None
    ready: bool | None = None
    backlog: float | None = None


def parse_metrics(text: str, at: float) -> Snapshot:
    """The Snapshot of a Prometheus text exposition (ValueError when it does not parse)."""
    counters: dict[str, float] = {}
    lag: dict[str, float] = {}
    version: str | None = None
    gauges: dict[str, float] = {}
    wanted = {v: k for k, v in COUNTERS.items()}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in wanted:
                counters[wanted[s.name]] = s.value
            elif s.name == "logad_consumer_lag":
                lag[s.labels.get("partition", "?")] = s.value
            elif s.name == "logad_model_info" and s.value == 1:
                version = s.labels.get("version")
            elif s.name in ("logad_threshold", "logad_ready", "logad_backlog_windows"):
                gauges[s.name] = s.value
    ready = gauges.get("logad_ready")
    return Snapshot(
        at=at,
        counters=counters,
        lag=dict(sorted(lag.items(), key=lambda kv: _partition_order(kv[0]))),
        model_version=version,
        threshold=gauges.get("logad_threshold"),
        ready=None if ready is None else ready == 1,
        backlog=gauges.get("logad_backlog_windows"),
    )


def _partition_order(p: str) -> tuple[int, str]:
    return (int(p), p) if p.isdigit() else (1 << 31, p)


def rates(before: Snapshot, after: Snapshot) -> dict[str, float | None]:
    """Per-second rate of each counter between two scrapes; None where a counter is
    missing from either, or went down (serve restarted: the counters began again)."""
    dt = after.at - before.at
    out: dict[str, float | None] = {}
    for name in COUNTERS:
        a, b = before.counters.get(name), after.counters.get(name)
        if a is None or b is None or dt <= 0 or b < a or not math.isfinite(b - a):
            out[name] = None
        else:
            out[name] = (b - a) / dt
    return out
