"""bench/stream_e2e.py's pure parts: the low-repetition traffic, the median run, the ratios,
the latency figures."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from bench.stream_e2e import (
    head_sessions,
    median_run,
    percentiles_ms,
    ratios,
    repetition,
    session_latencies_ms,
    traffic,
    varied,
)
from stream.devtools.simulate import interleave


def test_varied_traffic_repeats_far_less_and_keeps_each_session_in_order() -> None:
    sims = traffic(3, 20_000, 10.0)
    out = varied(sims, 3)
    assert [s.session_id for s in out] == [s.session_id for s in sims]
    for before, after in zip(sims, out, strict=True):
        assert 1 <= len(after.events) - len(before.events) <= 4
        assert {e.event_id for e in after.events} == {e.event_id for e in before.events}
        ts = [e.ts for e in after.events]
        assert ts == sorted(ts)
    seqs = [tuple(e.event_id for e in s.events) for s in sims]
    new = [tuple(e.event_id for e in s.events) for s in out]
    assert repetition(seqs) > 0.5 and repetition(new) < 0.2
    # What the broker gets, per session, is what `varied` made (interleaving keeps order).
    streamed: dict[str, list[str | None]] = {}
    for e in interleave(out):
        streamed.setdefault(e.session_id, []).append(e.event_id)
    assert all(tuple(streamed[s.session_id]) == seq for s, seq in zip(out, new, strict=True))


def test_median_run_and_the_ratios_of_side_by_side_repeats() -> None:
    runs = [{"events_per_s": v, "i": i} for i, v in enumerate([30, 10, 20, 40])]
    assert median_run(runs) == {"events_per_s": 20, "i": 2, "events_per_s_runs": [30, 10, 20, 40]}
    repeats = [
        {"serve_no_cache": 50, "scorer_only": 100, "serve_no_cache_processes": 90},
        {"serve_no_cache": 60, "scorer_only": 80, "serve_no_cache_processes": 70},
        {"serve_no_cache": 10, "scorer_only": 100, "serve_no_cache_processes": 95},
    ]
    got = ratios({"no_cache_repeats": repeats})
    assert got == {
        "serve_no_cache_vs_scorer_only": 0.5,
        "serve_no_cache_processes_vs_scorer_only": 0.9,
    }
    assert ratios({}) == {}


def test_latency_is_from_a_sessions_last_event_to_its_last_score() -> None:
    def event(sid: str, ts: int) -> SimpleNamespace:
        return SimpleNamespace(key=sid.encode(), timestamp=ts)

    def score(sid: str, ts: int) -> SimpleNamespace:
        return SimpleNamespace(value=orjson.dumps({"session_id": sid}), timestamp=ts)

    inputs = [event("a", 100), event("b", 150), event("a", 300)]
    scores = [score("a", 250), score("b", 1150), score("a", 700)]  # a's two windows
    assert sorted(session_latencies_ms(inputs, scores)) == [400.0, 1000.0]


def test_percentiles_are_nearest_rank() -> None:
    got = percentiles_ms([float(x) for x in range(100, 0, -1)])
    assert got == {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert percentiles_ms([7.0])["p99_ms"] == 7.0
    with pytest.raises(ValueError):
        percentiles_ms([])


def test_head_sessions_hold_at_least_the_events_asked_for() -> None:
    sims = traffic(1, 5_000, 10.0)
    head = head_sessions(sims, 1_000)
    n = sum(len(s.events) for s in head)
    assert n >= 1_000 and n - len(head[-1].events) < 1_000
    assert head == sims[: len(head)]
    assert head_sessions(sims, 10**9) == sims
