"""End-to-end stream throughput: events/s from the input topic to the scores topic.

    .venv/bin/python -m bench.stream_e2e                     # tiny model trained on the spot
    .venv/bin/python -m bench.stream_e2e --model BUNDLE --sessions 8000

Starts its own Kafka broker (stream.broker, free port, temporary data dir), then times, on
the same simulated traffic and the same broker:

- passthrough (baseline): one process consumes the input topic in a group and produces
  every message to an output topic, committing per poll: Kafka I/O and Python overhead only.
- serve: one `logad serve` process (subprocess, CPU) with the tiny model: decode,
  sessionize, batch, score, publish, commit. Timed from the first produced event until a
  score for every session is on the scores topic.
- scorer_only: `WindowScorer.score_windows` in this process on the same sessions' windows,
  batched as serve batches them: the model's share of the cost.

Each end-to-end run is timed from the start of producing until the last output arrived, so
the producer is inside the measurement (as it is in production). Windows close by the
event-time gap as traffic streams past; the last ones wait for `--idle-timeout-ms` of quiet,
which is included. Writes bench/results/stream_e2e-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.machine import cpu_model
from schemas.console import out as say
from schemas.logs import configure_logging
from schemas.windows import Window
from stream import broker
from stream.simulate import generate_sessions, interleave, simulate_day

RESULTS = Path(__file__).resolve().parent / "results"
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


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()
    await asyncio.sleep(1.0)  # leaders elected


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


async def passthrough(bootstrap: str, src: str, dst: str, group: str) -> None:
    """The baseline worker: consume, produce each message unchanged, commit per poll."""
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
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=2000)
            futures = [
                await producer.send(dst, value=r.value, key=r.key)
                for recs in batch.values()
                for r in recs
            ]
            await asyncio.gather(*futures)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


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
        time.sleep(0.2)
    raise TimeoutError("logad serve never became ready")


def scorer_only(bundle: Path, windows: list[Window], max_tokens: int) -> dict[str, float]:
    from stream.batcher import Batcher
    from trainer.scoring import WindowScorer

    scorer = WindowScorer.from_bundle(bundle, device="cpu")
    batcher = Batcher(max_tokens, 10**9)
    batches = [b for w in windows for b in batcher.add(w, 0)] + batcher.flush()
    scorer.score_windows(batches[0].windows[:8], 0)  # warm-up
    t0 = time.perf_counter()
    for b in batches:
        scorer.score_windows(b.windows, 0)
    seconds = time.perf_counter() - t0
    events = sum(len(w.events) for w in windows)
    return {"seconds": round(seconds, 3), "events_per_s": round(events / seconds, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, help="bundle to serve (default: train a tiny one)")
    p.add_argument("--sessions", type=int, default=4000, help="sessions (default: 4000)")
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
    p.add_argument("--seed", type=int, default=0, help="traffic seed (default: 0)")
    p.add_argument("--passthrough-worker", nargs=4, metavar=("BOOT", "SRC", "DST", "GROUP"),
                   help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args(argv)
    if args.passthrough_worker:
        asyncio.run(passthrough(*args.passthrough_worker))
        return 0
    configure_logging("warning", True)

    work = Path(tempfile.mkdtemp(prefix="logad-bench-e2e-"))
    bundle = args.model or train_tiny(work / "model")
    sims = list(
        generate_sessions(random.Random(args.seed), args.sessions, DAY_MS, args.interval_ms, 0.05)
    )
    msgs = [(e.session_id.encode(), e.encode()) for e in interleave(sims)]
    n_events, ids = len(msgs), {s.session_id for s in sims}
    say(f"{len(sims)} sessions, {n_events} events; starting Kafka")

    info = broker.start(port=broker.free_port(), data_dir=work / "kafka", timeout_s=90)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        boot = info.bootstrap
        results: dict[str, dict[str, float]] = {}

        # Baseline: consume -> produce, nothing else.
        asyncio.run(create_topic(boot, "pt.in", args.partitions))
        asyncio.run(create_topic(boot, "pt.out", 1))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.stream_e2e",
                    "--passthrough-worker",
                    boot,
                    "pt.in",
                    "pt.out",
                    "pt.group",
                ],
                cwd=REPO,
            )
        )
        time.sleep(3.0)  # joined its group
        seen = [0]

        def all_copied(_v: bytes) -> bool:
            seen[0] += 1
            return seen[0] >= n_events

        secs = asyncio.run(timed_run(boot, "pt.in", "pt.out", msgs, all_copied))
        results["passthrough"] = {"seconds": round(secs, 3), "events_per_s": round(n_events / secs)}
        say(f"passthrough: {results['passthrough']}")

        # logad serve, one process, tiny model on CPU.
        asyncio.run(create_topic(boot, "ev", args.partitions))
        asyncio.run(create_topic(boot, "ev.scores", 1))
        port = broker.free_port()
        config = {
            "model": str(bundle),
            "bootstrap": boot,
            "input_topic": "ev",
            "scores_topic": "ev.scores",
            "alerts_topic": "ev.alerts",
            "dlq_topic": "ev.dlq",
            "gap_ms": args.gap_ms,
            "idle_timeout_ms": args.idle_timeout_ms,
            "max_batch_tokens": args.max_batch_tokens,
            "metrics_port": port,
            "device": "cpu",
        }
        (work / "serve.json").write_bytes(orjson.dumps(config))
        log = (work / "serve.log").open("wb")
        serve_cmd = [sys.executable, "-m", "stream.cli", "--log-level", "warning", "serve"]
        procs.append(
            subprocess.Popen(
                [*serve_cmd, "--config", str(work / "serve.json")],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        wait_ready(port, procs[-1])
        scored: set[str] = set()

        def all_scored(v: bytes) -> bool:
            scored.add(orjson.loads(v)["session_id"])
            return len(scored) >= len(ids)

        secs = asyncio.run(timed_run(boot, "ev", "ev.scores", msgs, all_scored))
        results["serve"] = {"seconds": round(secs, 3), "events_per_s": round(n_events / secs)}
        say(f"serve: {results['serve']}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        broker.stop(data_dir=work / "kafka")

    windows = [
        Window.build(s.session_id, 0, tuple(e.event_id for e in s.events)[:510], 0, 0, 0, i, i)
        for i, s in enumerate(sims)
    ]
    results["scorer_only"] = scorer_only(bundle, windows, args.max_batch_tokens)
    say(f"scorer_only: {results['scorer_only']}")
    import torch

    report = {
        "bench": "stream_e2e",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "config": {
            "sessions": len(sims),
            "events": n_events,
            "partitions": args.partitions,
            "interval_ms": args.interval_ms,
            "gap_ms": args.gap_ms,
            "idle_timeout_ms": args.idle_timeout_ms,
            "max_batch_tokens": args.max_batch_tokens,
            "model": "tiny (trained on the spot)" if args.model is None else str(args.model),
            "device": "cpu",
            "kafka": broker.KAFKA_VERSION,
        },
        "results": results,
        # How much of the pass-through rate serve keeps, and how close it runs to the model.
        "serve_vs_passthrough": round(
            results["serve"]["events_per_s"] / results["passthrough"]["events_per_s"], 3
        ),
        "serve_vs_scorer_only": round(
            results["serve"]["events_per_s"] / results["scorer_only"]["events_per_s"], 3
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"stream_e2e-{datetime.now(UTC).date().isoformat()}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
