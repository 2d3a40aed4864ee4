"""End-to-end stream throughput: events/s from the input topic to the scores topic.

    .venv/bin/python -m bench.stream_e2e                     # tiny model trained on the spot
    .venv/bin/python -m bench.stream_e2e --model BUNDLE --drain-events 300000

Starts its own Kafka broker (stream.devtools.broker, free port, temporary data dir) and measures two
ways, on the same broker and simulated traffic, each against a pass-through baseline (one
process that consumes, produces every message unchanged, and commits per poll: Kafka I/O
and Python overhead only, no model):

- backlog drain (the standard way, as kafka-consumer-perf-test): the input topic is
  pre-loaded with --drain-events events first; then the worker starts and is timed from
  its first consumed record until the last result is on the output topic (the broker's
  LogAppendTime of the last record). Nothing else runs meanwhile: the bench only polls
  serve's /metrics (every 20 ms until the first event is consumed, then every 250 ms) to
  see when it consumed its first and its last event.
  Runs for serve with the score cache (default size) and without it; without it again with
  the model in --model-processes child processes (`model_processes`); for the
  pass-through; and for a consume-only reader (`consume_only`: a
  group consumer with serve's fetch settings that polls, JSON-decodes every value and
  commits per poll, producing nothing; timed from its first to its last record): the
  ceiling of reading alone in one Python process, beside which serve's own per-event
  work shows.
- live (--live-sessions > 0): the worker is started first, then the bench produces the
  events and times from the first produced event until the last result arrived, so the
  producer (in this process, on the same cores) is inside the measurement.
- low repetition (--low-repetition 1): serve drains, cache on (in a thread, and in
  processes), the same sessions with 1 to 4 of each one's events copied elsewhere, so
  that few windows repeat (`low_repetition_traffic_repetition`) and the cache helps little.
- latency (--latency-s > 0): serve (cache off) fed the cache-off traffic's first sessions at
  --latency-fraction (0.5) of its cache-off drain rate; per session, from the broker's append
  time of its last event to that of its score (p50, p90, p99, max). The session's close is
  inside it: the gap in event time, or the idle timeout.
- scorer_only: `WindowScorer.score_windows` in this process on the cache-off traffic's
  windows (one per session), batched as serve batches them, no cache: the model's share of
  the cost. At serve's model thread count (`stream.serve.service.model_threads`) and through
  a pool of --model-processes single-threaded model processes (`scorer_only_processes`),
  each timed beside each cache-off drain (--repeats times, medians kept), and once on every
  core (`scorer_only_all_cores`). The ratios of serve's
  cache-off drains to these are in the result (`serve_no_cache*_vs_scorer_only*`).

--device cuda runs serve and the bare scorer on the GPU (no model-process drains, no all-cores
scorer) and writes bench/results/stream_e2e-cuda.json; bench/gpu_check.sh runs it there.

Each serve drain also reports its CPU seconds over the timed span (`cpu_s`, all threads;
`loop_cpu_s`, the consume loop's thread alone): steadier than wall time when other jobs
share the cores. `--baseline-repo DIR` adds a drain by serve run from another checkout
(e.g. the last commit), on the same broker and traffic, for before/after in one run.

The last windows of a drain close when their partition has been quiet for
--idle-timeout-ms (wall clock), so every serve time includes one idle timeout; it is
reported (`tail_s`: last event consumed -> last score) beside the start-up time (process
start -> partitions assigned, not timed). The traffic's repetition (the share of windows
whose events repeat an earlier window's exactly) is reported: the score cache's hit rate
can only be as good as the traffic's repetition. Writes bench/results/stream_e2e.json and
its entry in bench/results/index.json (bench.machine.write_result).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.machine import report_header, write_result
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.windows import Window
from stream.devtools import broker
from stream.devtools.simulate import generate_sessions, interleave, simulate_day
from stream.serve.service import model_threads, model_threads_idle
from stream.serve.settings import (
    ConsumerSettings,
    KafkaSettings,
    ModelRuntimeSettings,
    ServeSettings,
)

REPO = Path(__file__).resolve().parents[1]
DAY_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)


def train_tiny(root: Path) -> Path:
    """A tiny bundle trained for a few steps on a simulated day (speed does not depend on
    how well it learned)."""
    from schemas.daily_files import daily_file_name, write_sessions
    from trainer.dataset import DataSelection
    from trainer.settings import TrainSettings
    from trainer.train import TrainRequest, run_training

    days = root / "days"
    days.mkdir(parents=True)
    sims = simulate_day(random.Random(1), DAY_MS, 1500)
    write_sessions(days / daily_file_name(date(2026, 11, 1)), [s.to_session() for s in sims])
    settings = TrainSettings(
        preset="tiny",
        epochs=2,
        lr=1e-3,
        num_workers=0,
        device="cpu",
        tokens_per_batch=8192,
        token_cache_dir=root / "tokens",
        val_fraction=0.1,
        checkpoint_every_steps=0,
    )
    run_training(settings, TrainRequest(DataSelection((days,)), root / "bundle"))
    return root / "bundle"


async def produce(bootstrap: str, topic: str, msgs: Sequence[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in msgs]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def create_topic(
    bootstrap: str, name: str, partitions: int, append_time: bool = False
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    # LogAppendTime: each record carries the time the broker appended it, so "when was the
    # last result on the topic" can be read back after the run, without a live reader.
    configs = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, replication_factor=1, topic_configs=configs)]
        )
    finally:
        await admin.close()
    await asyncio.sleep(1.0)  # leaders elected


async def read_records(bootstrap: str, topic: str, partitions: int = 1) -> list[Any]:
    """Every record on `topic`'s partitions (read after the run)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for recs in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str) -> tuple[list[bytes], int]:
    """Every value on `topic` (one partition, as the bench's output topics have) and the
    highest record timestamp (ms)."""
    records = await read_records(bootstrap, topic)
    return [r.value for r in records], max((r.timestamp for r in records), default=0)


async def produce_paced(
    bootstrap: str, topic: str, msgs: Sequence[tuple[bytes, bytes]], per_s: float
) -> float:
    """Produce `msgs` at `per_s` messages a second (in 10 ms ticks); the rate reached."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    try:
        t0 = time.perf_counter()
        sent = 0
        futures = []
        while sent < len(msgs):
            due = min(len(msgs), int((time.perf_counter() - t0) * per_s) + 1)
            for k, v in msgs[sent:due]:
                futures.append(await producer.send(topic, value=v, key=k))
            sent = due
            await asyncio.sleep(0.01)
        await asyncio.gather(*futures)
        return len(msgs) / (time.perf_counter() - t0)
    finally:
        await producer.stop()


def session_latencies_ms(inputs: Sequence[Any], scores: Sequence[Any]) -> list[float]:
    """Per session: from the broker's append time of its last event (the input records are
    keyed by session id) to that of its last score record."""
    arrived: dict[str, int] = {}
    for r in inputs:
        sid = r.key.decode()
        arrived[sid] = max(arrived.get(sid, 0), r.timestamp)
    scored: dict[str, int] = {}
    for r in scores:
        sid = orjson.loads(r.value)["session_id"]
        scored[sid] = max(scored.get(sid, 0), r.timestamp)
    return [float(scored[sid] - arrived[sid]) for sid in scored if sid in arrived]


def percentiles_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and the maximum (nearest rank), in ms."""
    if not values:
        raise ValueError("no latencies")
    xs = sorted(values)

    def rank(q: int) -> float:
        return xs[min(len(xs) - 1, max(0, math.ceil(len(xs) * q / 100) - 1))]

    return {"p50_ms": rank(50), "p90_ms": rank(90), "p99_ms": rank(99), "max_ms": xs[-1]}


async def count_until(
    bootstrap: str, topic: str, done: Any, timeout_s: float, started: asyncio.Event
) -> float:
    """Read `topic` from the start until `done(value)` says all arrived; the arrival time."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=100)  # join metadata before timing starts
        started.set()
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                for r in recs:
                    if done(r.value):
                        return time.perf_counter()
        raise TimeoutError(f"{topic}: not everything arrived within {timeout_s} s")
    finally:
        await consumer.stop()


async def timed_run(
    bootstrap: str, in_topic: str, out_topic: str, msgs: Sequence[tuple[bytes, bytes]], done: Any
) -> float:
    started = asyncio.Event()
    reader = asyncio.create_task(count_until(bootstrap, out_topic, done, 600, started))
    await started.wait()
    t0 = time.perf_counter()
    await produce(bootstrap, in_topic, msgs)
    return await reader - t0


async def passthrough(
    bootstrap: str, src: str, dst: str, group: str, stop_after: int, stamp: str
) -> None:
    """The baseline worker: consume, produce each message unchanged (one gather per poll),
    commit per poll. With `stop_after` > 0 it exits once that many are acknowledged,
    having written the wall time (ms) of its first non-empty poll to `stamp`."""
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    copied = 0
    try:
        while stop_after <= 0 or copied < stop_after:
            batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            if batch and copied == 0 and stamp != "-":
                Path(stamp).write_text(str(time.time_ns() // 1_000_000))
            futures = [
                await producer.send(dst, value=r.value, key=r.key)
                for recs in batch.values()
                for r in recs
            ]
            await asyncio.gather(*futures)
            copied += len(futures)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def consume_only(bootstrap: str, src: str, group: str, n: int, stamp: str) -> None:
    """The read-side ceiling: a group consumer with serve's fetch settings
    (stream.serve.kafka_io.make_consumer) that decodes each value with orjson and commits per
    poll, until `n` records were read. Writes "<first poll ms> <last record ms>" (wall
    time) to `stamp`."""
    from stream.serve.kafka_io import make_consumer

    settings = ServeSettings(
        model=Path("-"),
        kafka=KafkaSettings(bootstrap=bootstrap),
        consumer=ConsumerSettings(group_id=group),
    )
    consumer = make_consumer(settings)
    consumer.subscribe([src])
    await consumer.start()
    got, first_ms, loads = 0, 0, orjson.loads
    try:
        while got < n:
            batch = await consumer.getmany(
                timeout_ms=settings.consumer.poll_timeout_ms,
                max_records=settings.consumer.poll_max_records,
            )
            if batch and not first_ms:
                first_ms = time.time_ns() // 1_000_000
            for recs in batch.values():
                for r in recs:
                    loads(r.value)
                got += len(recs)
            if batch:
                await consumer.commit()
        Path(stamp).write_text(f"{first_ms} {time.time_ns() // 1_000_000}")
    finally:
        await consumer.stop()


def metrics(port: int) -> dict[str, float]:
    """serve's unlabelled Prometheus samples, by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user + system) of process `pid` and its child processes (serve's model
    process) so far, and of its main thread (the consume loop's, in serve): less sensitive
    than wall time to other load on the cores."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> str:
        """The file's text, or "" when its thread or process has just gone."""
        try:
            with open(path) as fh:
                return fh.read()
        except (FileNotFoundError, ProcessLookupError):
            return ""

    def stat(path: str) -> float:
        text = read(path)
        if not text:
            return 0.0
        fields = text.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    # A child belongs to the thread that started it.
    children = [c for t in os.listdir(f"/proc/{pid}/task")
                for c in read(f"/proc/{pid}/task/{t}/children").split()]  # fmt: skip
    total = stat(f"/proc/{pid}/stat") + sum(stat(f"/proc/{c}/stat") for c in children)
    return total, stat(f"/proc/{pid}/task/{pid}/stat")


def machine_busy_seconds() -> float:
    """Core-seconds every process on this machine has spent busy so far (from /proc/stat):
    beside serve's own CPU time, it shows whether the cores were saturated (the broker and
    this bench run on them too)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"logad serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("logad serve never became ready")


class Serve:
    """One `logad serve` subprocess on its own topics and group."""

    def __init__(self, work: Path, name: str, config: dict[str, Any], repo: Path = REPO) -> None:
        self.port = broker.free_port()
        self.config = {**config, "metrics_port": self.port, "group_id": f"{name}.group"}
        path = work / f"{name}.json"
        path.write_bytes(orjson.dumps(self.config))
        cmd = [sys.executable, "-m", "stream.cli", "--log-level", "warning", "serve"]
        cmd += ["--config", str(path)]
        self.log = (work / f"{name}.log").open("wb")
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=repo, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(120)
        self.log.close()


def serve_topics(
    boot: str, config: dict[str, Any], topic: str, partitions: int, input_append_time: bool = False
) -> dict[str, Any]:
    """Create `topic` (serve's input) and `<topic>.scores` (one partition, broker append
    times); `config` with serve's topics named after `topic`."""
    asyncio.run(create_topic(boot, topic, partitions, append_time=input_append_time))
    asyncio.run(create_topic(boot, f"{topic}.scores", 1, append_time=True))
    return {**config, "input_topic": topic, "scores_topic": f"{topic}.scores",
            "alerts_topic": f"{topic}.alerts", "dlq_topic": f"{topic}.dlq"}  # fmt: skip


def drain_serve(
    boot: str,
    work: Path,
    name: str,
    config: dict[str, Any],
    msgs: Sequence[tuple[bytes, bytes]],
    ids: set[str],
    partitions: int,
    profile: Path | None = None,
    repo: Path = REPO,
) -> dict[str, Any]:
    """Pre-load a topic with `msgs`, then time one serve process draining it. With
    `profile`, py-spy samples serve (every thread, the scorer's too) while it drains.
    `repo`: the checkout serve runs from (its cwd comes first on sys.path)."""
    topic = f"{name}.in"
    cfg = serve_topics(boot, config, topic, partitions)
    asyncio.run(produce(boot, topic, msgs))
    load_before = os.getloadavg()[0]
    serve = Serve(work, name, cfg, repo)
    spy = None
    try:
        wait_ready(serve.port, serve.proc)
        startup = time.perf_counter() - serve.t_start
        if profile is not None:
            spy = subprocess.Popen(
                [
                    # The venv's, when the venv is not on PATH.
                    shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "-r",
                    "100",
                    "-f",
                    "raw",
                    "-o",
                    str(profile),
                    "--nonblocking",
                    "-p",
                    str(serve.proc.pid),
                ]
            )
        first_ms = consumed_ms = None
        m: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            m = metrics(serve.port)
            now_ms = time.time_ns() // 1_000_000
            events = m.get("logad_events_total", 0.0)
            if first_ms is None and events > 0:
                first_ms = now_ms
                cpu0 = cpu_seconds(serve.proc.pid)
                busy0 = machine_busy_seconds()
            if consumed_ms is None and events >= len(msgs):
                consumed_ms = now_ms
            if consumed_ms is not None and drained(m, len(msgs)):
                break
            # Fine-grained only until the first event: a scrape costs serve CPU.
            time.sleep(0.02 if first_ms is None else 0.25)
        else:
            raise TimeoutError(f"{name}: not drained within 600 s")
        cpu1 = cpu_seconds(serve.proc.pid)
        busy1 = machine_busy_seconds()
        load_after = os.getloadavg()[0]
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
        serve.stop()
    values, last_ms = asyncio.run(read_topic(boot, f"{topic}.scores"))
    scored = {orjson.loads(v)["session_id"] for v in values}
    if not ids <= scored:
        raise RuntimeError(f"{name}: {len(ids - scored)} sessions never scored")
    assert first_ms is not None and consumed_ms is not None
    seconds = (last_ms - first_ms) / 1000
    hits, misses = (
        m.get("logad_score_cache_hits_total", 0),
        m.get("logad_score_cache_misses_total", 0),
    )
    return {
        "events": len(msgs),
        "windows": len(values),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(msgs) / seconds),
        "startup_s": round(startup, 2),
        "tail_s": round((last_ms - consumed_ms) / 1000, 3),
        # CPU seconds serve spent from its first consumed event to drained (all threads,
        # and the consume loop's alone), and events per CPU-second of that loop.
        "cpu_s": round(cpu1[0] - cpu0[0], 2),
        "loop_cpu_s": round(cpu1[1] - cpu0[1], 2),
        # Busy core-seconds of the whole machine over the same span (broker included).
        "machine_busy_s": round(busy1 - busy0, 2),
        "events_per_loop_cpu_s": round(len(msgs) / max(cpu1[1] - cpu0[1], 0.01)),
        "idle_timeout_s": cfg["idle_timeout_ms"] / 1000,
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "pauses": m.get("logad_pauses_total"),  # times the scoring queue was full
        "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
    }


def drained(m: dict[str, float], events: int) -> bool:
    """Whether serve's metrics `m` say it consumed `events` events and scored every window
    of them."""
    return (
        m.get("logad_events_total", 0) >= events
        and m.get("logad_open_sessions", 1) == 0
        and m.get("logad_windows_scored_total", -1) == m.get("logad_windows_total")
    )


def latency_run(
    boot: str,
    work: Path,
    name: str,
    config: dict[str, Any],
    sims: Sequence[Any],
    partitions: int,
    per_s: float,
) -> dict[str, Any]:
    """Serve fed `sims` at `per_s` events a second: the latency from each session's last
    event to its score (session_latencies_ms). It includes the wait for the session to close
    (its gap in event time, or the idle timeout), as a user sees it."""
    topic = f"{name}.in"
    # The input's append times too: each session's last event's arrival.
    cfg = serve_topics(boot, config, topic, partitions, input_append_time=True)
    msgs = messages(sims)
    serve = Serve(work, name, cfg)
    try:
        wait_ready(serve.port, serve.proc)
        reached = asyncio.run(produce_paced(boot, topic, msgs, per_s))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            m = metrics(serve.port)
            if drained(m, len(msgs)):
                break
            time.sleep(0.25)
        else:
            raise TimeoutError(f"{name}: not scored within 300 s of the last event")
    finally:
        serve.stop()
    inputs = asyncio.run(read_records(boot, topic, partitions))
    scores = asyncio.run(read_records(boot, f"{topic}.scores"))
    lat = session_latencies_ms(inputs, scores)
    if len(lat) < len(sims):
        raise RuntimeError(f"{name}: {len(sims) - len(lat)} sessions never scored")
    return {
        "events": len(msgs),
        "sessions": len(lat),
        "target_events_per_s": round(per_s),
        "produced_events_per_s": round(reached),
        **percentiles_ms(lat),
        "idle_timeout_ms": cfg["idle_timeout_ms"],
        "gap_ms": cfg["gap_ms"],
    }


def drain_passthrough(
    boot: str, work: Path, name: str, msgs: Sequence[tuple[bytes, bytes]], partitions: int
) -> dict[str, Any]:
    src, dst = f"{name}.in", f"{name}.out"
    asyncio.run(create_topic(boot, src, partitions))
    asyncio.run(create_topic(boot, dst, 1, append_time=True))
    asyncio.run(produce(boot, src, msgs))
    stamp = work / f"{name}.first"
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "bench.stream_e2e", "--passthrough-worker", boot, src, dst,
           f"{name}.group", str(len(msgs)), str(stamp)]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, timeout=600, check=True)
    load_after = os.getloadavg()[0]
    values, last_ms = asyncio.run(read_topic(boot, dst))
    if len(values) < len(msgs):
        raise RuntimeError(f"{name}: {len(values)} of {len(msgs)} copied")
    seconds = (last_ms - int(stamp.read_text())) / 1000
    return {
        "events": len(msgs),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(msgs) / seconds),
        "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
    }


def drain_consume_only(
    boot: str, work: Path, name: str, msgs: Sequence[tuple[bytes, bytes]], partitions: int
) -> dict[str, Any]:
    src = f"{name}.in"
    asyncio.run(create_topic(boot, src, partitions))
    asyncio.run(produce(boot, src, msgs))
    stamp = work / f"{name}.times"
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "bench.stream_e2e", "--consume-only-worker", boot, src,
           f"{name}.group", str(len(msgs)), str(stamp)]  # fmt: skip
    subprocess.run(cmd, cwd=REPO, timeout=600, check=True)
    load_after = os.getloadavg()[0]
    first_ms, last_ms = map(int, stamp.read_text().split())
    seconds = (last_ms - first_ms) / 1000
    return {
        "events": len(msgs),
        "seconds": round(seconds, 3),
        "events_per_s": round(len(msgs) / seconds),
        "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
    }


def scorer_only(
    bundle: Path, windows: list[Window], max_tokens: int, threads: int, device: str = "cpu"
) -> dict[str, Any]:
    import torch

    from stream.serve.batcher import Batcher
    from trainer.scoring.scorer import WindowScorer

    torch.set_num_threads(threads)
    scorer = WindowScorer.from_bundle(bundle, device=device)
    batcher = Batcher(max_tokens, 10**9)
    batches = [b for w in windows for b in batcher.add(w, 0)] + batcher.flush()
    scorer.score_windows(batches[0].windows[:8], 0)  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        scorer.score_windows(b.windows, 0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    events = sum(len(w.events) for w in windows)
    return {
        "threads": threads,
        "device": device,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "windows_per_s": round(len(windows) / seconds, 1),
    }


def scorer_only_processes(
    bundle: Path, windows: list[Window], max_tokens: int, processes: int
) -> dict[str, float]:
    """`scorer_only` through a pool of single-threaded model processes (serve's
    `model_processes`), one batch per process at a time: the same cores as serve's pool."""
    from concurrent.futures import ThreadPoolExecutor

    from stream.serve.batcher import Batcher
    from stream.serve.model_process import start_process_pool

    pool = start_process_pool(bundle, "cpu", processes, model_threads(0, processes))
    try:
        batcher = Batcher(max_tokens, 10**9)
        batches = [b for w in windows for b in batcher.add(w, 0)] + batcher.flush()
        with ThreadPoolExecutor(processes) as ex:
            list(ex.map(lambda b: pool.score_windows(b.windows[:8], 0), batches[:processes]))
            t0 = time.perf_counter()
            list(ex.map(lambda b: pool.score_windows(b.windows, 0), batches))
            seconds = time.perf_counter() - t0
    finally:
        pool.close()
    events = sum(len(w.events) for w in windows)
    return {
        "processes": processes,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events/s (the lower middle one of an even count), with every
    run's events/s beside it."""
    ordered = sorted(runs, key=lambda r: r["events_per_s"])
    middle = ordered[(len(ordered) - 1) // 2]
    return {**middle, "events_per_s_runs": [r["events_per_s"] for r in runs]}


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Serve's cache-off drains against the bare scorer on the same windows, measured side by
    side in each repeat (the median of the repeats' ratios): with the model in a thread, and
    in processes (against one thread, and against as many processes)."""
    pairs = [
        ("serve_no_cache_vs_scorer_only", "serve_no_cache", "scorer_only"),
        ("serve_no_cache_processes_vs_scorer_only", "serve_no_cache_processes", "scorer_only"),
        (
            "serve_no_cache_processes_vs_scorer_only_processes",
            "serve_no_cache_processes",
            "scorer_only_processes",
        ),
    ]
    repeats = results.get("no_cache_repeats", [])
    return {
        name: round(statistics.median(r[a] / r[b] for r in repeats), 3)
        for name, a, b in pairs
        if repeats and a in repeats[0] and b in repeats[0]
    }


def repetition(windows: Sequence[tuple[str, ...]]) -> float:
    """The share of windows whose events exactly repeat an earlier window's: the best hit
    rate an exact cache could have on this traffic (with no size limit)."""
    return round(1 - len(set(windows)) / len(windows), 4) if windows else 0.0


def traffic(seed: int, min_events: int, interval_ms: float) -> list[Any]:
    """Simulated sessions (5% anomalous) until they hold at least `min_events` events."""
    sims: list[Any] = []
    n = 0
    for s in generate_sessions(random.Random(seed), 10**9, DAY_MS, interval_ms, 0.05):
        sims.append(s)
        n += len(s.events)
        if n >= min_events:
            return sims
    return sims


def varied(sims: Sequence[Any], seed: int) -> list[Any]:
    """The same sessions, each with 1 to 4 of its own events copied to random places: real
    traffic repeats itself far less than the simulator's (the copies keep the order of
    events, taking the time of the event before them)."""
    rng = random.Random(seed)
    out = []
    for s in sims:
        events = list(s.events)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(events) + 1)
            ts = events[max(i - 1, 0)].ts
            events.insert(i, dataclasses.replace(events[rng.randrange(len(events))], ts=ts))
        out.append(dataclasses.replace(s, events=tuple(events)))
    return out


def head_sessions(sims: Sequence[Any], events: float) -> list[Any]:
    """The first sessions of `sims` that together hold at least `events` events."""
    n = 0
    for i, s in enumerate(sims):
        n += len(s.events)
        if n >= events:
            return list(sims[: i + 1])
    return list(sims)


def messages(sims: Sequence[Any]) -> list[tuple[bytes, bytes]]:
    return [(e.session_id.encode(), e.encode()) for e in interleave(sims)]


def settings_override(text: str) -> dict[str, Any]:
    """`KEY=VALUE[,KEY=VALUE]`, values as JSON (a bare word stays a string)."""
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, help="bundle to serve (default: train a tiny one)")
    p.add_argument(
        "--drain-events", type=int, default=200_000, help="backlog drain size (default: 200000)"
    )
    p.add_argument(
        "--nocache-events",
        type=int,
        default=600_000,
        help="backlog drain size with the score cache off, 0 = skip; large, so that the "
        "drain's fixed start and end (one idle timeout) weigh little (default: 600000)",
    )
    p.add_argument(
        "--model-processes",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="also drain with serve's model in this many processes (model_processes), with "
        "the cache off and on the low-repetition traffic, and time the bare scorer on as "
        "many; 0 = skip (default: one per core)",
    )
    p.add_argument(
        "--low-repetition",
        type=int,
        default=1,
        help="1: also drain (cache on) traffic that repeats itself far less, the same "
        "sessions each with a few of their events copied elsewhere (default: 1)",
    )
    p.add_argument(
        "--live-sessions",
        type=int,
        default=4000,
        help="live run sessions, 0 = skip (default: 4000)",
    )
    p.add_argument(
        "--scorer-windows",
        type=int,
        default=10**9,
        help="scorer_only windows (the first N of the cache-off traffic's), 0 = skip "
        "(default: all)",
    )
    p.add_argument("--partitions", type=int, default=4, help="input partitions (default: 4)")
    p.add_argument(
        "--interval-ms", type=float, default=10.0, help="mean session spacing (default: 10)"
    )
    p.add_argument("--gap-ms", type=int, default=2000, help="serve's gap (default: 2000)")
    p.add_argument(
        "--idle-timeout-ms", type=int, default=500, help="serve's idle flush (default: 500)"
    )
    p.add_argument(
        "--max-batch-tokens", type=int, default=16384, help="serve's batch (default: 16384)"
    )
    p.add_argument(
        "--cache-size", type=int, default=100_000, help="serve's score cache (default: 100000)"
    )
    p.add_argument(
        "--score-threads",
        type=int,
        default=0,
        help="serve's torch threads, 0 = torch's default (default: 0)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="cache-off drains and bare-scorer timings, side by side, this many times (default: 3)",
    )
    p.add_argument("--seed", type=int, default=0, help="traffic seed (default: 0)")
    p.add_argument(
        "--profile", type=Path, help="py-spy raw profile of the cached serve drain to this file"
    )
    p.add_argument(
        "--compare-switch-ms",
        type=lambda v: [float(x) for x in v.split(",") if x],
        default=[],
        help="also drain (cache on) with serve's switch_interval_ms at each of these values, "
        "e.g. 5,0.2 (default: none)",
    )
    p.add_argument(
        "--baseline-repo",
        type=Path,
        help="also drain (cache on) with serve run from this checkout of logad, e.g. the "
        "last commit, on the same broker and traffic (default: none)",
    )
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        type=settings_override,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="also drain (cache on) with these serve settings changed, values as JSON, e.g. "
        "model_process=false or queue_max_windows=16384; repeatable (default: none)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="serve's and the bare scorer's device, e.g. cuda; on a GPU the model-process "
        "drains are skipped (a CPU lever) and the result is stream_e2e-<device>.json "
        "(default: cpu)",
    )
    p.add_argument(
        "--latency-s",
        type=float,
        default=20.0,
        help="also feed serve (cache off) at --latency-fraction of its cache-off drain rate "
        "for about this many seconds, and report the latency from each session's last event "
        "to its score (p50, p99); 0 = skip (default: 20)",
    )
    p.add_argument(
        "--latency-fraction",
        type=float,
        default=0.5,
        help="the latency run's rate, as a share of the cache-off drain's (default: 0.5)",
    )
    p.add_argument("--passthrough-worker", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--consume-only-worker", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.passthrough_worker:
        boot, src, dst, group, n, stamp = args.passthrough_worker
        asyncio.run(passthrough(boot, src, dst, group, int(n), stamp))
        return 0
    if args.consume_only_worker:
        boot, src, group, n, stamp = args.consume_only_worker
        asyncio.run(consume_only(boot, src, group, int(n), stamp))
        return 0
    configure_logging("warning", True)
    if args.device != "cpu":
        args.model_processes = 0  # processes spread a CPU model over cores; a GPU has one

    work = Path(tempfile.mkdtemp(prefix="logad-bench-e2e-"))
    bundle = args.model or train_tiny(work / "model")
    drain_sims = traffic(args.seed, args.drain_events, args.interval_ms)
    drain_msgs = messages(drain_sims)
    nocache_sims = traffic(args.seed, args.nocache_events, args.interval_ms)
    nocache_sims = nocache_sims if args.nocache_events > 0 else []
    nocache_msgs = messages(nocache_sims)
    lowrep_sims: list[Any] = []  # made when needed: the process stays small before that
    lowrep_msgs: list[tuple[bytes, bytes]] = []
    mp = {"model_processes": args.model_processes}
    live_sims = list(
        generate_sessions(
            random.Random(args.seed), args.live_sessions, DAY_MS, args.interval_ms, 0.05
        )
    )
    say(f"drain: {len(drain_sims)} sessions, {len(drain_msgs)} events; starting Kafka")
    seqs = [tuple(e.event_id for e in s.events)[:510] for s in drain_sims]
    # The bare scorer's windows: one per session of the cache-off drains' traffic (of the
    # drain's without them), the first --scorer-windows of them.
    windows = [
        Window.build(s.session_id, 0, tuple(e.event_id for e in s.events)[:510], 0, 0, 0, i, i)
        for i, s in enumerate(nocache_sims or drain_sims)
    ][: args.scorer_windows]

    config = {
        "model": str(bundle),
        "gap_ms": args.gap_ms,
        "idle_timeout_ms": args.idle_timeout_ms,
        "max_batch_tokens": args.max_batch_tokens,
        "device": args.device,
        "score_cache_size": args.cache_size,
        "score_threads": args.score_threads,
    }
    info = broker.start(port=broker.free_port(), data_dir=work / "kafka", timeout_s=90)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {}
    try:
        boot = info.bootstrap
        config["bootstrap"] = boot
        drain: dict[str, Any] = {}
        drain["passthrough"] = drain_passthrough(boot, work, "dpt", drain_msgs, args.partitions)
        say(f"drain passthrough: {drain['passthrough']}")
        drain["consume_only"] = drain_consume_only(boot, work, "dco", drain_msgs, args.partitions)
        say(f"drain consume_only: {drain['consume_only']}")
        drain["serve"] = drain_serve(
            boot, work, "dsc", config, drain_msgs, {s.session_id for s in drain_sims},
            args.partitions, args.profile,
        )  # fmt: skip
        say(f"drain serve (cache on): {drain['serve']}")
        if args.baseline_repo is not None:
            drain["serve_baseline_repo"] = drain_serve(
                boot, work, "dbr", config, drain_msgs, {s.session_id for s in drain_sims},
                args.partitions, repo=args.baseline_repo.resolve(),
            )  # fmt: skip
            drain["serve_baseline_repo"]["repo"] = str(args.baseline_repo)
            say(f"drain serve from {args.baseline_repo}: {drain['serve_baseline_repo']}")
        # Each comparison drains serve again with some settings changed.
        variants = [
            ("serve_" + ",".join(f"{k}={v}" for k, v in o.items()), f"dcmp{i}", o)
            for i, o in enumerate(args.compare)
        ] + [
            (f"serve_switch_{ms:g}ms", f"dsw{ms:g}".replace(".", "_"), {"switch_interval_ms": ms})
            for ms in args.compare_switch_ms
        ]
        for key, name, override in variants:
            drain[key] = drain_serve(
                boot, work, name, {**config, **override}, drain_msgs,
                {s.session_id for s in drain_sims}, args.partitions,
            )  # fmt: skip
            say(f"drain {key}: {drain[key]}")
        # Cache off: serve against the bare scorer, side by side in each repeat, since the
        # machine's speed drifts between minutes.
        runs: dict[str, list[dict[str, Any]]] = {}

        def record(key: str, r: int, run: dict[str, Any]) -> None:
            runs.setdefault(key, []).append(run)
            say(f"{key} (repeat {r + 1}): {run}")

        ids = {s.session_id for s in nocache_sims}
        no_cache = {**config, "score_cache_size": 0}
        threads = model_threads(args.score_threads)
        for r in range(args.repeats if nocache_msgs else 0):
            record(
                "serve_no_cache",
                r,
                drain_serve(boot, work, f"dnc{r}", no_cache, nocache_msgs, ids, args.partitions),
            )
            record(
                "scorer_only",
                r,
                scorer_only(bundle, windows, args.max_batch_tokens, threads, args.device),
            )
            if args.model_processes:
                record(
                    "serve_no_cache_processes",
                    r,
                    {
                        **drain_serve(
                            boot,
                            work,
                            f"dncp{r}",
                            {**no_cache, **mp},
                            nocache_msgs,
                            ids,
                            args.partitions,
                        ),
                        **mp,
                    },
                )
                record(
                    "scorer_only_processes",
                    r,
                    scorer_only_processes(
                        bundle, windows, args.max_batch_tokens, args.model_processes
                    ),
                )
        for key, rs in runs.items():
            (drain if key.startswith("serve") else results)[key] = median_run(rs)
        if runs:
            results["no_cache_repeats"] = [
                {key: rs[i]["events_per_s"] for key, rs in runs.items()}
                for i in range(args.repeats)
            ]
        if args.low_repetition:
            lowrep_sims = varied(drain_sims, args.seed)
            lowrep_msgs = messages(lowrep_sims)
            ids = {s.session_id for s in lowrep_sims}
            drain["serve_low_repetition"] = drain_serve(
                boot, work, "dlr", config, lowrep_msgs, ids, args.partitions
            )
            say(f"drain serve (low repetition): {drain['serve_low_repetition']}")
            if args.model_processes:
                drain["serve_low_repetition_processes"] = drain_serve(
                    boot, work, "dlrp", {**config, **mp}, lowrep_msgs, ids, args.partitions
                )
                drain["serve_low_repetition_processes"].update(mp)
                say(f"drain serve (low repetition, processes): "
                    f"{drain['serve_low_repetition_processes']}")  # fmt: skip
        results["drain"] = drain
        saturated = drain.get("serve_no_cache")
        if args.latency_s > 0 and saturated is not None:
            per_s = args.latency_fraction * saturated["events_per_s"]
            latency_sims = head_sessions(nocache_sims, per_s * args.latency_s)
            results["latency"] = {
                "fraction_of_no_cache_drain": args.latency_fraction,
                **latency_run(boot, work, "lat", no_cache, latency_sims, args.partitions, per_s),
            }
            say(f"latency at {args.latency_fraction:g} of the cache-off drain: "
                f"{results['latency']}")  # fmt: skip

        if live_sims:
            live: dict[str, Any] = {}
            msgs = messages(live_sims)
            n_events, ids = len(msgs), {s.session_id for s in live_sims}
            asyncio.run(create_topic(boot, "pt.in", args.partitions))
            asyncio.run(create_topic(boot, "pt.out", 1))
            cmd = [sys.executable, "-m", "bench.stream_e2e", "--passthrough-worker", boot,
                   "pt.in", "pt.out", "pt.group", "0", "-"]  # fmt: skip
            procs.append(subprocess.Popen(cmd, cwd=REPO))
            time.sleep(3.0)  # joined its group
            seen = [0]

            def all_copied(_v: bytes) -> bool:
                seen[0] += 1
                return seen[0] >= n_events

            load0 = os.getloadavg()[0]
            secs = asyncio.run(timed_run(boot, "pt.in", "pt.out", msgs, all_copied))
            live["passthrough"] = {
                "events": n_events,
                "seconds": round(secs, 3),
                "events_per_s": round(n_events / secs),
                "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
            procs.pop().terminate()
            say(f"live passthrough: {live['passthrough']}")

            serve = Serve(work, "live", serve_topics(boot, config, "ev", args.partitions))
            try:
                wait_ready(serve.port, serve.proc)
                scored: set[str] = set()

                def all_scored(v: bytes) -> bool:
                    scored.add(orjson.loads(v)["session_id"])
                    return len(scored) >= len(ids)

                load0 = os.getloadavg()[0]
                secs = asyncio.run(timed_run(boot, "ev", "ev.scores", msgs, all_scored))
                m = metrics(serve.port)
            finally:
                serve.stop()
            hits = m.get("logad_score_cache_hits_total", 0)
            misses = m.get("logad_score_cache_misses_total", 0)
            live["serve"] = {
                "events": n_events,
                "seconds": round(secs, 3),
                "events_per_s": round(n_events / secs),
                "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
                "pauses": m.get("logad_pauses_total"),  # times the scoring queue was full
                "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            }
            say(f"live serve: {live['serve']}")
            results["live"] = live
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        broker.stop(data_dir=work / "kafka")
        shutil.rmtree(work / "kafka", ignore_errors=True)  # hundreds of MB of topic data

    if windows and args.device == "cpu":  # every core, beside serve's thread count
        cores = len(os.sched_getaffinity(0))
        all_cores = scorer_only(bundle, windows, args.max_batch_tokens, cores)
        results["scorer_only_all_cores"] = all_cores
        say(f"scorer_only_all_cores: {all_cores}")

    d = results["drain"]
    report = {
        **report_header("stream_e2e"),
        "config": {
            "drain_events": len(drain_msgs),
            "drain_sessions": len(drain_sims),
            "nocache_events": len(nocache_msgs),
            "low_repetition_events": len(lowrep_msgs),
            "model_processes": args.model_processes,
            "live_sessions": len(live_sims),
            "partitions": args.partitions,
            "interval_ms": args.interval_ms,
            "gap_ms": args.gap_ms,
            "idle_timeout_ms": args.idle_timeout_ms,
            "max_batch_tokens": args.max_batch_tokens,
            "score_cache_size": args.cache_size,
            "score_threads": args.score_threads,
            "serve_model_threads": model_threads(args.score_threads),
            "serve_model_threads_idle": model_threads_idle(0, model_threads(args.score_threads)),
            "serve_switch_interval_ms": ModelRuntimeSettings.switch_interval_ms,
            "model": "tiny (trained on the spot)" if args.model is None else str(args.model),
            "model_manifest": {
                k: v
                for k, v in orjson.loads((bundle / "manifest.json").read_bytes()).items()
                if k in ("version", "preset", "created_at")
            },
            "device": args.device,
            "kafka": broker.KAFKA_VERSION,
        },
        # The share of the drain's windows whose events repeat an earlier one exactly.
        "traffic_repetition": repetition(seqs),
        "low_repetition_traffic_repetition": repetition(
            [tuple(e.event_id for e in s.events)[:510] for s in lowrep_sims]
        ),
        "results": results,
        "serve_vs_passthrough_drain": round(
            d["serve"]["events_per_s"] / d["passthrough"]["events_per_s"], 3
        ),
        "serve_vs_consume_only_drain": round(
            d["serve"]["events_per_s"] / d["consume_only"]["events_per_s"], 3
        ),
        **ratios(results),
        "target_events_per_s": 50_000,
    }
    out = write_result(
        "stream_e2e" if args.device == "cpu" else f"stream_e2e-{args.device}", report
    )
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
