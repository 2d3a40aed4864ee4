"""`logad evaluate --incidents`: a bundle on events files, verdicts from a scores file, and the
combinations of inputs it refuses."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

from schemas.daily_files import write_sessions
from schemas.errors import ConfigError, DataError
from schemas.events import LogEvent
from schemas.scores import Score
from schemas.sessions import Session
from stream.cli import evaluate as cli_evaluate
from stream.cli.command import execute
from tests.unit.untrained_bundle import untrained_bundle

T0 = 1_674_981_784_000  # 2023-01-29 08:43:04 UTC
MIN = 60_000


@pytest.fixture(scope="module")
def alert_all(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model whose threshold is below every score: every session alerts,
    so what is detected and what is false follows from the times and services alone."""
    return untrained_bundle(tmp_path_factory.mktemp("b") / "bundle", "ABC", [-1.0] * 3)


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli_evaluate.register(sub)
    return execute(parser.parse_args(["evaluate", *argv]))


def _incidents(path: Path) -> Path:
    rows = [
        {"start": T0, "end": T0 + 2 * MIN, "service": "ts-order-service", "type": "cpu"},
        {"start": T0 + 10 * MIN, "end": T0 + 12 * MIN, "service": "ts-pay-service", "type": "cpu"},
        {"start": T0 + 20 * MIN, "end": T0 + 22 * MIN, "type": "return"},
    ]
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    return path


def _event(ts: int, service: str, sid: str, eid: str) -> bytes:
    return LogEvent(ts=ts, service=service, session_id=sid, event_id=eid).encode()


def test_incidents_with_a_bundle_on_events_files(
    alert_all: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        # In the first incident, on its service (a pod of it): detected 30 s in.
        _event(T0 + 10_000, "ts-gateway-service", "hit", "A"),
        _event(T0 + 30_000, "ts-order-service-866bd68c97-xcqfx", "hit", "B"),
        # In the second incident's time, on another service: neither detection nor false.
        _event(T0 + 10 * MIN, "ts-user-service", "off", "A"),
        # Outside every incident: two false alerts.
        _event(T0 + 5 * MIN, "ts-user-service", "fa1", "C"),
        _event(T0 + 30 * MIN, "ts-user-service", "fa2", "A"),
        # The third names no service: by time, 1 min in.
        _event(T0 + 21 * MIN, "ts-user-service", "t3", "B"),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    report = tmp_path / "report"
    rc = _run(
        "--incidents",
        str(_incidents(tmp_path / "inc.jsonl")),
        "--model",
        str(alert_all),
        "--sessions",
        str(events),
        "--device",
        "cpu",
        "--report",
        str(report),
    )
    assert rc == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert (r["incidents"], r["detected"]) == (3, 2)
    assert r["by_type"]["cpu"]["detected"] == 1 and r["by_type"]["return"]["detected"] == 1
    first, second, third = r["per_incident"]
    assert first["detected"] and first["time_to_first_alert_s"] == 30.0
    assert first["matched_on"] == "service"
    assert not second["detected"] and second["sessions"] == 0
    assert third["detected"] and third["time_to_first_alert_s"] == 60.0
    assert third["matched_on"] == "time"
    assert (r["false_alerts"], r["alerts_off_service"], r["normal_sessions"]) == (2, 1, 2)
    assert r["false_alerts_per_1000_sessions"] == 1000.0
    hours = 24 * MIN / 3_600_000  # first event (T0 + 10 s) to last, less 6 min of incidents
    assert r["hours_outside_incidents"] == pytest.approx(hours)
    assert r["threshold"] == -1.0 and r["sessions_with_services"] == 5
    for png in ("incident_timeline.png", "incidents_by_type.png"):
        assert (report / png).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "2/3" in printed and "false alerts 2 outside incidents" in printed


def _score(sid: str, index: int, first: int, last: int, anomalous: bool) -> bytes:
    return Score(
        window_id=f"{sid}:{index}",
        session_id=sid,
        window_index=index,
        model_version="v1",
        score=3.0 if anomalous else 0.5,
        threshold=2.0,
        anomalous=anomalous,
        n_events=3,
        first_ts=first,
        last_ts=last,
        scored_at=0,
    ).encode()


def test_incidents_from_replay_scores_without_a_model(tmp_path: Path) -> None:
    scores = tmp_path / "scores.jsonl"
    scores.write_bytes(
        b"\n".join(
            [
                # A long session: its second window alerts 90 s into the first incident.
                _score("long", 0, T0 - MIN, T0 + 30_000, False),
                _score("long", 1, T0 + 30_000, T0 + 90_000, True),
                _score("quiet", 0, T0 + 40 * MIN, T0 + 41 * MIN, False),
                _score("fa", 0, T0 + 50 * MIN, T0 + 51 * MIN, True),
            ]
        )
    )
    report = tmp_path / "r"
    inc = _incidents(tmp_path / "inc.jsonl")
    assert _run("--incidents", str(inc), "--scores", str(scores), "--report", str(report)) == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert r["detected"] == 1 and r["per_incident"][0]["time_to_first_alert_s"] == 90.0
    assert r["per_incident"][0]["matched_on"] == "time"  # scores carry no services
    assert r["sessions"] == 3 and r["false_alerts"] == 1 and r["normal_sessions"] == 2
    assert r["thresholds"] == [2.0]


def test_nezha_fault_list_and_archive_lines(tmp_path: Path) -> None:
    nezha = tmp_path / "2023-01-29-fault_list.json"
    nezha.write_bytes(
        orjson.dumps(
            {
                "08": [
                    {
                        "inject_time": "2023-01-29 08:43:04",
                        "inject_timestamp": "1674953044",
                        "inject_pod": "ts-contacts-service-866bd68c97-xcqfx",
                        "inject_type": "network_delay",
                    }
                ]
            }
        )
    )
    archive = tmp_path / "preprocessed_logs_2023-01-29.jsonl"
    write_sessions(
        archive,
        [
            Session("a", ("A",), T0 + 100_000, T0 + 110_000, score=5.0, alerted=True),
            Session("b", ("A",), T0 + 200_000, T0 + 210_000, score=0.1, alerted=False),
        ],
    )
    report = tmp_path / "r"
    argv = ["--incidents", str(nezha), "--scores", str(archive), "--report", str(report)]
    assert _run(*argv, "--fault-window-s", "60") == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert r["per_incident"][0]["service"] == "ts-contacts-service"
    assert r["per_incident"][0]["end"] - r["per_incident"][0]["start"] == MIN
    # With a 60 s window the alert at +110 s is outside it: a false alert, no detection.
    assert r["detected"] == 0 and r["false_alerts"] == 1
    assert _run(*argv, "--fault-window-s", "120") == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert r["detected"] == 1 and r["false_alerts"] == 0
    assert r["by_type"]["network_delay"]["time_to_first_alert_s"]["median"] == 110.0


def test_session_files_need_times(alert_all: Path, tmp_path: Path) -> None:
    sessions = tmp_path / "s.jsonl"
    write_sessions(sessions, [Session("x", ("A",))])
    inc = _incidents(tmp_path / "inc.jsonl")
    with pytest.raises(DataError, match="no start_ts/end_ts"):
        _run("--incidents", str(inc), "--model", str(alert_all), "--sessions", str(sessions))


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--model", "m", "--normal", "n"], "give --model, --normal and --abnormal"),
        (["--model", "m", "--normal", "n", "--abnormal", "a", "--scores", "s"], "go with"),
        (["--incidents", "i"], "needs --scores, or --model and --sessions"),
        (["--incidents", "i", "--model", "m"], "needs --scores, or --model and --sessions"),
        (["--incidents", "i", "--scores", "s", "--model", "m"], "verdicts already made"),
    ],
)
def test_input_combinations_it_refuses(argv: list[str], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        _run(*argv)
