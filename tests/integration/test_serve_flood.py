"""A session-id flood: a serve process fed far more distinct one-event sessions than
`max_open_sessions` holds. The bound flushes the least recently active ones (emitted,
never dropped), so every session is scored and the process's peak RSS stays bounded."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from fault_report import FaultCounts
from serve_support import (
    DAY_MS,
    MakeTopics,
    committed_and_end,
    covers,
    produce,
    read_topic,
    scores_of,
    settings_for,
    start_serve_process,
)

from schemas.events import LogEvent

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SESSIONS = 120_000
MAX_OPEN = 50_000
"""Below SESSIONS: the open-session bound flushes most of the flood."""
RSS_BOUND_MB = 1536
"""Peak RSS allowed to the serve process (torch and the tiny model included)."""


async def test_a_session_id_flood_scores_every_session_within_an_rss_bound(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
    tmp_path: Path,
    fault_counts: FaultCounts,
) -> None:
    topics = await serve_topics(2)
    ids = [f"flood-{i:06d}" for i in range(SESSIONS)]
    # Every event within a second of event time: none closes by the gap, so the flood piles
    # up open sessions until the bound (and the idle flush, at the end) lets them go.
    msgs = [
        (sid.encode(), LogEvent(DAY_MS + i % 1000, "svc", sid, "gateway.request.received").encode())
        for i, sid in enumerate(ids)
    ]
    settings = settings_for(
        kafka_bootstrap, topics, bundle, max_open_sessions=MAX_OPEN, score_threads=1
    )
    serve = start_serve_process(settings, tmp_path, "serve")
    try:
        await produce(kafka_bootstrap, topics.input, msgs)
        records = await read_topic(kafka_bootstrap, topics.scores, covers(set(ids)), 240)
        assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        fault_counts.serve_rss(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, serve.wait, 60)
    assert rc == 0, (tmp_path / "serve.log").read_text()[-3000:]

    scores = scores_of(records)
    fault_counts.record_scores(ids, scores)
    fault_counts.dead_lettered = len(await read_topic(kafka_bootstrap, topics.dlq, bool, 2))
    assert fault_counts.produced == fault_counts.scored == SESSIONS, "every session scored"
    assert all(s.n_events == 1 for s in scores)
    peak = fault_counts.peak_rss_mb
    assert peak is not None and peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MiB"
    committed, end = await committed_and_end(kafka_bootstrap, topics.group, topics.input, 2)
    assert committed == end
