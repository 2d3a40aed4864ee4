"""Scrapes serve's /metrics every few seconds and keeps the rates of the last N minutes."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import aiohttp
import structlog

from stream.console.metrics_scrape import COUNTERS, Snapshot, parse_metrics, rates

log = structlog.get_logger(__name__)

_TIMEOUT_S = 5.0


class MetricsWatch:
    """The latest snapshot, the error of the latest scrape if it failed, and a history of
    (time, rates) bounded to `window_s`."""

    def __init__(self, url: str, interval_s: float, window_s: float) -> None:
        self.url = url
        self.interval_s = interval_s
        self.latest: Snapshot | None = None
        self.error: str | None = None
        self.history: deque[tuple[float, dict[str, float | None]]] = deque(
            maxlen=max(2, int(window_s / interval_s) + 1)
        )

    def record(self, snap: Snapshot) -> None:
        """Take a new scrape (also what tests feed)."""
        if self.latest is not None:
            self.history.append((snap.at, rates(self.latest, snap)))
        self.latest = snap
        self.error = None

    async def scrape(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(self.url) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
            self.record(parse_metrics(text, time.time()))
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as e:
            was = self.error
            self.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            if was is None:
                log.warning("console_metrics_unreachable", url=self.url, error=self.error)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.scrape(session)
                await asyncio.sleep(self.interval_s)

    def series(self) -> dict[str, list[Any]]:
        """The rate history as columns: t (epoch s) and one list per counter."""
        cols: dict[str, list[Any]] = {"t": [t for t, _ in self.history]}
        for name in COUNTERS:
            cols[name] = [r.get(name) for _, r in self.history]
        return cols
