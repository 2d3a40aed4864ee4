"""aiokafka's log during a broker outage, rate-limited.

While a broker is away, aiokafka logs every failed attempt of every client ("Unable connect
to node with id 1", "Unable to update metadata from [1]", ...), thousands of lines a
second. `KafkaLogFilter`, installed by the long-running Kafka commands (serve, simulate,
replay from a topic) on the handler of libraries' records, turns that into:

- one warning when the broker goes away (`kafka_unreachable`, with aiokafka's first message);
- while it stays away, one summary line every `every_s` seconds (`kafka_still_unreachable`:
  how many messages were held back, and like what);
- one info line when it is back (`kafka_reachable_again`): a client's metadata request
  succeeded (`watch_client` hooks the clients' metadata updates).

Outside an outage, aiokafka's other warnings are sampled: the first of a kind passes, its
repeats within `every_s` are counted and said in one line (`kafka_log_suppressed`) when the
next one comes. Records below WARNING (at --log-level debug) pass untouched.

`OutageLog` is the state machine, with the time passed in, so tests drive it with a fake clock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from schemas.runtime.logs import add_record_filter, remove_record_filter

log = structlog.get_logger(__name__)

SUMMARY_EVERY_S = 30.0

OUTAGE_MESSAGES = frozenset(
    {
        # aiokafka/client.py
        'Unable connect to "%s:%s": %s',
        "Unable connect to node with id %s: %s",
        "Unable to update metadata from %s",
        'Unable to request metadata from "%s:%s": %s',
        "Unable to request metadata from node with id %s: %r",
        # aiokafka/consumer/fetcher.py, consumer/group_coordinator.py
        "Failed fetch messages from %s: %s",
        "Group Coordinator Request failed: %s",
        "Heartbeat send request failed: %s. Will retry.",
        # aiokafka/producer/sender.py
        "Cannot send %r to %s: %r",
        "Could not send %r: %r",
        "FindCoordinator Request failed: %s",
    }
)
"""aiokafka's messages (their format strings) that mean a broker cannot be reached."""

Emit = Callable[[str, str, dict[str, Any]], None]
"""(level, event, fields): a line to log."""


def _structlog_emit(level: str, event: str, fields: dict[str, Any]) -> None:
    getattr(log, level)(event, **fields)


class OutageLog:
    """What to say about aiokafka's records, and which to let through (see the module doc).
    Not thread-safe on its own: `KafkaLogFilter` serialises the calls."""

    def __init__(self, emit: Emit, every_s: float = SUMMARY_EVERY_S) -> None:
        self.every_s = every_s
        self._emit = emit
        self.down_since: float | None = None
        self._last_summary = 0.0
        self._held: Counter[str] = Counter()  # since the last summary
        self._held_total = 0  # over the whole outage
        self._windows: dict[str, tuple[float, int]] = {}  # up: kind -> (window start, held)

    def record(self, template: str, message: Callable[[], str], source: str, now: float) -> bool:
        """One aiokafka record at WARNING or above (`template`: its format string); True to
        let it through as it is."""
        if self.down_since is None:
            if template not in OUTAGE_MESSAGES:
                return self._sample(template, now)
            self.down_since = self._last_summary = now
            self._emit(
                "warning",
                "kafka_unreachable",
                {
                    "error": message(),
                    "logger": source,
                    "note": f"aiokafka's repeats are summarised every {self.every_s:g} s "
                    "until a metadata request succeeds",
                },
            )
            return False
        self._held[template] += 1
        self._held_total += 1
        if now - self._last_summary >= self.every_s:
            self._summarise(now)
        return False

    def reachable(self, now: float) -> None:
        """A metadata request succeeded: the brokers answer again."""
        if self.down_since is None:
            return
        self._emit(
            "info",
            "kafka_reachable_again",
            {"down_s": round(now - self.down_since, 1), "suppressed": self._held_total},
        )
        self.down_since = None
        self._held.clear()
        self._held_total = 0

    def _summarise(self, now: float) -> None:
        assert self.down_since is not None
        if self._held:
            (like, _), *_ = self._held.most_common(1)
            self._emit(
                "warning",
                "kafka_still_unreachable",
                {
                    "down_s": round(now - self.down_since, 1),
                    "suppressed": sum(self._held.values()),
                    "like": like,
                    "by_message": dict(self._held),
                },
            )
        self._held.clear()
        self._last_summary = now

    def _sample(self, template: str, now: float) -> bool:
        start, held = self._windows.get(template, (None, 0))
        if start is not None and now - start < self.every_s:
            self._windows[template] = (start, held + 1)
            return False
        if start is not None and held:
            self._emit(
                "warning",
                "kafka_log_suppressed",
                {"suppressed": held, "like": template, "over_s": round(now - start, 1)},
            )
        self._windows[template] = (now, 0)
        return True


class KafkaLogFilter(logging.Filter):
    """`OutageLog` as a logging filter on aiokafka's records, on the wall clock (monotonic)."""

    def __init__(
        self,
        every_s: float = SUMMARY_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        emit: Emit = _structlog_emit,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.outage = OutageLog(emit, every_s)
        self._lock = threading.Lock()  # replay reads Kafka in a thread of its own

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith("aiokafka"):
            return True
        with self._lock:
            return self.outage.record(str(record.msg), record.getMessage, record.name, self.clock())

    def reachable(self) -> None:
        with self._lock:
            self.outage.reachable(self.clock())


_installed: KafkaLogFilter | None = None


@contextlib.contextmanager
def kafka_log_filter(every_s: float = SUMMARY_EVERY_S) -> Iterator[KafkaLogFilter]:
    """The filter installed for the block (one per process: inside another such block,
    the one installed there)."""
    global _installed
    if _installed is not None:
        yield _installed
        return
    _installed = KafkaLogFilter(every_s)
    add_record_filter(_installed)
    try:
        yield _installed
    finally:
        remove_record_filter(_installed)
        _installed = None


def watch_client(client: object) -> None:
    """Tell the installed filter (when there is one, then) each time `client` (an aiokafka
    consumer, producer or admin client) gets metadata: proof that the brokers answer."""
    # aiokafka keeps its network client as `client` (producer) or `_client` (consumer,
    # admin); its cluster metadata calls listeners on every successful update.
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    cluster = getattr(inner, "cluster", None)
    if cluster is not None:
        cluster.add_listener(_on_metadata)


def _on_metadata(cluster: object) -> None:
    if _installed is not None:
        _installed.reachable()
