"""docs/console.png: `logad console` in headless chromium over demo-like traffic.

A broker, a registry holding a trained bundle (the demo's `demo-out/model-raw` by
default: `make demo` trains it), `logad serve` on it, and the console (in this process,
with --registry, --metrics-url and --feedback); then simulated raw Spring Cloud traffic
with 5% anomalies, as the demo streams it. When 85% of it has been scored, one group is
acknowledged, one session confirmed anomalous, and the page is shot with that session's
view open, while the traffic still flows.

    .venv/bin/python tests/integration/console_screenshot.py --out docs/console.png
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from chromium_cdp import chromium_page

from schemas.runtime.settings import build_settings
from stream.console.patterns import group_alerts
from stream.console.server import Console
from stream.console.settings import ConsoleSettings
from stream.devtools import broker
from stream.devtools.simulate.outputs import produce
from stream.devtools.simulate.settings import LiveSettings, TrafficSettings
from stream.jobs.registry import promote_bundle

REPO = Path(__file__).resolve().parents[2]


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"logad serve exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("logad serve was not ready in time")


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 2, 1) for n in names])
    finally:
        await admin.close()


async def _post(url: str, body: dict[str, object]) -> None:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
        r.raise_for_status()


def shoot(args: argparse.Namespace, work: Path) -> None:
    """Broker, registry and serve (synchronous: the broker's start runs a loop of its own),
    then the console, the traffic and the shot in one asyncio loop."""
    info = broker.start(port=broker.free_port(), data_dir=work / "kafka")
    serve: subprocess.Popen[bytes] | None = None
    try:
        registry = work / "registry"
        promote_bundle(args.model, registry, reason="the demo's model, promoted by hand")
        topics = ["logad.events", "logad.scores", "logad.alerts", "logad.events.dlq"]
        asyncio.run(_create_topics(info.bootstrap, topics))
        metrics_port = broker.free_port()
        argv = [sys.executable, "-m", "stream.cli", "--log-json", "serve"]
        argv += ["--model", str(registry), "--bootstrap", info.bootstrap]
        argv += ["--metrics-port", str(metrics_port), "--gap-ms", "5000"]
        argv += ["--idle-timeout-ms", "3000", "--score-threads", "1"]
        with (work / "serve.log").open("wb") as log:
            serve = subprocess.Popen(
                argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ)
            )
        _wait_ready(metrics_port, serve, 180)
        settings = build_settings(
            ConsoleSettings,
            flags={
                "port": 0,
                "bootstrap": info.bootstrap,
                "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
                "scrape_interval_s": 2.0,
                "registry": registry,
                "feedback": work / "feedback.jsonl",
                "ack_file": work / "acks.jsonl",
                "window_minutes": 10.0,
            },
            environ={},
        )
        asyncio.run(_console_and_traffic(args, settings, info.bootstrap, work))
    finally:
        if serve is not None and serve.poll() is None:
            serve.terminate()
            serve.wait(timeout=30)
        broker.stop(data_dir=info.data_dir)


async def _console_and_traffic(
    args: argparse.Namespace, settings: ConsoleSettings, bootstrap: str, work: Path
) -> None:
    console = Console(settings)
    await console.start()
    try:
        live = LiveSettings(
            bootstrap=bootstrap,
            topic="logad.events",
            sessions=args.sessions,
            rate=args.rate,
            malformed=3,
        )
        traffic = TrafficSettings(anomaly_rate=0.05, seed=1007, raw=True)
        producer = asyncio.create_task(produce(live, traffic, int(time.time() * 1000)))
        # Shot while the traffic still flows, so the pipeline panel shows it moving.
        deadline = time.monotonic() + 300
        while console.store.scores_seen < args.sessions * 0.85 and time.monotonic() < deadline:
            if producer.done():
                producer.result()  # raise what went wrong
                break
            await asyncio.sleep(1)
        await _arrange(console)
        async with chromium_page(work / "chromium", width=args.width) as page:
            await page.goto(console.url + "#session=" + _session_to_open(console))
            await page.wait_for(
                "document.querySelectorAll('#session-body .event').length > 0"
                " && document.querySelectorAll('#groups .group').length > 0"
                " && document.querySelector('#registry code') !== null",
                30,
                "the session view, the groups and the registry",
            )
            await asyncio.sleep(1.5)
            await page.screenshot(args.out, width=args.width, height=args.height or None)
        producer.cancel()
        groups = group_alerts(console.store.alerts(), console.acks.until)
        print(f"wrote {args.out}: {console.store.alerts_seen} alerts in {len(groups)} groups")
        for g in groups:
            print(f"    {len(g.alerts):3d} alerts  {' '.join(g.pattern)}")
    finally:
        await console.stop()


async def _arrange(console: Console) -> None:
    """Acknowledge the smallest group of several; confirm one session anomalous."""
    groups = group_alerts(console.store.alerts(), console.acks.until)
    if len(groups) >= 3:
        smallest = min(groups, key=lambda g: (len(g.alerts), g.last_ms))
        await _post(console.url + "api/ack", {"key": smallest.key})
    sid = _session_to_open(console)
    await _post(console.url + "api/verdict", {"verdict": "anomalous", "session_id": sid})


def _session_to_open(console: Console) -> str:
    """The newest alert of the largest open group with the most surprising events over
    the threshold: a session view with something to show."""
    groups = [g for g in group_alerts(console.store.alerts(), console.acks.until) if not g.hidden]
    g = max(groups, key=lambda g: (len(g.pattern), len(g.alerts)))
    return g.alerts[0].session_id


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "demo-out" / "model-raw")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "console.png")
    p.add_argument("--sessions", type=int, default=1200)
    p.add_argument("--rate", type=float, default=200.0, help="events per second")
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=1500, help="0: the whole page")
    args = p.parse_args()
    if not (args.model / "manifest.json").is_file():
        raise SystemExit(f"no model bundle in {args.model}: run `make demo` first")
    with tempfile.TemporaryDirectory(prefix="logad-console-shot-") as tmp:
        shoot(args, Path(tmp))


if __name__ == "__main__":
    main()
