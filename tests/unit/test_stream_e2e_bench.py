"""bench/stream_e2e.py's pure parts: the low-repetition traffic, the median run, the ratios."""

from __future__ import annotations

from bench.stream_e2e import median_run, ratios, repetition, traffic, varied
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
