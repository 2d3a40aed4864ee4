"""Replay: determinism, windows from daily files, evaluation, the live-topic guard."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pytest

from schemas.daily_files import write_sessions
from schemas.errors import ConfigError, DataError
from schemas.events import LogEvent
from schemas.runtime.settings import build_settings
from schemas.runtime.settings_flags import settings_flags
from schemas.scores import Score
from schemas.sessions import Session
from stream.cli import replay as cli_replay
from stream.jobs import replay_run
from stream.jobs.replay import (
    DaySource,
    ReplaySettings,
    check_out_topic,
    evaluate_blocks,
    event_items,
    replay_scores,
    write_scores,
)
from tests.fakes import FakeScorer, event_count


def _days(tmp: Path) -> Path:
    d = tmp / "days"
    d.mkdir()
    write_sessions(
        d / "preprocessed_logs_2026-01-01.jsonl",
        [
            Session("a", ("x",) * 3, 1000, 2000, 0),
            Session("b", ("y",) * 7, 1500, 2500, 1),
            Session("c", ("z",) * 600, 1200, 9000, 0),  # split at 510 as the stream splits
        ],
    )
    write_sessions(
        d / "preprocessed_logs_2026-01-02.jsonl",
        [
            Session("a", ("x",) * 2, 90000, 91000, 0),  # the same session id on another day
        ],
    )
    return d


def length_scorer() -> FakeScorer:
    """Scores a window by its event count; over 5 events is anomalous."""
    return FakeScorer(threshold=5.0, rule=event_count)


def _settings(**flags: object) -> ReplaySettings:
    return build_settings(ReplaySettings, flags=flags, environ={})


def _replay(days: Path) -> list[Score]:
    src = DaySource([*sorted(days.glob("*.jsonl"))], 30_000)
    return replay_scores(
        src.items(),
        length_scorer(),
        ReplaySettings(batch_windows=2),
        src.restore,
    )


def test_daily_files_replay_is_deterministic_and_keeps_lines(tmp_path: Path) -> None:
    days = _days(tmp_path)
    s1, s2 = _replay(days), _replay(days)
    write_scores(tmp_path / "1.jsonl", s1)
    write_scores(tmp_path / "2.jsonl", s2)
    assert (tmp_path / "1.jsonl").read_bytes() == (tmp_path / "2.jsonl").read_bytes()
    got = [(s.session_id, s.window_index, s.n_events, s.first_ts, s.last_ts) for s in s1]
    assert got == [
        ("a", 0, 3, 1000, 2000),
        ("c", 0, 510, 1200, 9000),
        ("c", 1, 90, 1200, 9000),
        ("b", 0, 7, 1500, 2500),
        ("a", 1, 2, 90000, 91000),
    ]
    assert all(s.scored_at == s.last_ts for s in s1)  # no wall clock in the output
    assert [s.label for s in s1] == [0, 0, 0, 1, 0]


def test_events_file_through_the_sessionizer(tmp_path: Path) -> None:
    p = tmp_path / "ev.jsonl.gz"
    lines = [
        b'{"ts": 1000, "service": "s", "session_id": "blk1", "event_id": "E1"}',
        b'{"ts": 2000, "service": "s", "session_id": "blk2", "event_id": "E2"}',
        b"not json",
        b'{"ts": 3000, "service": "s", "session_id": "blk1", "event_id": "E3"}',
        b'{"ts": 90000, "service": "s", "session_id": "blk1", "event_id": "E4"}',
    ]
    p.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    scores = replay_scores(event_items(p), length_scorer(), _settings(gap_ms=10_000))
    assert [(s.session_id, s.window_index, s.n_events) for s in scores] == [
        ("blk1", 0, 2),
        ("blk2", 0, 1),
        ("blk1", 1, 1),
    ]
    long_gap = replay_scores(event_items(p), length_scorer(), _settings(gap_ms=100_000))
    assert sorted((s.session_id, s.n_events) for s in long_gap) == [("blk1", 3), ("blk2", 1)]


def test_raw_events_map_to_template_ids_as_serve_maps_them(tmp_path: Path) -> None:
    from schemas.events import LogEvent
    from tests.fakes import SurprisedScorer
    from tests.raw_spring import KNOWN, NEW, bundle_set
    from trainer.mining.matcher import NO_TEMPLATES, TemplateMatcher

    p = tmp_path / "raw.jsonl"
    events = [LogEvent(1000 + i, "gw", "t1", None, "INFO", m) for i, m in enumerate(KNOWN)]
    events += [LogEvent(2000, "gw", "t2", None, "ERROR", NEW), LogEvent(2001, "gw", "t2", "T1")]
    p.write_bytes(b"".join(e.encode() + b"\n" for e in events))
    templates = bundle_set()
    known = [t.id for t in templates.templates]
    scorer = SurprisedScorer(frozenset(known))
    scores = replay_scores(event_items(p), scorer, _settings(), None, TemplateMatcher(templates))
    new_id = f"T{len(known) + 1}"
    assert {w.session_id: w.events for w in scorer.windows} == {
        "t1": tuple(known),
        "t2": (new_id, "T1"),
    }
    (alert,) = [s for s in scores if s.anomalous]
    assert [(e.event_id, e.template) for e in alert.surprising] == [
        (new_id, "Bank gateway refused the connection: TLS handshake failed after <*>")
    ]
    with pytest.raises(DataError, match=f"partition 0 offset 0: {NO_TEMPLATES}$"):
        replay_scores(event_items(p), scorer, _settings())


def test_block_evaluation() -> None:
    def sc(sid: str, score: float) -> Score:
        return Score("w" + sid + str(score), sid, 0, "v", score, 5.0, score > 5, 1, 0, 0, 0)

    scores = [sc("n1", 1), sc("n2", 6), sc("n2", 2), sc("a1", 9), sc("a2", 3)]
    ev = evaluate_blocks(scores, {"n1": 0, "n2": 0, "a1": 1, "a2": 1, "gone": 1})
    d = ev.detection
    assert (d["fpr"], d["recall"], d["precision"]) == (0.5, 0.5, 0.5)
    assert ev.missing == 1 and ev.sessions_scored == 4
    assert d["auroc"] == pytest.approx(0.75)


def test_live_scores_topic_is_refused() -> None:
    with pytest.raises(ConfigError, match="live scores topic"):
        check_out_topic("logad.scores", False)
    check_out_topic("logad.scores", True)
    check_out_topic("logad.replay.scores", False)


def test_cli_parses_sources() -> None:
    parser = argparse.ArgumentParser()
    cli_replay.register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(
        [
            "replay",
            "--model",
            "m",
            "--topic",
            "t",
            "--from-time",
            "2026-01-01T00:00:00Z",
            "--to-time",
            "1767229200000",
            "--gap-ms",
            "5",
        ]
    )
    assert ns.from_time == 1767225600000 and ns.to_time == 1767229200000
    settings = build_settings(ReplaySettings, flags=settings_flags(ns, ReplaySettings))
    assert settings.sessionizer.gap_ms == 5 and settings.scoring.explain_known_mixes is False
    assert settings.sessionizer.idle_timeout_ms > 10**15  # no wall-clock flush in a replay
    ns = parser.parse_args(["replay", "--model", "m", "--topic", "t", "--explain-known-mixes"])
    settings = build_settings(ReplaySettings, flags=settings_flags(ns, ReplaySettings))
    assert settings.scoring.explain_known_mixes is True
    with pytest.raises(SystemExit):  # a live-only sessionizer setting is no replay flag
        parser.parse_args(["replay", "--model", "m", "--topic", "t", "--idle-timeout-ms", "1"])


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("gap_ms", "-5", "gap_ms must be > 0"), ("max_events", "600", "max_events must be in")],
)
def test_bad_sessionizer_setting_is_a_config_error(flag: str, value: str, message: str) -> None:
    """Checked when the settings are built (one line from the CLI), not when replay starts."""
    with pytest.raises(ConfigError, match=message):
        build_settings(ReplaySettings, flags={flag: value})


@pytest.mark.parametrize("which", ["events", "labels"])
def test_missing_input_file_is_one_line(
    which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import main

    events = tmp_path / "events.jsonl"
    events.write_text("")
    missing = tmp_path / "missing.jsonl"
    argv = ["replay", "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")]
    argv += ["--events", str(missing)] if which == "events" else ["--events", str(events)]
    argv += ["--labels", str(missing)] if which == "labels" else []
    assert main(argv) == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1] == f"logad: error: no such file: {missing}"
    )


def test_unreachable_out_topic_broker_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import main
    from trainer.scoring import WindowScorer

    monkeypatch.setattr(replay_run, "resolve_model", lambda p: p)
    monkeypatch.setattr(WindowScorer, "from_bundle", lambda *a, **k: length_scorer())
    monkeypatch.setattr(replay_run, "read_bundle_templates", lambda p: None)
    events = tmp_path / "events.jsonl"
    events.write_bytes(LogEvent(1000, "gw", "t1", "T1").encode() + b"\n")
    argv = ["replay", "--model", str(tmp_path), "--events", str(events)]
    assert main([*argv, "--out-topic", "t.replay", "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("logad: error: Kafka at 127.0.0.1:1: ")
    assert "Unclosed" not in err


def _fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.scoring import WindowScorer

    monkeypatch.setattr(replay_run, "resolve_model", lambda p: p)
    monkeypatch.setattr(WindowScorer, "from_bundle", lambda *a, **k: length_scorer())
    monkeypatch.setattr(replay_run, "read_bundle_templates", lambda p: None)


def test_an_events_replay_by_event_time_and_of_nothing_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import main

    _fake_model(monkeypatch)
    events = tmp_path / "events.jsonl"
    lines = [LogEvent(ts, "gw", f"s{ts}", "T1").encode() for ts in (1000, 2000, 3000)]
    events.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "scores.jsonl"
    argv = ["replay", "--model", str(tmp_path), "--events", str(events), "--out", str(out)]
    assert main([*argv, "--from-time", "1500", "--to-time", "3000"]) == 0
    assert [Score.decode(x).session_id for x in out.read_bytes().splitlines()] == ["s2000"]
    capsys.readouterr()
    assert main([*argv, "--from-time", "5000", "--to-time", "6000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("logad: error: replay read 0 usable events from ")
    assert "event time in [5000, 6000)" in err[-1]
    assert main([*argv, "--time-field", "broker", "--from-time", "1", "--to-time", "2"]) == 2
    assert "needs --topic" in capsys.readouterr().err


def test_a_daily_file_given_as_events_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import main

    _fake_model(monkeypatch)
    daily = tmp_path / "preprocessed_logs_2026-01-01.jsonl"
    write_sessions(daily, [Session(f"s{i}", ("a", "b"), 1000, 2000) for i in range(50)])
    argv = ["replay", "--model", str(tmp_path), "--events", str(daily)]
    assert main([*argv, "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "session lines (a daily file)" in err[-1] and "--days-dir" in err[-1]
    assert not [line for line in err if "undecodable" in line]  # no warning per line
    assert not (tmp_path / "o.jsonl").exists()


def test_undecodable_events_warn_ten_times_then_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from structlog.testing import capture_logs

    from stream.jobs.replay import event_items

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n' * 30)
    with capture_logs() as logs:
        assert list(event_items(bad)) == []
    events = [e["event"] for e in logs]
    assert events.count("replay_event_undecodable") == 10
    assert events[-1] == "replay_events_undecodable" and logs[-1]["lines"] == 30
