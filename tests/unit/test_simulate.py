"""The traffic simulator: templates, branching, labelled anomalies, daily files."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from schemas.daily_files import read_sessions
from schemas.errors import DecodeError
from schemas.events import LogEvent
from stream.cli import main
from stream.devtools.simulate import (
    ANOMALY_KINDS,
    ANOMALY_ONLY,
    EUREKA,
    GATEWAY,
    MANAGERS,
    TEMPLATE_BY_ID,
    TEMPLATES,
    UNKNOWN_EVENT_IDS,
    SimSession,
    generate_sessions,
    interleave,
    malformed_message,
    simulate_day,
    simulate_session,
)
from stream.devtools.simulate.outputs import messages
from stream.devtools.simulate.settings import LiveSettings, TrafficSettings

T0 = 1_700_000_000_000


def _sessions(n: int, rate: float, seed: int = 0) -> list[SimSession]:
    return list(generate_sessions(random.Random(seed), n, T0, 10.0, rate))


def _ids(s: SimSession) -> list[str]:
    return [e.event_id for e in s.events]


def test_the_same_seed_gives_the_same_traffic() -> None:
    a = [e.encode() for s in _sessions(200, 0.2, seed=7) for e in s.events]
    b = [e.encode() for s in _sessions(200, 0.2, seed=7) for e in s.events]
    c = [e.encode() for s in _sessions(200, 0.2, seed=8) for e in s.events]
    assert a == b
    assert a != c


def test_template_table() -> None:
    assert 40 <= len(TEMPLATES) <= 80
    assert len(TEMPLATE_BY_ID) == len(TEMPLATES)  # no duplicate ids
    assert set(UNKNOWN_EVENT_IDS) <= ANOMALY_ONLY <= set(TEMPLATE_BY_ID)
    prefixes = {t.event_id.split(".")[0] for t in TEMPLATES}
    assert {"gateway", "eureka", "db", "manager", "user", "order", "inventory"} <= prefixes
    assert {t.level for t in TEMPLATES} == {"DEBUG", "INFO", "WARN", "ERROR"}


def test_events_are_realistic_log_lines() -> None:
    sessions = _sessions(3_000, 0.1)
    used = Counter(e.event_id for s in sessions for e in s.events)
    assert set(used) == set(TEMPLATE_BY_ID)  # every template occurs, and each formats
    services = {e.service for s in sessions for e in s.events}
    assert services == {GATEWAY, EUREKA, *MANAGERS}
    for s in sessions:
        ts = [e.ts for e in s.events]
        assert ts == sorted(ts)
        assert ts[-1] - ts[0] < 30_000  # well inside the sessionizer's gap
        for e in s.events:
            assert e.session_id == s.session_id
            assert e.level == TEMPLATE_BY_ID[e.event_id].level
            assert e.message and "{" not in e.message and "}" not in e.message
            assert LogEvent.decode(e.encode()) == e


def test_normal_sessions_vary_and_never_use_anomaly_only_events() -> None:
    normal = _sessions(2_000, 0.0)
    assert all(s.anomaly is None and s.label == 0 for s in normal)
    assert all(e.attrs == {"label": 0} for s in normal for e in s.events)
    assert not {e for s in normal for e in _ids(s)} & ANOMALY_ONLY
    kinds = Counter(s.session_id.split("-")[0] for s in normal)
    assert set(kinds) == {"req", "hb", "hc", "ev", "reg"}
    assert kinds["req"] > 0.6 * len(normal)
    requests = [tuple(_ids(s)) for s in normal if s.session_id.startswith("req-")]
    assert len(set(requests)) > 0.15 * len(requests)  # branching, not one fixed flow
    lengths = Counter(len(r) for r in requests)
    assert len(lengths) >= 10
    # Pagination loops: some list requests page more than twice.
    assert any(r.count("order.list.page") >= 3 for r in requests)
    assert any("eureka.lookup.miss" in r for r in requests)
    assert any("gateway.retry.attempt" in r for r in requests)


def test_anomaly_rate_is_roughly_honoured() -> None:
    sessions = _sessions(4_000, 0.1)
    share = sum(s.label for s in sessions) / len(sessions)
    assert 0.08 <= share <= 0.12
    kinds = Counter(s.anomaly for s in sessions if s.anomaly)
    assert set(kinds) == set(ANOMALY_KINDS)
    assert min(kinds.values()) > 40


def _order_violations(ids: list[str]) -> bool:
    def first(prefix: str) -> int:
        return next((i for i, e in enumerate(ids) if e.startswith(prefix)), len(ids))

    q = first("db.query.")
    return (
        first("gateway.response.sent") < first("manager.request.start")
        or first("manager.response.ok") < q < len(ids)
        or first("db.pool.release") < q < len(ids)
        or first("gateway.route.ok") < first("eureka.lookup.request")
    )


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_each_anomaly_kind_has_its_signature(kind: str) -> None:
    rng = random.Random(kind)
    for _ in range(60):
        s = simulate_session(rng, T0, kind)
        ids = _ids(s)
        assert s.anomaly == kind and s.label == 1 and s.session_id.startswith("req-")
        assert all(e.attrs == {"label": 1, "anomaly": kind} for e in s.events)
        assert ids[0] == "gateway.request.received"
        if kind == "db_timeout":
            assert ids.count("db.query.timeout") >= 2 and "db.query.retry" in ids
            assert ids[-1] == "gateway.response.error"
            assert "504" in (s.events[-1].message or "")
        elif kind == "no_instance":
            assert "eureka.lookup.empty" in ids and ids[-1] == "gateway.response.error"
            assert "503" in (s.events[-1].message or "")
            assert "manager.request.start" not in ids
        elif kind == "out_of_order":
            assert not set(ids) & ANOMALY_ONLY
            assert _order_violations(ids)
        elif kind == "unknown_event":
            assert len(set(ids) & set(UNKNOWN_EVENT_IDS)) == 1
        elif kind == "truncated":
            assert not set(ids) & ANOMALY_ONLY
            assert "gateway.response.sent" not in ids and "gateway.response.error" not in ids
            assert len(ids) >= 3


def test_normal_requests_keep_their_order() -> None:
    for s in _sessions(1_000, 0.0):
        ids = _ids(s)
        if s.session_id.startswith("req-"):
            assert not _order_violations(ids), ids
            assert ids[-1] == "gateway.response.sent"


def test_interleave_merges_sessions_in_event_time_order() -> None:
    sessions = list(generate_sessions(random.Random(1), 300, T0, 2.0, 0.1))
    merged = list(interleave(sessions))
    assert [e.ts for e in merged] == sorted(e.ts for e in merged)
    assert Counter(id(e) for e in merged) == Counter(id(e) for s in sessions for e in s.events)
    # Sessions overlap in time: the stream is not one session after another.
    switches = sum(a.session_id != b.session_id for a, b in itertools.pairwise(merged))
    assert switches > len(sessions) * 2


def test_simulate_day_spreads_sessions_over_the_day() -> None:
    sessions = simulate_day(random.Random(2), T0, 400, 0.05)
    starts = [s.events[0].ts for s in sessions]
    assert starts == sorted(starts)
    assert T0 <= starts[0] < T0 + 8 * 3_600_000 and starts[-1] > T0 + 16 * 3_600_000
    assert {s.to_session().label for s in sessions} == {0, 1}


def test_malformed_messages_fail_to_decode() -> None:
    for i in range(10):
        with pytest.raises(DecodeError):
            LogEvent.decode(malformed_message(i))


def test_topic_messages_mix_in_malformed_ones() -> None:
    live = LiveSettings(bootstrap="x:1", sessions=40, malformed=5)
    kinds: Counter[str] = Counter()
    msgs = list(messages(live, TrafficSettings(anomaly_rate=0.3), T0, kinds))
    bad = [v for k, v in msgs if k.startswith(b"malformed-")]
    good = [LogEvent.decode(v) for k, v in msgs if not k.startswith(b"malformed-")]
    assert len(bad) == 5
    assert all(k.decode() == LogEvent.decode(v).session_id for k, v in msgs if k[:4] != b"malf")
    assert len({e.session_id for e in good}) == 40
    assert sum(kinds.values()) == len({e.session_id for e in good if e.attrs["label"] == 1})
    # Event time follows the session schedule: 40 sessions ~10 ms apart, from T0.
    assert min(e.ts for e in good) >= T0 and max(e.ts for e in good) < T0 + 60_000


def test_cli_writes_readable_daily_files(tmp_path: Path) -> None:
    argv = [
        "simulate",
        "--days-dir",
        str(tmp_path / "days"),
        "--days",
        "2",
        "--sessions-per-day",
        "60",
        "--anomaly-rate",
        "0.25",
        "--seed",
        "3",
        "--start-date",
        "2024-02-28",
    ]
    assert main(argv) == 0
    files = sorted((tmp_path / "days").glob("preprocessed_logs_*.jsonl"))
    assert [f.name for f in files] == [
        "preprocessed_logs_2024-02-28.jsonl",
        "preprocessed_logs_2024-02-29.jsonl",
    ]
    for f in files:
        assert f.with_name(f.name + ".done").exists()
        sessions = list(read_sessions(f))
        assert len(sessions) == 60
        assert {s.label for s in sessions} == {0, 1}
        assert all(s.events and s.start_ts is not None for s in sessions)
        day = datetime.fromisoformat(f.name[18:28] + "T00:00:00+00:00")
        day_start = int(day.timestamp() * 1000)
        assert all(day_start <= (s.start_ts or 0) < day_start + 86_400_000 for s in sessions)
    first = files[0].read_bytes()
    assert main(argv) == 0
    assert files[0].read_bytes() == first  # deterministic


def test_daily_files_win_over_a_bootstrap_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGAD_BOOTSTRAP", "127.0.0.1:1")  # as set for `logad serve`
    argv = ["simulate", "--days-dir", str(tmp_path), "--days", "1", "--sessions-per-day", "5"]
    assert main(argv) == 0
    assert len(list(tmp_path.glob("preprocessed_logs_*.jsonl"))) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate"],  # neither files nor a topic
        ["simulate", "--days-dir", "d", "--bootstrap", "h:1"],
        ["simulate", "--days-dir", "d", "--anomaly-rate", "1.5"],
        ["simulate", "--days-dir", "d", "--start-date", "yesterday"],
        ["simulate", "--bootstrap", "h:1", "--rate", "-1"],
    ],
)
def test_cli_refuses_bad_settings(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("logad: error:")
