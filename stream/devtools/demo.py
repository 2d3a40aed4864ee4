"""`logad demo`: the whole system on one laptop, end to end, in a few minutes on 2 cores.

1. start a local Kafka broker (free port, temporary data dir);
2. simulate a few days of normal traffic as raw log lines (Spring Boot console logs,
   WORKDIR/days/raw/app-YYYY-MM-DD.log) and mine them with `logad parse` into template ids
   and daily files of sessions by trace id (WORKDIR/parsed);
3. train a `small` model on them (CPU unless a GPU is present), into WORKDIR/model-raw;
4. start `logad serve` as its own process, then simulate live traffic with anomalies, as
   raw events (a message, no event id) that serve mines against the model's templates;
5. print alerts as they arrive: session, score, surprising events and what was expected;
6. print precision and recall against the injected labels, and stop everything it started.

With `--raw false` the simulator speaks event ids instead: daily files straight into
WORKDIR/days, no parsing, the model in WORKDIR/model, live events with event ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.errors import LogadError
from schemas.runtime.console import out
from schemas.runtime.logs import configure_logging, logging_settings
from schemas.runtime.settings import only
from schemas.scores import Alert, Score
from schemas.templates import read_templates
from stream.devtools import broker
from stream.devtools.simulate.outputs import anomaly_kinds, produce, write_days
from stream.devtools.simulate.settings import DailySettings, LiveSettings, TrafficSettings
from trainer.settings import TrainSettings

log = structlog.get_logger(__name__)


TEMPLATES_FILE = "templates.json"
"""What `logad parse` writes beside its daily files, and `logad train` copies into the model."""

_TRAINED = ("preset", "epochs", "lr", "tokens_per_batch", "warmup_steps")
"""The training settings the demo passes to `logad train` (the rest are the trainer's)."""


@dataclass(frozen=True)
class DemoSettings:
    """Every knob of `logad demo`: simulate's and train's sections, with the demo's defaults.

    The simulated days are normal traffic; the live traffic carries anomalies. The traffic
    section's `raw` chooses raw log lines (the default: parse, then train) or event ids."""

    workdir: Path = Path("demo-out")
    """Directory for the demo's daily files, model, broker data and serve log."""
    live_sessions: int = 1_500
    """Sessions of live traffic to stream through logad serve."""
    max_alerts_shown: int = 8
    """Alert patterns printed in full, each on its first alert (the rest are counted)."""
    timeout_s: float = 300.0
    """Give up waiting for scores after this many seconds."""
    console_port: int = 0
    """Port of the alert console (`logad console`) the demo starts on 127.0.0.1 (0: a
    free one, printed)."""
    keep: bool = False
    """After the SUMMARY, leave the broker, serve and the console running until Ctrl-C."""
    daily: DailySettings = field(default=DailySettings(), metadata=only("days", "sessions_per_day"))
    training: TrainSettings = field(
        # Few steps on little data: a learning rate well above production's.
        default=TrainSettings(
            preset="small", epochs=9, lr=1e-3, tokens_per_batch=1024, warmup_steps=10
        ),
        metadata=only("preset", "epochs", "lr", "tokens_per_batch"),
    )
    live: LiveSettings = field(default=LiveSettings(rate=4_000.0), metadata=only("rate"))
    traffic: TrafficSettings = field(default=TrafficSettings(anomaly_rate=0.05, seed=7, raw=True))


@dataclass
class AlertPatterns:
    """Alerts grouped by pattern (`Alert.pattern`), numbered in the order first seen, so
    that one incident prints once in full and is counted after that."""

    counts: dict[tuple[str, ...], int] = field(default_factory=dict)

    def add(self, alert: Alert) -> tuple[int, int]:
        """(the pattern's number, counting from 1; alerts of it so far, this one included)."""
        key = alert.pattern
        self.counts[key] = self.counts.get(key, 0) + 1
        return list(self.counts).index(key) + 1, self.counts[key]

    def summary(self) -> list[str]:
        total = sum(self.counts.values())
        lines = [f"ALERTS {total} in {len(self.counts)} patterns"]
        for n, (key, count) in enumerate(self.counts.items(), 1):
            lines.append(f"    pattern {n}: {count} x  {', '.join(key)}")
        return lines


@dataclass
class Tally:
    """Session-level outcome: a session is flagged when any of its windows alerted."""

    labels: dict[str, int]
    flagged: set[str]
    kinds: dict[str, str] = field(default_factory=dict)
    """Anomalous session -> the kind of anomaly injected into it."""
    patterns: AlertPatterns = field(default_factory=AlertPatterns)

    def by_kind(self) -> str:
        """Recall per kind of anomaly, and false alerts per 1,000 normal sessions."""
        caught: dict[str, list[int]] = {}
        for sid, kind in sorted(self.kinds.items(), key=lambda kv: kv[1]):
            if sid in self.labels:
                hit = caught.setdefault(kind, [0, 0])
                hit[0] += sid in self.flagged
                hit[1] += 1
        normal = [sid for sid, y in self.labels.items() if y == 0]
        false = sum(sid in self.flagged for sid in normal)
        per_kind = ", ".join(f"{k} {c}/{n}" for k, (c, n) in caught.items())
        rate = 1000 * false / len(normal) if normal else 0.0
        return f"recall by kind: {per_kind}; false alerts per 1,000 normal sessions: {rate:.1f}"

    def precision_recall(self) -> tuple[float, float, int, int, int]:
        pos = {s for s, y in self.labels.items() if y == 1}
        tp = len(pos & self.flagged)
        fp = len(self.flagged - pos)
        fn = len(pos - self.flagged)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        return precision, recall, tp, fp, fn


_SHOWN_TEMPLATE_CHARS = 60


def format_alert(alert: Alert, templates: Mapping[str, str] | None = None) -> str:
    """An alert in a few lines; with `templates` (template id -> template), each event id
    that names a mined template is shown with its template."""
    names = templates or {}

    def name(event_id: str) -> str:
        text = names.get(event_id)
        if text is None:
            return event_id
        if len(text) > _SHOWN_TEMPLATE_CHARS:
            text = text[: _SHOWN_TEMPLATE_CHARS - 3] + "..."
        return f'{event_id} "{text}"'

    lines = [
        f"ALERT session={alert.session_id} score={alert.score:.2f} "
        f"threshold={alert.threshold:.2f} events={alert.n_events} model={alert.model_version}"
    ]
    # The three most surprising, shown in the order they happened.
    for s in sorted(alert.surprising[:3], key=lambda s: s.position):
        expected = ", ".join(f"{name(e.event_id)} ({e.prob:.0%})" for e in s.expected)
        if names:  # templates are long: what was expected goes on a line of its own
            lines.append(f"    #{s.position} {name(s.event_id)}  nll={s.nll:.1f}")
            lines.append(f"        expected: {expected}")
        else:
            lines.append(f"    #{s.position} {s.event_id}  nll={s.nll:.1f}  expected: {expected}")
        if s.reason_text is not None:
            lines.append(f"      scored by a rule: {s.reason_text}")
        if s.template is not None:
            lines.append(f"      new log template: {s.template}")
    return "\n".join(lines)


Runner = Callable[[Sequence[str], bool], int]
"""Runs `logad ARGV` (quiet: without its standard output) and returns its exit code."""


def run_logad(argv: Sequence[str], quiet: bool = False) -> int:
    # A child process, not an import: the devtools sit below the CLI.
    stdout = subprocess.DEVNULL if quiet else None
    return subprocess.run([sys.executable, "-m", "stream.cli", *argv], stdout=stdout).returncode


def _logad(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", "--log-json", *args]


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LogadError(f"logad serve exited with code {proc.returncode} during start")
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    raise LogadError(f"logad serve was not ready within {timeout_s:.0f} s")


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.create_topics(
            [NewTopic(n, num_partitions=2, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _watch(
    bootstrap: str,
    scores_topic: str,
    alerts_topic: str,
    tally: Tally,
    s: DemoSettings,
    done: asyncio.Event,
    templates: Mapping[str, str],
) -> None:
    """Print alerts as they arrive and tally scores until every live session is scored."""
    consumer = AIOKafkaConsumer(
        scores_topic, alerts_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    try:
        await consumer.start()
        while not done.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for rec in records:
                    assert rec.value is not None
                    if tp.topic == alerts_topic:
                        alert = Alert.decode(rec.value)
                        number, count = tally.patterns.add(alert)
                        if count == 1 and number <= s.max_alerts_shown:
                            out(f"[pattern {number}] {format_alert(alert, templates)}")
                        elif count == 1 and number == s.max_alerts_shown + 1:
                            out("    ... (further patterns counted, not shown)")
                        continue
                    score = Score.decode(rec.value)
                    tally.labels[score.session_id] = max(
                        tally.labels.get(score.session_id, 0), score.label or 0
                    )
                    if score.anomalous:
                        tally.flagged.add(score.session_id)
            if len(tally.labels) >= s.live_sessions:
                done.set()
    finally:
        await consumer.stop()


async def _live(
    bootstrap: str, topics: dict[str, str], s: DemoSettings, templates: Mapping[str, str]
) -> Tally:
    tally = Tally({}, set())
    done = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(bootstrap, topics["scores"], topics["alerts"], tally, s, done, templates)
    )
    live = LiveSettings(
        bootstrap=bootstrap,
        topic=topics["events"],
        sessions=s.live_sessions,
        rate=s.live.rate,
        malformed=3,
    )
    traffic = dataclasses.replace(s.traffic, seed=s.traffic.seed + 1000)
    start_ms = int(time.time() * 1000)
    tally.kinds = anomaly_kinds(live, traffic, start_ms)
    await produce(live, traffic, start_ms)
    try:
        await asyncio.wait_for(done.wait(), timeout=s.timeout_s)
    except TimeoutError:
        log.warning("demo_timeout", scored_sessions=len(tally.labels), wanted=s.live_sessions)
        done.set()
    await watcher
    return tally


def console_argv(
    s: DemoSettings, bootstrap: str, topics: dict[str, str], metrics_url: str, model_dir: Path
) -> list[str]:
    """`logad console` on the demo's topics and serve's metrics (port: `console_port`)."""
    argv = ["console", "--bootstrap", bootstrap, "--port", str(s.console_port)]
    argv += ["--alerts-topic", topics["alerts"], "--scores-topic", topics["scores"]]
    argv += ["--metrics-url", metrics_url, "--feedback", str(s.workdir / "feedback.jsonl")]
    if (model_dir / TEMPLATES_FILE).is_file():
        argv += ["--templates", str(model_dir / TEMPLATES_FILE)]
    return argv


def _start_console(
    s: DemoSettings, bootstrap: str, topics: dict[str, str], metrics_port: int, model_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """The console as a child process, and its URL."""
    s = dataclasses.replace(s, console_port=s.console_port or broker.free_port())
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    argv = console_argv(s, bootstrap, topics, metrics_url, model_dir)
    with (s.workdir / "console.log").open("wb") as log_fh:
        proc = subprocess.Popen(
            _logad(*argv), stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return proc, f"http://127.0.0.1:{s.console_port}/"


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally blocks below stop serve and the broker


def train_argv(s: DemoSettings, days_dir: Path, model_dir: Path) -> list[str]:
    """`logad train` on the simulated days, as the demo runs it."""
    argv = ["--log-file", str(s.workdir / "train.log"), "train"]
    argv += ["--data", str(days_dir), "--out", str(model_dir)]
    for name in _TRAINED:
        argv += ["--" + name.replace("_", "-"), str(getattr(s.training, name))]
    return [*argv, "--seed", str(s.traffic.seed)]


def parse_argv(raw_files: Sequence[Path], parsed_dir: Path, log_file: Path) -> list[str]:
    """`logad parse` on the simulated raw days: template ids, and sessions by trace id."""
    argv = ["--log-file", str(log_file), "parse", "--format", "spring-boot"]
    argv += ["--session-key", "trace_id", "--out", str(parsed_dir)]
    return [*argv, *(str(f) for f in raw_files)]


@dataclass(frozen=True)
class Prepared:
    """What the demo trained on and serves."""

    model_dir: Path
    templates: dict[str, str]
    """Template id -> template, when the days were raw lines (else empty)."""


def prepare_model(s: DemoSettings, today: date, run: Runner = run_logad) -> Prepared:
    """Steps 2 and 3: simulate the normal days, then (unless the workdir holds a model of
    the same format already) parse them, when raw, and train."""
    raw = s.traffic.raw
    days_dir = s.workdir / "days"
    model_dir = s.workdir / ("model-raw" if raw else "model")
    days = f"{s.daily.days} days x {s.daily.sessions_per_day} normal sessions"
    out(f"[2/6] simulating {days} ({'raw log lines' if raw else 'event ids'})")
    normal = TrafficSettings(seed=s.traffic.seed, raw=raw)
    written = write_days(s.daily, normal, days_dir, today)
    if (model_dir / "manifest.json").is_file():
        out(f"[3/6] reusing the model in {model_dir} (delete it to retrain)")
        return Prepared(model_dir, _templates(model_dir / TEMPLATES_FILE))
    data_dir, templates = days_dir, {}
    if raw:
        data_dir = s.workdir / "parsed"
        shutil.rmtree(data_dir, ignore_errors=True)  # no days of an earlier run
        rc = run(parse_argv(written, data_dir, s.workdir / "parse.log"), True)
        if rc != 0:
            raise LogadError(f"logad parse exited with code {rc}")
        templates = _templates(data_dir / TEMPLATES_FILE)
        lines = sum(1 for f in written for _ in f.open("rb"))
        out(f"      mined {len(templates)} templates from {lines} lines (logad parse): {data_dir}")
    out(f"[3/6] training a '{s.training.preset}' model for {s.training.epochs} epochs")
    # A run interrupted earlier left checkpoints behind; the demo starts afresh.
    shutil.rmtree(model_dir.with_name(model_dir.name + ".run"), ignore_errors=True)
    rc = run(train_argv(s, data_dir, model_dir), False)
    if rc != 0:
        raise LogadError(f"logad train exited with code {rc}")
    return Prepared(model_dir, templates)


def _templates(path: Path) -> dict[str, str]:
    """Template id -> template of a templates file; empty when there is none."""
    if not path.is_file():
        return {}
    return {t.id: t.template for t in read_templates(path).templates}


def run_demo(s: DemoSettings) -> int:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    s.workdir.mkdir(parents=True, exist_ok=True)
    # The terminal shows the demo's story; every step's log lines go to WORKDIR/*.log.
    configure_logging(logging_settings()[0], True, s.workdir / "demo.log")
    t0 = time.monotonic()
    out(f"[1/6] starting a local Kafka broker ({broker.KAFKA_VERSION})")
    info = broker.start(port=broker.free_port(), data_dir=s.workdir / "kafka")
    serve_proc: subprocess.Popen[bytes] | None = None
    console_proc: subprocess.Popen[bytes] | None = None
    try:
        out(f"      broker at {info.bootstrap}")
        prepared = prepare_model(s, date.today())
        model_dir = prepared.model_dir
        run_id = time.strftime("%Y%m%d%H%M%S")
        topics = {k: f"demo.{run_id}.{k}" for k in ("events", "scores", "alerts", "dlq")}
        asyncio.run(_create_topics(info.bootstrap, list(topics.values())))
        metrics_port = broker.free_port()
        out("[4/6] starting logad serve, then simulating live traffic with anomalies")
        log_path = s.workdir / "serve.log"
        with log_path.open("wb") as log_fh:
            serve_proc = subprocess.Popen(
                _logad(
                    "serve",
                    "--model",
                    str(model_dir),
                    "--bootstrap",
                    info.bootstrap,
                    "--input-topic",
                    topics["events"],
                    "--scores-topic",
                    topics["scores"],
                    "--alerts-topic",
                    topics["alerts"],
                    "--dlq-topic",
                    topics["dlq"],
                    "--group-id",
                    f"demo-{run_id}",
                    "--metrics-port",
                    str(metrics_port),
                    "--gap-ms",
                    "5000",
                    "--idle-timeout-ms",
                    "3000",
                ),
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        _wait_ready(metrics_port, serve_proc, 120)
        out(f"      serving; its log is {log_path}")
        console_proc, console_url = _start_console(
            s, info.bootstrap, topics, metrics_port, model_dir
        )
        out(f"      alert console: {console_url} (its log is {s.workdir}/console.log)")
        out("[5/6] alerts as they arrive:")
        tally = asyncio.run(_live(info.bootstrap, topics, s, prepared.templates))
        p, r, tp, fp, fn = tally.precision_recall()
        out("[6/6] stopping serve and Kafka")
        out(
            f"SUMMARY sessions_scored={len(tally.labels)} anomalous={tp + fn} flagged={tp + fp} "
            f"precision={p:.3f} recall={r:.3f} (tp={tp} fp={fp} fn={fn}) "
            f"elapsed={time.monotonic() - t0:.0f}s"
        )
        out(f"        {tally.by_kind()}")
        for line in tally.patterns.summary():
            out(line)
        out(f"logs: {s.workdir}/{{parse,train,serve,console,demo}}.log")
        if s.keep:
            out(f"KEPT: the console {console_url} stays up with serve and Kafka; Ctrl-C stops")
            with contextlib.suppress(KeyboardInterrupt):
                while console_proc.poll() is None and serve_proc.poll() is None:
                    time.sleep(1)
        return 0 if len(tally.labels) >= s.live_sessions else 1
    finally:
        if console_proc is not None and console_proc.poll() is None:
            console_proc.send_signal(signal.SIGTERM)
            try:
                console_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                console_proc.kill()
        if serve_proc is not None and serve_proc.poll() is None:
            serve_proc.send_signal(signal.SIGTERM)
            try:
                serve_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve_proc.kill()
        broker.stop(data_dir=info.data_dir)
