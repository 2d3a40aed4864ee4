"""`logad demo`: the whole system on one laptop, end to end, in a few minutes on 2 cores.

1. start a local Kafka broker (free port, temporary data dir);
2. simulate a few days of normal traffic into daily files;
3. train a `small` model on them (CPU unless a GPU is present);
4. start `logad serve` as its own process, then simulate live traffic with anomalies;
5. print alerts as they arrive: session, score, surprising events and what was expected;
6. print precision and recall against the injected labels, and stop everything it started.
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
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.errors import LogadError
from schemas.runtime.console import out
from schemas.runtime.settings import only
from schemas.scores import Alert, Score
from stream.devtools import broker
from stream.devtools.simulate.outputs import produce, write_days
from stream.devtools.simulate.settings import DailySettings, LiveSettings, TrafficSettings
from trainer.settings import TrainSettings

log = structlog.get_logger(__name__)


_TRAINED = ("preset", "epochs", "lr", "tokens_per_batch", "warmup_steps")
"""The training settings the demo passes to `logad train` (the rest are the trainer's)."""


@dataclass(frozen=True)
class DemoSettings:
    """Every knob of `logad demo`: simulate's and train's sections, with the demo's defaults.

    The simulated days are normal traffic; the live traffic carries anomalies."""

    workdir: Path = Path("demo-out")
    """Directory for the demo's daily files, model, broker data and serve log."""
    live_sessions: int = 1_500
    """Sessions of live traffic to stream through logad serve."""
    max_alerts_shown: int = 8
    """Alerts printed in full (the rest are counted)."""
    timeout_s: float = 300.0
    """Give up waiting for scores after this many seconds."""
    daily: DailySettings = field(default=DailySettings(), metadata=only("days", "sessions_per_day"))
    training: TrainSettings = field(
        # Few steps on little data: a learning rate well above production's.
        default=TrainSettings(
            preset="small", epochs=9, lr=1e-3, tokens_per_batch=1024, warmup_steps=10
        ),
        metadata=only("preset", "epochs", "lr", "tokens_per_batch"),
    )
    live: LiveSettings = field(default=LiveSettings(rate=4_000.0), metadata=only("rate"))
    traffic: TrafficSettings = field(default=TrafficSettings(anomaly_rate=0.05, seed=7))


@dataclass
class Tally:
    """Session-level outcome: a session is flagged when any of its windows alerted."""

    labels: dict[str, int]
    flagged: set[str]

    def precision_recall(self) -> tuple[float, float, int, int, int]:
        pos = {s for s, y in self.labels.items() if y == 1}
        tp = len(pos & self.flagged)
        fp = len(self.flagged - pos)
        fn = len(pos - self.flagged)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        return precision, recall, tp, fp, fn


def format_alert(alert: Alert) -> str:
    lines = [
        f"ALERT session={alert.session_id} score={alert.score:.2f} "
        f"threshold={alert.threshold:.2f} events={alert.n_events} model={alert.model_version}"
    ]
    for s in alert.surprising[:3]:
        expected = ", ".join(f"{e.event_id} ({e.prob:.0%})" for e in s.expected)
        lines.append(f"    #{s.position} {s.event_id}  nll={s.nll:.1f}  expected: {expected}")
        if s.template is not None:
            lines.append(f"      new log template: {s.template}")
    return "\n".join(lines)


def _logad(*args: str) -> list[str]:
    # A child process, not an import: the devtools sit below the CLI.
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
) -> None:
    """Print alerts as they arrive and tally scores until every live session is scored."""
    consumer = AIOKafkaConsumer(
        scores_topic, alerts_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    shown = 0
    try:
        await consumer.start()
        while not done.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for rec in records:
                    assert rec.value is not None
                    if tp.topic == alerts_topic:
                        if shown < s.max_alerts_shown:
                            out(format_alert(Alert.decode(rec.value)))
                            shown += 1
                        elif shown == s.max_alerts_shown:
                            out("    ... (further alerts counted, not shown)")
                            shown += 1
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


async def _live(bootstrap: str, topics: dict[str, str], s: DemoSettings) -> Tally:
    tally = Tally({}, set())
    done = asyncio.Event()
    watcher = asyncio.create_task(
        _watch(bootstrap, topics["scores"], topics["alerts"], tally, s, done)
    )
    live = LiveSettings(
        bootstrap=bootstrap,
        topic=topics["events"],
        sessions=s.live_sessions,
        rate=s.live.rate,
        malformed=3,
    )
    traffic = dataclasses.replace(s.traffic, seed=s.traffic.seed + 1000)
    await produce(live, traffic, int(time.time() * 1000))
    try:
        await asyncio.wait_for(done.wait(), timeout=s.timeout_s)
    except TimeoutError:
        log.warning("demo_timeout", scored_sessions=len(tally.labels), wanted=s.live_sessions)
        done.set()
    await watcher
    return tally


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally blocks below stop serve and the broker


def train_argv(s: DemoSettings, days_dir: Path, model_dir: Path) -> list[str]:
    """`logad train` on the simulated days, as the demo runs it."""
    argv = ["--log-level", "warning", "train", "--data", str(days_dir), "--out", str(model_dir)]
    for name in _TRAINED:
        argv += ["--" + name.replace("_", "-"), str(getattr(s.training, name))]
    return [*argv, "--seed", str(s.traffic.seed)]


def run_demo(s: DemoSettings) -> int:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    s.workdir.mkdir(parents=True, exist_ok=True)
    days_dir, model_dir = s.workdir / "days", s.workdir / "model"
    t0 = time.monotonic()
    out(f"[1/6] starting a local Kafka broker ({broker.KAFKA_VERSION})")
    info = broker.start(port=broker.free_port(), data_dir=s.workdir / "kafka")
    serve_proc: subprocess.Popen[bytes] | None = None
    try:
        out(f"      broker at {info.bootstrap}")
        out(f"[2/6] simulating {s.daily.days} days x {s.daily.sessions_per_day} normal sessions")
        normal = TrafficSettings(seed=s.traffic.seed)
        write_days(s.daily, normal, days_dir, date.today())
        if not (model_dir / "manifest.json").is_file():
            out(f"[3/6] training a '{s.training.preset}' model for {s.training.epochs} epochs")
            # A run interrupted earlier left checkpoints behind; the demo starts afresh.
            shutil.rmtree(model_dir.with_name(model_dir.name + ".run"), ignore_errors=True)
            rc = subprocess.run(
                [sys.executable, "-m", "stream.cli", *train_argv(s, days_dir, model_dir)]
            ).returncode
            if rc != 0:
                return rc
        else:
            out(f"[3/6] reusing the model in {model_dir} (delete it to retrain)")
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
        out("[5/6] alerts as they arrive:")
        tally = asyncio.run(_live(info.bootstrap, topics, s))
        p, r, tp, fp, fn = tally.precision_recall()
        out("[6/6] stopping serve and Kafka")
        out(
            f"SUMMARY sessions_scored={len(tally.labels)} anomalous={tp + fn} flagged={tp + fp} "
            f"precision={p:.3f} recall={r:.3f} (tp={tp} fp={fp} fn={fn}) "
            f"elapsed={time.monotonic() - t0:.0f}s"
        )
        return 0 if len(tally.labels) >= s.live_sessions else 1
    finally:
        if serve_proc is not None and serve_proc.poll() is None:
            serve_proc.send_signal(signal.SIGTERM)
            try:
                serve_proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve_proc.kill()
        broker.stop(data_dir=info.data_dir)
