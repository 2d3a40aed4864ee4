"""The score memo: cached output equals uncached scoring, a model switch never serves the
old model's scores, window fields always come from the window, and it is bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence

import orjson
import pytest
import torch

from schemas.scores import Score
from schemas.vocab import Vocab
from schemas.windows import Window
from stream.serve.batcher import Batcher
from stream.serve.kafka_io import Acks
from stream.serve.metrics import ServeMetrics
from stream.serve.score_cache import ScoreCache
from stream.serve.worker import ScoringWorker
from tests.fakes import FakeScorer, event_count
from trainer.model import PRESETS, bert_config, build_model
from trainer.scoring import ScoringStrategy, WindowScorer

EVENTS = [f"E{i}" for i in range(20)]


def scorer(version: str, seed: int, strategy: ScoringStrategy) -> WindowScorer:
    vocab = Vocab.build([EVENTS])
    torch.manual_seed(seed)
    model = build_model(bert_config(PRESETS["tiny"], len(vocab)))
    return WindowScorer(model, vocab, strategy, 3.0, version, torch.device("cpu"))


def win(i: int, events: Sequence[str], label: int | None = None, late: bool = False) -> Window:
    return Window.build(
        f"s{i}", i % 3, tuple(events), 1_000 + i, 2_000 + i, 0, i, i + 5, late, label
    )


def traffic() -> list[Window]:
    """Repetitive windows (three sequences, one with an unknown event), plus unique ones."""
    seqs = [EVENTS[:6], EVENTS[3:15], ["E1", "NEVER_SEEN", "E2", "E3"]]
    out = [win(i, seqs[i % 3], label=i % 2, late=i % 5 == 0) for i in range(12)]
    out += [win(100 + i, EVENTS[i : i + 4 + i]) for i in range(5)]
    return out


def same_output(a: Score, b: Score) -> bool:
    return (
        math.isclose(a.score, b.score, rel_tol=1e-4, abs_tol=1e-5)
        and a.anomalous == b.anomalous
        and a.threshold == b.threshold
        and [(s.position, s.event_id) for s in a.surprising]
        == [(s.position, s.event_id) for s in b.surprising]
        and all(
            math.isclose(x.nll, y.nll, rel_tol=1e-4, abs_tol=1e-5)
            for x, y in zip(a.surprising, b.surprising, strict=True)
        )
    )


def window_fields(s: Score) -> tuple[object, ...]:
    return (s.window_id, s.session_id, s.window_index, s.first_ts, s.last_ts, s.n_events,
            s.late, s.label, s.scored_at, s.model_version)  # fmt: skip


def test_cached_output_equals_uncached_scoring(one_thread: None) -> None:
    sc = scorer("v1", 0, ScoringStrategy())
    windows = traffic()
    expected = sc.score_windows(windows, 7)
    cache = ScoreCache(100)
    # In batches, so later batches hit entries of earlier ones.
    got = [s for i in range(0, len(windows), 5) for s in cache.score(sc, windows[i : i + 5], 7)]
    assert cache.hits > 0 and cache.misses == 3 + 5  # three repeated sequences, five unique
    for w, e, g in zip(windows, expected, got, strict=True):
        assert window_fields(g) == window_fields(e)
        assert g.window_id == w.window_id and g.label == w.label and g.late == w.late
        assert same_output(g, e), (w.events, e.score, g.score)
    # A second pass is all hits, and equal again; scored_at is the new call's time.
    again = cache.score(sc, windows, 9)
    assert cache.misses == 8 and all(s.scored_at == 9 for s in again)
    assert all(same_output(a, e) for a, e in zip(again, expected, strict=True))


def test_a_model_switch_never_returns_the_old_models_scores(one_thread: None) -> None:
    old = scorer("v1", 0, ScoringStrategy())
    new = scorer("v2", 1, ScoringStrategy())
    windows = traffic()
    cache = ScoreCache(100)
    cache.score(old, windows, 0)
    assert len(cache) == 8
    got = cache.score(new, windows, 0)
    expected = new.score_windows(windows, 0)
    assert all(s.model_version == "v2" for s in got)
    assert all(same_output(g, e) for g, e in zip(got, expected, strict=True))
    before = old.score_windows(windows, 0)
    assert any(not same_output(g, b) for g, b in zip(got, before, strict=True))
    assert len(cache) == 8  # the old model's entries were dropped, not kept beside


def test_repeats_in_one_batch_are_scored_once_and_the_lru_is_bounded() -> None:
    sc, cache = FakeScorer("v1", threshold=2.5, rule=event_count), ScoreCache(2)
    a, b, c = ("A",), ("A", "B"), ("A", "B", "C")
    out = cache.score(sc, [win(0, a), win(1, b), win(2, a), win(3, a)], 5)
    assert sc.calls == [2] and (cache.hits, cache.misses) == (2, 2)
    assert [s.session_id for s in out] == ["s0", "s1", "s2", "s3"]
    assert [s.score for s in out] == [1.0, 2.0, 1.0, 1.0]
    cache.score(sc, [win(4, c)], 5)  # evicts the least recently used: b
    assert len(cache) == 2
    cache.score(sc, [win(5, a), win(6, b)], 5)
    assert sc.calls == [2, 1, 1]  # a was still cached, b was scored again
    assert cache.hit_rate == pytest.approx(3 / 7)
    with pytest.raises(ValueError):
        ScoreCache(0)


async def test_worker_counts_cache_hits_in_its_metrics() -> None:
    sent: list[tuple[str, dict[str, object]]] = []

    async def send(
        topic: str, key: bytes | None, value: bytes | None, headers: object
    ) -> asyncio.Future[None]:
        assert value is not None
        sent.append((topic, orjson.loads(value)))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    metrics, acks, sc = ServeMetrics(), Acks(), FakeScorer("v1", threshold=2.5, rule=event_count)
    worker = ScoringWorker(
        sc,
        Batcher(max_tokens=4096, max_wait_ms=0),
        send,  # type: ignore[arg-type]
        acks,
        scores_topic="scores",
        alerts_topic="alerts",
        on_done=lambda _w: None,
        metrics=metrics,
        cache=ScoreCache(10),
    )
    worker.submit([win(i, ("A", "B")) for i in range(6)], now_ms=0)
    worker.stop()
    await worker.run()
    await acks.wait_until(lambda: worker.backlog == 0)
    assert sorted(str(v["session_id"]) for _t, v in sent) == [f"s{i}" for i in range(6)]
    assert sum(sc.calls) == 1
    text = metrics.render().decode()
    assert "logad_score_cache_hits_total 5.0" in text
    assert "logad_score_cache_misses_total 1.0" in text


def test_window_fields_never_come_from_the_cache() -> None:
    sc, cache = FakeScorer("v1", threshold=2.5, rule=event_count), ScoreCache(10)
    first = win(0, ("A", "B"), label=1, late=True)
    second = dataclasses.replace(win(1, ("A", "B")), index=4)
    s1, s2 = cache.score(sc, [first], 1) + cache.score(sc, [second], 2)
    assert window_fields(s1) == (first.window_id, "s0", 0, 1_000, 2_000, 2, True, 1, 1, "v1")
    assert window_fields(s2) == (second.window_id, "s1", 4, 1_001, 2_001, 2, False, None, 2, "v1")
    assert sc.calls == [1]


def test_ended_and_cut_windows_with_the_same_events_do_not_share_an_entry() -> None:
    class Recording:
        model_version = "v1"

        def __init__(self) -> None:
            self.seen: list[bool] = []

        def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
            self.seen += [w.ended for w in windows]
            return [
                Score(
                    window_id=w.window_id,
                    session_id=w.session_id,
                    window_index=w.index,
                    model_version="v1",
                    score=1.0 if w.ended else 2.0,
                    threshold=1.5,
                    anomalous=not w.ended,
                    n_events=len(w.events),
                    first_ts=w.first_ts,
                    last_ts=w.last_ts,
                    scored_at=now_ms,
                )
                for w in windows
            ]

    scorer, cache = Recording(), ScoreCache(100)
    events = ("A", "B")
    ended = Window.build("s1", 0, events, 1, 2, 0, 0, 1)
    cut = Window.build("s2", 0, events, 1, 2, 0, 2, 3, ended=False)
    first = cache.score(scorer, [ended, cut], now_ms=5)
    again = cache.score(scorer, [cut, ended], now_ms=6)
    assert scorer.seen == [True, False]  # each content scored once
    assert [s.score for s in first] == [1.0, 2.0]
    assert [s.score for s in again] == [2.0, 1.0]
