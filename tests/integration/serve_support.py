"""Helpers for the `logad serve` integration tests: a tiny trained bundle, simulated traffic,
topic I/O, and serve run in-process or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import sys
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from schemas.bundle import write_manifest
from schemas.daily_files import daily_file_name, write_sessions
from schemas.runtime.settings import build_settings, settings_for_log
from schemas.scores import Score
from stream.devtools.simulate import SimSession, generate_sessions, interleave, simulate_day
from stream.serve.app import serve
from stream.serve.settings import ServeSettings

CreateTopic = Callable[..., Awaitable[str]]
MakeTopics = Callable[[int], Awaitable["Topics"]]
"""`await serve_topics(partitions)`: this test's Topics, created on the broker."""
"""The `create_topic` fixture (tests/integration/conftest.py)."""
WindowKey = tuple[str, int | None, int | None]
"""A window as session id, first and last event time."""

REPO = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 1)
DAY_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)

_bundle_cache: dict[Path, Path] = {}


def tiny_bundle(root: Path) -> Path:
    """A `tiny` model trained briefly on a simulated day of normal traffic (once per process).

    A few optimizer steps are enough for the model to tell the injected anomalies from
    normal sessions far more often than not, which is all these tests need."""
    if root in _bundle_cache:
        return _bundle_cache[root]
    sims = simulate_day(random.Random(1), DAY_MS, 1500)
    bundle = train_tiny(root, sims, epochs=3, lr=1e-3, tokens_per_batch=8192, val_fraction=0.1)
    _bundle_cache[root] = bundle
    return bundle


def train_tiny(root: Path, sessions: Sequence[SimSession], **overrides: Any) -> Path:
    """`logad train` in this process: `sessions` as one daily file under ROOT/days, a `tiny`
    model on the CPU, the bundle in ROOT/bundle (token cache in ROOT/tokens)."""
    from trainer.dataset import DataSelection
    from trainer.settings import TrainSettings
    from trainer.train import TrainRequest, run_training

    days = root / "days"
    days.mkdir(parents=True, exist_ok=True)
    write_sessions(days / daily_file_name(DAY), [s.to_session() for s in sessions])
    values: dict[str, Any] = {
        "preset": "tiny",
        "num_workers": 0,
        "device": "cpu",
        "token_cache_dir": root / "tokens",
        "threshold_quantile": 0.99,
        "checkpoint_every_steps": 0,
    }
    values.update(overrides)
    run_training(TrainSettings(**values), TrainRequest(DataSelection((days,)), root / "bundle"))
    return root / "bundle"


def copy_bundle(bundle: Path, dest: Path, version: str) -> Path:
    """The same weights under another version: a distinct, valid bundle for reload tests."""
    shutil.copytree(bundle, dest)
    (dest / "manifest.json").unlink()
    write_manifest(dest, version, None, None, preset="tiny")
    return dest


def traffic(n: int, anomaly_rate: float, seed: int, start_ms: int = DAY_MS) -> list[SimSession]:
    return list(generate_sessions(random.Random(seed), n, start_ms, 20.0, anomaly_rate))


def messages(sessions: Iterable[SimSession]) -> list[tuple[bytes, bytes]]:
    """(key, value) in event-time order, keyed by session id as a real producer would."""
    return [(e.session_id.encode(), e.encode()) for e in interleave(sessions)]


@dataclass(frozen=True)
class Topics:
    input: str
    scores: str
    alerts: str
    dlq: str
    group: str

    @classmethod
    def for_test(cls, base: str) -> Topics:
        return cls(base, f"{base}.scores", f"{base}.alerts", f"{base}.dlq", f"{base}.group")


async def create_topics(create: Callable[..., Any], topics: Topics, partitions: int) -> None:
    await create(topics.input, partitions)
    for t in (topics.scores, topics.alerts, topics.dlq):
        await create(t, 1)


def settings_for(bootstrap: str, topics: Topics, model: Path, **overrides: Any) -> ServeSettings:
    """Short timeouts so windows close and groups rebalance within a test's patience."""
    values: dict[str, Any] = {
        "model": model,
        "bootstrap": bootstrap,
        "input_topic": topics.input,
        "scores_topic": topics.scores,
        "alerts_topic": topics.alerts,
        "dlq_topic": topics.dlq,
        "group_id": topics.group,
        "gap_ms": 10_000,
        "idle_timeout_ms": 2_000,
        "session_timeout_ms": 6_000,
        "heartbeat_interval_ms": 1_000,
        "commit_interval_ms": 200,
        "max_batch_wait_ms": 20,
        "metrics_port": 0,
        "device": "cpu",
        "reload_check_s": 0.2,
    }
    values.update(overrides)
    return build_settings(ServeSettings, flags=values, environ={})


async def produce(bootstrap: str, topic: str, msgs: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in msgs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout_s: float = 60.0,
    isolation_level: str = "read_uncommitted",
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the start, read until `until(records)` or the timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not until(records) and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


def scores_of(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[Score]:
    return [Score.decode(r.value) for r in records]


def covers(session_ids: set[str]) -> Callable[[list[ConsumerRecord[bytes, bytes]]], bool]:
    """`until` for read_topic: every session id has at least one score. Each record is read
    once, so a topic of many scores is not re-decoded on every poll."""
    seen: set[str] = set()
    read = 0

    def done(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        nonlocal read
        seen.update(orjson.loads(r.value)["session_id"] for r in records[read:])
        read = len(records)
        return session_ids <= seen

    return done


async def until_ready(port: int, timeout_s: float = 60.0) -> None:
    """Wait for serve's /readyz on `port` to answer 200 (a process not yet listening too)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        with contextlib.suppress(OSError):  # refused until the process serves /readyz
            if (await loop.run_in_executor(None, http_get, port, "/readyz"))[0] == 200:
                return
        assert loop.time() < deadline, "serve never became ready (no partitions assigned)"
        await asyncio.sleep(0.2)


async def committed_and_end(
    bootstrap: str, group: str, topic: str, partitions: int
) -> tuple[dict[int, int | None], dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        end = {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    return committed, end


@contextlib.asynccontextmanager
async def serving(
    settings: ServeSettings, timeout_s: float = 60.0
) -> AsyncIterator[asyncio.Task[None]]:
    """`logad serve` in this process, stopped (flush, score, commit) on exit."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raise what went wrong
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout_s)


def start_serve_process(
    settings: ServeSettings, workdir: Path, name: str
) -> subprocess.Popen[bytes]:
    """`logad serve --config FILE` as a child process; its log goes to workdir/NAME.log."""
    config = workdir / f"{name}.json"
    # Each section as an object of its own, as a config file may give it.
    config.write_bytes(orjson.dumps(settings_for_log(settings)))
    log = (workdir / f"{name}.log").open("ab")
    # The same as the `logad` entry point, without needing the package installed.
    code = "import sys; from stream.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "--log-json", "serve", "--config", str(config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def day_start_ms(day: date) -> int:
    """Epoch ms of `day`'s UTC midnight."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


async def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `check` every 0.1 s until it holds; fail, naming `what`, after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(0.1)


async def until_counter(port: int, name: str, at_least: float, timeout_s: float = 60.0) -> None:
    """Poll serve's /metrics on `port` until the unlabelled metric `name` reaches `at_least`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        _, text = await loop.run_in_executor(None, http_get, port, "/metrics")
        values = [ln.split()[1] for ln in text.splitlines() if ln.startswith(f"{name} ")]
        if values and float(values[0]) >= at_least:
            return
        assert loop.time() < deadline, f"{name} stayed below {at_least} for {timeout_s} s"
        await asyncio.sleep(0.1)


def window_sizes(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[str, dict[str, int]]:
    """Per session, its distinct windows (a duplicate has the same id) and their event counts."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for s in scores_of(records):
        out[s.session_id][s.window_id] = s.n_events
    return out
