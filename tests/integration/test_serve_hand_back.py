"""A clean restart while sessions are open: flushed (the default) or handed back.

Half the traffic is consumed, serve stops with sessions still open, the other half is
produced, and serve starts again. Flushing scores each open session as a cut window and
its rest as a second, continuation window; `hand_back` leaves the open windows to the next
reader, so every session is scored as one whole window.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import (
    MakeTopics,
    covers,
    messages,
    produce,
    read_topic,
    serving,
    settings_for,
    traffic,
    until_counter,
    window_sizes,
)

from stream.devtools import broker


@pytest.mark.slow
@pytest.mark.parametrize("hand_back", [False, True], ids=["flush", "hand_back"])
async def test_restart_with_open_sessions(
    hand_back: bool,
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
) -> None:
    topics = await serve_topics(2)
    sessions = traffic(200, anomaly_rate=0.0, seed=5)
    n_events = {s.session_id: len(s.events) for s in sessions}
    msgs = messages(sessions)
    half = len(msgs) // 2
    await produce(kafka_bootstrap, topics.input, msgs[:half])

    port = broker.free_port()
    # No idle flush in the first run: the sessions open at the stop stay open until then.
    first = settings_for(
        kafka_bootstrap, topics, bundle, hand_back=hand_back, idle_timeout_ms=600_000,
        metrics_port=port, metrics_host="127.0.0.1",
    )  # fmt: skip
    async with serving(first):
        await until_counter(port, "logad_events_total", half)

    await produce(kafka_bootstrap, topics.input, msgs[half:])
    second = settings_for(kafka_bootstrap, topics, bundle, hand_back=hand_back)
    async with serving(second):
        records = await read_topic(kafka_bootstrap, topics.scores, covers(set(n_events)), 120)

    windows = window_sizes(records)
    assert set(windows) == set(n_events), "every session scored"
    split = {sid for sid, w in windows.items() if len(w) > 1}
    if hand_back:
        assert not split, f"{len(split)} sessions scored in pieces"
        assert all(list(w.values()) == [n_events[sid]] for sid, w in windows.items())
    else:
        # The setup does stop mid-session: the open ones became a cut and a continuation.
        assert split
        assert all(sum(windows[sid].values()) == n_events[sid] for sid in split)
