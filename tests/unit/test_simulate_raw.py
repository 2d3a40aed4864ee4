"""The simulator's raw output: Spring Boot console lines that `logad parse` reads back into
the simulator's own sessions, with several phrasings per event that mine apart."""

from __future__ import annotations

import random
import re
import string
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from schemas.daily_files import read_sessions
from schemas.events import LogEvent
from schemas.templates import read_templates
from stream.cli import main
from stream.devtools.simulate import (
    ANOMALY_KINDS,
    TEMPLATE_BY_ID,
    TEMPLATES,
    SimSession,
    generate_sessions,
    simulate_day,
    simulate_session,
)
from stream.devtools.simulate.outputs import messages, raw_file_name
from stream.devtools.simulate.rawlog import merged_lines, raw_lines
from stream.devtools.simulate.settings import LiveSettings, TrafficSettings
from stream.devtools.simulate.templates import BUILDS
from stream.jobs.log_formats import line_format
from trainer.mining import DEFAULT_PARAMS, TemplateMiner

DAY = date(2024, 2, 28)
DAY_MS = int(datetime(2024, 2, 28, tzinfo=UTC).timestamp() * 1000)
HEX16 = re.compile(r"[0-9a-f]{16}")
SPRING_BOOT = line_format("spring-boot", None, None)


@pytest.fixture(scope="module")
def day() -> list[SimSession]:
    """A day with every anomaly kind: enough sessions for every (event, phrasing) pair of
    normal traffic."""
    return simulate_day(random.Random("raw"), DAY_MS, 2_500, 0.1)


def _pairs(sessions: list[SimSession]) -> Counter[tuple[str, int]]:
    return Counter(
        (e.event_id, k) for s in sessions for e, k in zip(s.events, s.phrasings, strict=True)
    )


def test_every_event_has_several_phrasings_and_each_is_logged(day: list[SimSession]) -> None:
    for t in TEMPLATES:
        assert 2 <= len(t.texts) <= 3, t.event_id
        assert len(set(t.texts)) == len(t.texts), t.event_id
    used = _pairs(day)
    normal = {(t.event_id, k) for t in TEMPLATES if t.normal for k in range(len(t.texts))}
    assert normal <= set(used)
    # Anomaly-only events: every phrasing formats too.
    for kind in ANOMALY_KINDS:
        rng = random.Random(kind)
        used += _pairs([simulate_session(rng, DAY_MS, kind) for _ in range(150)])
    assert set(used) == {(t.event_id, k) for t in TEMPLATES for k in range(len(t.texts))}
    # Every phrasing fills all its fields: no braces left in a message.
    assert all(e.message and "{" not in e.message for s in day for e in s.events)


def test_a_session_meets_one_build_of_each_service(day: list[SimSession]) -> None:
    builds: Counter[int] = Counter()
    for s in day:
        by_service: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for e, k in zip(s.events, s.phrasings, strict=True):
            by_service[e.service].append((k, len(TEMPLATE_BY_ID[e.event_id].texts)))
        for phrasings in by_service.values():
            fits = [b for b in range(BUILDS) if all(k == b % n for k, n in phrasings)]
            assert fits, (s.session_id, phrasings)
            if len(fits) == 1:
                builds[fits[0]] += 1
    assert min(builds.values()) > 0.25 * sum(builds.values())  # builds drawn evenly


def test_raw_lines_parse_with_the_spring_boot_format(day: list[SimSession]) -> None:
    for s in day[:500]:
        lines = raw_lines(s)
        assert len(lines) == len(s.events)
        assert HEX16.fullmatch(s.trace_id)
        for (ts, line), e in zip(lines, s.events, strict=True):
            parsed = SPRING_BOOT.parse(line)
            assert parsed is not None, line
            assert parsed.fields["trace_id"] == s.trace_id
            assert HEX16.fullmatch(parsed.fields["span_id"])
            assert parsed.fields["app"] == e.service
            assert parsed.fields["level"] == e.level
            assert parsed.ts == ts == e.ts
            assert parsed.message == e.message
    # The root span's id is the trace id; the other services log under spans of their own.
    request = next(s for s in day if s.session_id.startswith("req-"))
    spans: dict[str, set[str]] = defaultdict(set)
    for _, text in raw_lines(request):
        p = SPRING_BOOT.parse(text)
        assert p is not None
        spans[p.fields["app"]].add(p.fields["span_id"])
    assert spans.pop("api-gateway") == {request.trace_id}
    assert len(spans) == 2 and all(
        len(v) == 1 and request.trace_id not in v for v in spans.values()
    )


def test_phrasings_mine_into_templates_of_one_event_and_phrasing_each(
    day: list[SimSession],
) -> None:
    miner = TemplateMiner(DEFAULT_PARAMS)
    sample = day[:1_500]
    for s in sample:
        for e in s.events:
            miner.mine(e.message or "")
    pairs_of: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for s in sample:
        for e, k in zip(s.events, s.phrasings, strict=True):
            pairs_of[miner.match(e.message or "") or "-"].add((e.event_id, k))
    assert "-" not in pairs_of
    assert all(len(p) == 1 for p in pairs_of.values()), {
        t: p for t, p in pairs_of.items() if len(p) > 1
    }


def _cli_days(tmp_path: Path, raw: str) -> list[str]:
    return [
        "simulate",
        "--days-dir",
        str(tmp_path / "days"),
        "--days",
        "2",
        "--sessions-per-day",
        "150",
        "--anomaly-rate",
        "0.2",
        "--seed",
        "4",
        "--start-date",
        DAY.isoformat(),
        "--raw",
        raw,
    ]


def test_parse_over_raw_days_gives_the_simulators_sessions(tmp_path: Path) -> None:
    assert main(_cli_days(tmp_path, "true")) == 0
    raw_dir = tmp_path / "days" / "raw"
    files = sorted(raw_dir.iterdir())
    assert [f.name for f in files] == ["app-2024-02-28.log", "app-2024-02-29.log"]
    assert not list((tmp_path / "days").glob("preprocessed_logs_*"))  # raw only

    out = tmp_path / "parsed"
    argv = ["parse", "--format", "spring-boot", "--session-key", "trace_id", "--out", str(out)]
    assert main([*argv, *map(str, files)]) == 0
    parsed = {
        s.session_id: s for f in sorted(out.glob("preprocessed_logs_*")) for s in read_sessions(f)
    }

    expected: list[SimSession] = []
    for i in range(2):
        d = date.fromordinal(DAY.toordinal() + i)
        start = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
        expected += simulate_day(random.Random(f"4:{d.isoformat()}"), start, 150, 0.2)
    assert {s.trace_id: len(s.events) for s in expected} == {
        sid: len(s.events) for sid, s in parsed.items()
    }
    assert all(parsed[s.trace_id].start_ts == s.events[0].ts for s in expected)
    lines = sum(len(s.events) for s in expected)
    assert lines == sum(1 for f in files for _ in f.open("rb"))

    # Templates: at least one per (event id, phrasing) logged (none mixes two), and no more
    # than a few: the miner splits some by a word value (the service, the table), as it
    # would on real logs, but does not fall apart into one template per line.
    templates = read_templates(out / "templates.json").templates
    pairs = len(_pairs(expected))
    assert pairs <= len(templates) <= 3 * pairs
    assert sum(t.count for t in templates) == lines


def test_raw_days_are_deterministic_and_time_ordered(tmp_path: Path) -> None:
    assert main(_cli_days(tmp_path, "true")) == 0
    path = tmp_path / "days" / "raw" / raw_file_name(DAY)
    first = path.read_bytes()
    parsed = [SPRING_BOOT.parse(line) for line in first.decode().splitlines()]
    times = [p.ts or 0 for p in parsed if p is not None]
    assert len(times) == len(parsed) and times == sorted(times)
    assert main(_cli_days(tmp_path, "true")) == 0
    assert path.read_bytes() == first


def test_merged_lines_keep_each_sessions_order() -> None:
    sessions = list(generate_sessions(random.Random(3), 200, DAY_MS, 2.0, 0.1))
    seen: dict[str, list[str]] = defaultdict(list)
    for line in merged_lines(sessions):
        p = SPRING_BOOT.parse(line)
        assert p is not None
        seen[p.fields["trace_id"]].append(p.message)
    assert seen == {s.trace_id: [e.message for e in s.events] for s in sessions}


def _is_raw_event(value: bytes) -> bool:
    """What a raw event needs: an object with an epoch-ms time, a service, a session id and
    a message, and no event id."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(obj, dict)
        and type(obj.get("ts")) is int
        and bool(obj.get("service"))
        and bool(obj.get("session_id"))
        and isinstance(obj.get("message"), str)
        and bool(obj["message"])
        and "event_id" not in obj
    )


def test_raw_topic_messages_are_raw_events_keyed_by_trace_id() -> None:
    live = LiveSettings(bootstrap="x:1", sessions=60, malformed=5)
    traffic = TrafficSettings(anomaly_rate=0.3, seed=9, raw=True)
    kinds: Counter[str] = Counter()
    msgs = list(messages(live, traffic, DAY_MS, kinds))
    good = [(k, orjson.loads(v)) for k, v in msgs if not k.startswith(b"malformed-")]
    bad = [v for k, v in msgs if k.startswith(b"malformed-")]
    assert len(bad) == 5 and not any(_is_raw_event(v) for v in bad)
    expected = list(generate_sessions(random.Random(9), 60, DAY_MS, live.interval_ms(), 0.3))
    assert len(good) == sum(len(s.events) for s in expected)
    by_trace = {s.trace_id: s for s in expected}
    for key, obj in good:
        assert _is_raw_event(orjson.dumps(obj))
        assert key.decode() == obj["session_id"] and HEX16.fullmatch(obj["session_id"])
        s = by_trace[obj["session_id"]]
        want = {"label": 1, "anomaly": s.anomaly} if s.anomaly else {"label": 0}
        assert obj["attrs"] == want
        assert obj["level"] in ("DEBUG", "INFO", "WARN", "ERROR")
    assert {obj["message"] for _, obj in good} == {e.message for s in expected for e in s.events}
    assert sum(kinds.values()) == sum(s.label for s in expected)


def test_the_ids_format_stays_the_default() -> None:
    live = LiveSettings(bootstrap="x:1", sessions=5)
    msgs = list(messages(live, TrafficSettings(), DAY_MS, Counter()))
    events = [LogEvent.decode(v) for _, v in msgs]
    assert all(k == e.session_id.encode() for (k, _), e in zip(msgs, events, strict=True))
    assert {e.session_id.split("-")[0] for e in events} <= {"req", "hb", "hc", "ev", "reg"}


def test_phrasing_fields_are_the_original_ones() -> None:
    """An alternative phrasing names no field its original lacks, but the session's own."""
    session_fields = {"svc", "SVC", "method", "path", "status", "trace", "instance"}
    for t in TEMPLATES:
        original = {f for _, f, _, _ in string.Formatter().parse(t.text) if f}
        for text in t.texts[1:]:
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            assert names <= original | session_fields, (t.event_id, text)
