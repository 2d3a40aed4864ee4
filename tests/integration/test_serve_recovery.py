"""No data lost: kill -9 mid-stream and restart; a group member leaving mid-stream."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import defaultdict
from pathlib import Path

import pytest
from fault_report import FaultCounts
from serve_support import (
    MakeTopics,
    committed_and_end,
    covers,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    start_serve_process,
    traffic,
    until_counter,
    until_ready,
    window_sizes,
)

from stream.devtools import broker


@pytest.mark.slow
@pytest.mark.fault
async def test_kill_9_mid_stream_then_restart_loses_no_session(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
    tmp_path: Path,
    fault_counts: FaultCounts,
) -> None:
    topics = await serve_topics(2)
    sessions = traffic(400, anomaly_rate=0.1, seed=21)
    ids = {s.session_id for s in sessions}
    await produce(kafka_bootstrap, topics.input, messages(sessions))
    # Tiny batches and slow commits, so the kill lands with work in flight.
    settings = settings_for(
        kafka_bootstrap,
        topics,
        bundle,
        idle_timeout_ms=5_000,
        max_batch_tokens=512,
        commit_interval_ms=1_000,
        score_threads=1,
    )

    first = start_serve_process(settings, tmp_path, "first")
    try:
        some = await read_topic(kafka_bootstrap, topics.scores, lambda r: len(r) >= 60, 120)
        assert len(some) >= 60, (tmp_path / "first.log").read_text()[-3000:]
        fault_counts.serve_rss(first.pid)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    second = start_serve_process(settings, tmp_path, "second")
    try:
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 120)
        fault_counts.serve_rss(second.pid)
    finally:
        second.send_signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, second.wait, 60)
    log = (tmp_path / "second.log").read_text()
    assert rc == 0, log[-3000:]

    scores = scores_of(records)
    fault_counts.record_scores(ids, scores)
    fault_counts.dead_lettered = len(await read_topic(kafka_bootstrap, topics.dlq, bool, 2))
    assert {s.session_id for s in scores} == ids, "no session missing after kill -9"
    assert fault_counts.produced == fault_counts.scored == len(ids)
    # A re-scored window is the same window: one window id per session, whoever scored it.
    windows_of: dict[str, set[str]] = defaultdict(set)
    for s in scores:
        windows_of[s.session_id].add(s.window_id)
    assert all(len(w) == 1 for w in windows_of.values())
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 2)
    assert committed == end


@pytest.mark.slow
@pytest.mark.parametrize("hand_back", [False, True], ids=["flush", "hand_back"])
async def test_group_member_leaving_mid_stream_loses_no_session(
    hand_back: bool,
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
) -> None:
    topics = await serve_topics(4)
    first_half = traffic(200, anomaly_rate=0.1, seed=31)
    # The second half starts where the first ends, so some sessions straddle the rebalance.
    second_half = traffic(200, anomaly_rate=0.1, seed=32, start_ms=first_half[-1].events[0].ts)
    ids = {s.session_id for s in first_half + second_half}
    msgs = messages(first_half + second_half)
    cut = len(msgs) // 2
    port_a, port_b = broker.free_port(), broker.free_port()
    # With hand_back, the idle flush (wall clock) must not cut sessions either: quiet
    # partitions flush after 20 s, not 2, and a 3 s gap closes windows (so B scores some)
    # long before that.
    quiet = {"hand_back": True, "idle_timeout_ms": 20_000, "gap_ms": 3_000} if hand_back else {}
    settings_a = settings_for(kafka_bootstrap, topics, bundle, metrics_port=port_a, **quiet)
    settings_b = settings_for(kafka_bootstrap, topics, bundle, metrics_port=port_b, **quiet)

    async with serving(settings_a) as a_task:
        async with serving(settings_b):
            await until_ready(port_a)
            await until_ready(port_b)
            await produce(kafka_bootstrap, topics.input, msgs[:cut])
            await until_counter(port_a, "logad_windows_scored_total", 1)
            await until_counter(port_b, "logad_windows_scored_total", 1)  # B took part
        # B has left the group (flushed, scored and committed its partitions); A takes over.
        await produce(kafka_bootstrap, topics.input, msgs[cut:])
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 120)
        assert not a_task.done()

    assert {s.session_id for s in scores_of(records)} == ids, "no session missing"
    if hand_back:
        # Open windows went to the next reader whole: a session with no silence as long as
        # the gap is one window of all its events (longer silences split it by design).
        gap = settings_a.sessionizer.gap_ms
        n_events = {
            s.session_id: len(s.events)
            for s in first_half + second_half
            if all(b.ts - a.ts < gap for a, b in itertools.pairwise(s.events))
        }
        windows = window_sizes(records)
        split = {
            sid: windows[sid] for sid, n in n_events.items() if list(windows[sid].values()) != [n]
        }
        assert not split, f"{len(split)} sessions not scored whole, e.g. {list(split.items())[:3]}"
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 4)
    assert committed == end
