"""`logad demo` composes simulate's and train's sections with its own defaults, runs
`logad parse` on the raw days it simulates, and `logad train` on the parsed days with
exactly those settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from schemas.daily_files import read_sessions
from schemas.scores import Alert, Expected, SurprisingEvent
from schemas.templates import read_templates
from stream.cli import build_parser, main
from stream.devtools.demo import (
    AlertPatterns,
    DemoSettings,
    Tally,
    format_alert,
    prepare_model,
    train_argv,
)


def _settings(*argv: str) -> DemoSettings:
    args = build_parser().parse_args(["demo", *argv])
    settings: DemoSettings = args.build(args)
    return settings


def test_the_demo_keeps_its_defaults_and_flags() -> None:
    s = _settings()
    assert (s.daily.days, s.daily.sessions_per_day, s.live.rate) == (3, 2_000, 4_000.0)
    assert (s.traffic.anomaly_rate, s.traffic.seed) == (0.05, 7)
    assert (s.training.preset, s.training.epochs, s.training.lr) == ("small", 9, 1e-3)
    s = _settings("--days", "1", "--rate", "10", "--seed", "3", "--preset", "tiny")
    assert (s.daily.days, s.live.rate, s.traffic.seed, s.training.preset) == (1, 10.0, 3, "tiny")


def test_the_demo_trains_with_its_own_training_settings(tmp_path: Path) -> None:
    s = _settings("--epochs", "2", "--seed", "5")
    argv = train_argv(s, tmp_path / "days", tmp_path / "model")
    args = build_parser().parse_args(argv)
    assert args.log_file == s.workdir / "train.log"  # log lines off the terminal
    assert args.data == [tmp_path / "days"]
    trained = args.build(args)
    assert (trained.preset, trained.epochs, trained.seed) == ("small", 2, 5)
    assert (trained.lr, trained.tokens_per_batch, trained.warmup_steps) == (1e-3, 1024, 10)


def test_the_demo_speaks_raw_text_unless_told_event_ids() -> None:
    assert _settings().traffic.raw is True
    assert _settings("--raw", "false").traffic.raw is False
    assert _settings("--no-raw").traffic.raw is False


class FakeTrainRunner:
    """`logad ARGV` in this process (a unit test starts no child process), but `logad train`
    only writes a bundle's manifest: what the demo checks before it trains again."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], quiet: bool) -> int:
        self.calls.append(list(argv))
        if "train" not in argv:
            return main(list(argv))
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "manifest.json").write_text("{}")
        return 0


def tiny_demo(tmp: Path, *argv: str) -> DemoSettings:
    """The demo on two days of 60 sessions, a tiny model for one epoch, in `tmp`/demo."""
    days = ["--days", "2", "--sessions-per-day", "60", "--preset", "tiny", "--epochs", "1"]
    return _settings("--workdir", str(tmp / "demo"), *days, *argv)


def test_raw_days_are_parsed_and_the_model_trained_on_the_parsed_days(tmp_path: Path) -> None:
    s = tiny_demo(tmp_path)
    run = FakeTrainRunner()
    prepared = prepare_model(s, date(2024, 3, 3), run)
    work = tmp_path / "demo"
    raw = sorted((work / "days" / "raw").iterdir())
    assert [f.name for f in raw] == ["app-2024-03-01.log", "app-2024-03-02.log"]
    parse, train = run.calls
    assert parse[parse.index("parse") :] == [
        "parse", "--format", "spring-boot", "--session-key", "trace_id",
        "--out", str(work / "parsed"), *map(str, raw),
    ]  # fmt: skip
    parsed = sorted(p.name for p in (work / "parsed").iterdir())
    assert parsed == [
        "assignments.csv",
        "preprocessed_logs_2024-03-01.jsonl",
        "preprocessed_logs_2024-03-02.jsonl",
        "templates.json",
    ]
    assert sum(1 for f in (work / "parsed").glob("pre*") for _ in read_sessions(f)) == 120
    args = build_parser().parse_args(train)
    assert args.data == [work / "parsed"] and args.out == work / "model-raw"
    assert prepared.model_dir == work / "model-raw"
    templates = read_templates(work / "parsed" / "templates.json").templates
    assert prepared.templates == {t.id: t.template for t in templates} and templates

    # A second run reuses the model: nothing parsed or trained.
    again = FakeTrainRunner()
    assert prepare_model(s, date(2024, 3, 3), again).model_dir == work / "model-raw"
    assert again.calls == []


def test_the_event_id_demo_trains_on_the_simulated_days(tmp_path: Path) -> None:
    run = FakeTrainRunner()
    prepared = prepare_model(tiny_demo(tmp_path, "--raw", "false"), date(2024, 3, 3), run)
    work = tmp_path / "demo"
    (train,) = run.calls
    args = build_parser().parse_args(train)
    assert args.data == [work / "days"] and args.out == work / "model" == prepared.model_dir
    assert len(list((work / "days").glob("preprocessed_logs_*.jsonl"))) == 2
    assert prepared.templates == {}


def test_alerts_show_the_templates_of_their_events() -> None:
    alert = Alert(
        window_id="w",
        session_id="5f2b9c1d8e7a6b43",
        window_index=0,
        model_version="v1",
        score=9.5,
        threshold=4.0,
        anomalous=True,
        n_events=3,
        first_ts=0,
        last_ts=1,
        scored_at=2,
        surprising=(SurprisingEvent(2, "T9", 9.5, (Expected("T3", 0.6),)),),
        late=False,
        label=1,
        events=("T1", "T3", "T9"),
    )
    names = {"T3": "Committed transaction", "T9": "Query on <*> timed out after <*>"}
    text = format_alert(alert, names)
    assert 'T9 "Query on <*> timed out after <*>"  nll=9.5' in text
    assert 'expected: T3 "Committed transaction" (60%)' in text
    assert "#2 T9  nll=9.5  expected: T3 (60%)" in format_alert(alert)


def test_an_alerts_events_are_listed_in_the_order_they_happened() -> None:
    surprising = tuple(
        SurprisingEvent(pos, f"T{pos}", nll, (Expected("T0", 0.5),))
        for pos, nll in ((7, 9.0), (2, 8.0), (11, 7.0), (1, 1.0))
    )
    alert = Alert(
        window_id="w", session_id="s", window_index=0, model_version="v1", score=9.0,
        threshold=4.0, anomalous=True, n_events=12, first_ts=0, last_ts=1, scored_at=2,
        surprising=surprising, late=False, label=None, events=tuple(f"T{i}" for i in range(12)),
    )  # fmt: skip
    shown = [line.split()[0] for line in format_alert(alert).splitlines()[1:]]
    assert shown == ["#2", "#7", "#11"]  # the three most surprising, by position


def test_the_summary_gives_recall_per_kind_and_false_alerts_per_1000() -> None:
    labels = {f"n{i}": 0 for i in range(500)} | {"a1": 1, "a2": 1, "b1": 1}
    tally = Tally(labels, {"a1", "b1", "n3"}, {"a1": "db_timeout", "a2": "db_timeout", "b1": "x"})
    assert tally.by_kind() == (
        "recall by kind: db_timeout 1/2, x 1/1; false alerts per 1,000 normal sessions: 2.0"
    )


def test_the_kinds_the_demo_tallies_are_the_ones_it_streams() -> None:
    from collections import Counter

    from stream.devtools.simulate.outputs import anomaly_kinds, messages
    from stream.devtools.simulate.settings import LiveSettings, TrafficSettings

    live = LiveSettings(bootstrap="x:1", topic="t", sessions=400, rate=0.0)
    traffic = TrafficSettings(anomaly_rate=0.1, seed=3, raw=True)
    streamed: Counter[str] = Counter()
    keys = {k.decode() for k, _v in messages(live, traffic, 1_000_000, streamed)}
    kinds = anomaly_kinds(live, traffic, 1_000_000)
    assert Counter(kinds.values()) == streamed and sum(streamed.values()) > 10
    assert set(kinds) <= keys  # the anomalous sessions' keys, as scores name them


def test_alerts_of_one_pattern_count_once_whatever_their_session_or_order() -> None:
    def alert(session: str, *ids: str) -> Alert:
        surprising = tuple(
            SurprisingEvent(pos, eid, 9.0 - pos, (Expected("T0", 0.5),))
            for pos, eid in enumerate(ids)
        )
        return Alert(
            window_id=session, session_id=session, window_index=0, model_version="v1",
            score=9.0, threshold=6.5, anomalous=True, n_events=len(ids), first_ts=0,
            last_ts=1, scored_at=2, surprising=surprising, late=False, label=None, events=ids,
        )  # fmt: skip

    patterns = AlertPatterns()
    assert patterns.add(alert("s1", "T9", "T4")) == (1, 1)
    assert patterns.add(alert("s2", "T7")) == (2, 1)
    assert patterns.add(alert("s3", "T4", "T9")) == (1, 2)  # same events, other order
    # T1's nll (6.0) is under the threshold: not what made this an alert.
    assert patterns.add(alert("s4", "T4", "T9", "T4", "T1")) == (1, 3)
    assert patterns.summary() == [
        "ALERTS 4 in 2 patterns",
        "    pattern 1: 3 x  T4, T9",
        "    pattern 2: 1 x  T7",
    ]


def test_the_demos_console_reads_its_topics_and_serves_metrics(tmp_path: Path) -> None:
    from stream.devtools.demo import console_argv

    (tmp_path / "templates.json").write_text("{}")
    s = _settings("--console-port", "8799", "--keep", "true", "--workdir", str(tmp_path))
    topics = {"alerts": "demo.1.alerts", "scores": "demo.1.scores"}
    argv = console_argv(s, "127.0.0.1:9", topics, "http://127.0.0.1:5/metrics", tmp_path)
    args = build_parser().parse_args(argv)
    c = args.build(args)
    assert s.keep and (c.host, c.port) == ("127.0.0.1", 8799)
    assert (c.topics.alerts_topic, c.topics.scores_topic) == ("demo.1.alerts", "demo.1.scores")
    assert c.metrics_url == "http://127.0.0.1:5/metrics"
    assert c.templates == tmp_path / "templates.json"
    assert c.feedback == tmp_path / "feedback.jsonl"
