"""A rebalance after kill -9: two serve processes in one group, 4 partitions, mixed traffic
produced live; one is killed mid-stream and the survivor takes its partitions over. No
session is lost, and no window is alerted that an uninterrupted run of the same traffic
(one serve, topics of their own) did not alert: the survivor scores no fragment of a
session whose start its previous owner (the dead process, or itself before the
rebalance) had read."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from fault_report import FaultCounts
from serve_support import (
    CreateTopic,
    MakeTopics,
    Topics,
    committed_and_end,
    covers,
    create_topics,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    start_serve_process,
    traffic,
    until_ready,
)

from schemas.scores import Score
from stream.devtools import broker

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PARTITIONS = 4
CHUNKS = 24
"""The traffic goes out in this many chunks, one every CHUNK_S: live, not a backlog."""
CHUNK_S = 0.75


async def _produce_live(bootstrap: str, topic: str, msgs: Sequence[tuple[bytes, bytes]]) -> None:
    step = -(-len(msgs) // CHUNKS)
    for i in range(0, len(msgs), step):
        await produce(bootstrap, topic, msgs[i : i + step])
        await asyncio.sleep(CHUNK_S)


def _alerted(scores: Sequence[Score]) -> set[str]:
    return {s.window_id for s in scores if s.anomalous}


async def test_kill_9_in_a_group_of_two_rebalances_without_fragment_alerts(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    create_topic: CreateTopic,
    topic_name: str,
    bundle: Path,
    tmp_path: Path,
    fault_counts: FaultCounts,
) -> None:
    topics = await serve_topics(PARTITIONS)
    base_topics = Topics.for_test(topic_name + "-base")
    await create_topics(create_topic, base_topics, PARTITIONS)
    sessions = traffic(1200, anomaly_rate=0.1, seed=51)
    ids = {s.session_id for s in sessions}
    msgs = messages(sessions)
    overrides = {"score_threads": 1, "max_batch_tokens": 1024, "commit_interval_ms": 500}

    # The uninterrupted run: one serve, the same messages to topics of their own.
    await produce(kafka_bootstrap, base_topics.input, msgs)
    async with serving(settings_for(kafka_bootstrap, base_topics, bundle, **overrides)):
        base_records = await read_topic(kafka_bootstrap, base_topics.scores, covers(ids), 180)
    baseline = scores_of(base_records)
    assert {s.session_id for s in baseline} == ids
    base_by_id = {s.window_id: s for s in baseline}

    ports = broker.free_port(), broker.free_port()
    procs: list[subprocess.Popen[bytes]] = []
    for name, port in zip(("a", "b"), ports, strict=True):
        s = settings_for(kafka_bootstrap, topics, bundle, metrics_port=port, **overrides)
        procs.append(start_serve_process(s, tmp_path, name))
    victim, survivor = procs
    try:
        for port in ports:
            await until_ready(port, 90.0)
        producing = asyncio.create_task(_produce_live(kafka_bootstrap, topics.input, msgs))
        # Mid-stream: a third of the traffic out, and the victim has scored some of it.
        some = await read_topic(kafka_bootstrap, topics.scores, lambda r: len(r) >= 200, 120)
        assert len(some) >= 200, (tmp_path / "a.log").read_text()[-3000:]
        assert not producing.done(), "the kill must land while traffic still flows"
        fault_counts.serve_rss(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        await producing
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 180)
        assert survivor.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        fault_counts.serve_rss(survivor.pid)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            await asyncio.get_running_loop().run_in_executor(None, p.wait, 60)
    assert victim.returncode == -signal.SIGKILL
    b_log = (tmp_path / "b.log").read_text()
    assert survivor.returncode == 0, b_log[-3000:]
    # The survivor took the victim's partitions over: a rebalance after the kill.
    assigned = [
        line["partitions"]
        for line in map(orjson.loads, (ln for ln in b_log.splitlines() if ln[:1] == "{"))
        if line.get("event") == "partitions_assigned"
    ]
    assert assigned[-1] == list(range(PARTITIONS)), assigned

    scores = scores_of(records)
    fault_counts.record_scores(ids, scores)
    dlq = await read_topic(kafka_bootstrap, topics.dlq, lambda r: False, 2)
    fault_counts.dead_lettered = len(dlq)
    assert {s.session_id for s in scores} == ids, "no session lost"
    fragments = {s.window_id for s in scores} - set(base_by_id)
    wrong = {w for w in _alerted(scores) if w not in _alerted(baseline)}
    print(
        f"rebalance: produced={len(ids)} scored={fault_counts.scored} windows={len(scores)} "
        f"duplicates={fault_counts.duplicates} fragments={len(fragments)} "
        f"alerts={len(_alerted(scores))} baseline_alerts={len(_alerted(baseline))}"
    )
    assert not wrong, (
        f"{len(wrong)} alerts the uninterrupted run did not raise "
        f"({len(wrong & fragments)} on fragments), e.g. "
        f"{[s for s in scores if s.window_id in wrong][:3]}"
    )
    committed, end = await committed_and_end(
        kafka_bootstrap, topics.group, topics.input, PARTITIONS
    )
    assert committed == end
