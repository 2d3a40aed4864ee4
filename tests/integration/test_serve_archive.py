"""`logad serve --archive-dir`: every scored window lands in the daily archive, crash-safely."""

from __future__ import annotations

import asyncio
import signal
from datetime import date, timedelta
from pathlib import Path

import pytest
from serve_support import (
    DAY,
    DAY_MS,
    MakeTopics,
    WindowKey,
    covers,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    start_serve_process,
    traffic,
)
from structlog.testing import capture_logs

from schemas.daily_files import daily_file_name, find_daily_files, is_complete, read_sessions
from schemas.scores import Score
from schemas.sessions import Session
from stream.serve.archive import DAY_MS as ONE_DAY_MS
from stream.serve.archive import utc_day


def _archived(archive: Path) -> dict[WindowKey, list[Session]]:
    out: dict[WindowKey, list[Session]] = {}
    for f in find_daily_files([archive]):
        for s in read_sessions(f.path):
            assert s.end_ts is not None and f.day == utc_day(s.end_ts), f.path.name
            out.setdefault((s.session_id, s.start_ts, s.end_ts), []).append(s)
    return out


def _key(score: Score) -> WindowKey:
    return (score.session_id, score.first_ts, score.last_ts)


@pytest.mark.slow
async def test_every_scored_window_is_archived_with_its_score(
    kafka_bootstrap: str, serve_topics: MakeTopics, bundle: Path, tmp_path: Path
) -> None:
    topics = await serve_topics(2)
    # Traffic across midnight into a second day, 20 minutes past it: day one is over.
    sessions = traffic(150, anomaly_rate=0.2, seed=51, start_ms=DAY_MS + ONE_DAY_MS - 60_000)
    sessions += traffic(30, anomaly_rate=0.2, seed=52, start_ms=DAY_MS + ONE_DAY_MS + 1_200_000)
    ids = {s.session_id for s in sessions}
    events = {s.session_id: tuple(e.event_id for e in s.events) for s in sessions}
    archive = tmp_path / "archive"
    settings = settings_for(kafka_bootstrap, topics, bundle, archive_dir=archive)

    async with serving(settings):
        await produce(kafka_bootstrap, topics.input, messages(sessions))
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids), 90)

    scores = {_key(s): s for s in scores_of(records)}
    archived = _archived(archive)
    assert set(archived) == set(scores), "every scored window archived, nothing else"
    for key, [line] in archived.items():  # exactly once each
        score = scores[key]
        assert (line.score, line.alerted, line.label) == (score.score, score.anomalous, score.label)
        assert line.events == events[line.session_id][: len(line.events)]
        assert len(line.events) == score.n_events
    assert sum(bool(s.alerted) for [s] in archived.values()) > 0
    day1, day2 = DAY, DAY + timedelta(days=1)
    assert {f.day for f in find_daily_files([archive])} == {day1, day2}
    # The watermark passed the end of day one (plus the gap), not that of day two.
    assert is_complete(archive / daily_file_name(day1))
    assert not is_complete(archive / daily_file_name(day2))


@pytest.mark.slow
async def test_kill_9_while_appending_loses_no_archived_line(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
    tmp_path: Path,
) -> None:
    topics = await serve_topics(2)
    sessions = traffic(400, anomaly_rate=0.1, seed=61)
    ids = {s.session_id for s in sessions}
    await produce(kafka_bootstrap, topics.input, messages(sessions))
    archive = tmp_path / "archive"
    day_file = archive / daily_file_name(DAY)
    # Tiny batches, so the kill lands with appends going on.
    settings = settings_for(
        kafka_bootstrap,
        topics,
        bundle,
        archive_dir=archive,
        max_batch_tokens=512,
        commit_interval_ms=1_000,
        score_threads=1,
    )

    first = start_serve_process(settings, tmp_path, "first")
    try:
        before = await read_topic(kafka_bootstrap, topics.scores, lambda r: len(r) >= 60, 120)
        assert len(before) >= 60, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    # Every score published before the kill was appended before it was sent.
    archived = _archived(archive)
    assert {_key(s) for s in scores_of(before)} <= set(archived)
    data = day_file.read_bytes()
    assert len(archived) == sum(map(len, archived.values())) == data.count(b"\n")
    # What a kill in the middle of os.write leaves: part of a line. The reader skips it
    # and says so; the restarted serve cuts it off before appending (no glued lines).
    with day_file.open("ab") as fh:
        fh.write(data[: data.index(b"\n")][:40])
    with capture_logs() as logs:
        assert [s.session_id for s in read_sessions(day_file)] == [
            s.session_id for v in archived.values() for s in v
        ]
    assert [e["event"] for e in logs] == ["partial_last_line_skipped"]

    second = start_serve_process(settings, tmp_path, "second")
    try:
        await read_topic(kafka_bootstrap, topics.scores, covers(ids), 120)
    finally:
        second.send_signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, second.wait, 60)
    assert rc == 0, (tmp_path / "second.log").read_text()[-3000:]

    after = _archived(archive)
    assert day_file.read_bytes().endswith(b"\n")
    assert set(archived) <= set(after), "nothing archived before the kill is lost"
    assert {sid for sid, _, _ in after} == ids
    # At least once: windows scored but not committed before the kill are archived again.
    assert sum(map(len, after.values())) == day_file.read_bytes().count(b"\n")
    assert not is_complete(day_file)  # the watermark never passed the day's end
    assert date.fromisoformat(day_file.name[18:28]) == DAY
