"""aiokafka's log during a broker outage, rate-limited.

While a broker is away, aiokafka logs every failed attempt of every client ("Unable connect
to node with id 1", "Unable to update metadata from [1]", ...), thousands of lines a
second. `KafkaLogFilter`, installed by the long-running Kafka commands (serve, simulate,
replay from a topic) on the handler of libraries' records, turns that into:

- one warning when the broker goes away (`kafka_unreachable`, with aiokafka's first message);
- while it stays away, one summary line every `every_s` seconds (`kafka_still_unreachable`:
  how many messages were held back, and like what);
- one info line when it is back (`kafka_reachable_again`): a client connected to a broker or
  got metadata (`watch_client` hooks both) after `quiet_s` seconds without a failure. The
  quiet period keeps a cluster with one broker away (the others answering) from flapping
  between the two states: it stays "unreachable", summarised, until that broker is back.

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
QUIET_S = 5.0

OUTAGE_MESSAGES = frozenset(
    {
        # aiokafka/client.py: a connection or a metadata request failed.
        'Unable connect to "%s:%s": %s',
        "Unable connect to node with id %s: %s",
        "Unable to update metadata from %s",
        'Unable to request metadata from "%s:%s": %s',
        "Unable to request metadata from node with id %s: %r",
    }
)
"""aiokafka's messages (their format strings) that mean a broker cannot be reached. Others
that an outage also brings (failed fetches, coordinator requests, sends) can mean other
things too (a coordinator still loading at start), so they raise no alarm: they are held
back and counted while the brokers are away, and sampled otherwise."""

Emit = Callable[[str, str, dict[str, Any]], None]
"""(level, event, fields): a line to log."""


def _structlog_emit(level: str, event: str, fields: dict[str, Any]) -> None:
    getattr(log, level)(event, **fields)


class OutageLog:
    """What to say about aiokafka's records, and which to let through (see the module doc).
    Not thread-safe on its own: `KafkaLogFilter` serialises the calls."""

    def __init__(
        self, emit: Emit, every_s: float = SUMMARY_EVERY_S, quiet_s: float = QUIET_S
    ) -> None:
        self.every_s = every_s
        self.quiet_s = quiet_s
        self._emit = emit
        self.down_since: float | None = None
        self._last_failure = 0.0
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
            self.down_since = self._last_summary = self._last_failure = now
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
        self._last_failure = now
        if now - self._last_summary >= self.every_s:
            self._summarise(now)
        return False

    def reachable(self, now: float) -> None:
        """A client connected to a broker, or got metadata: the brokers answer again, once
        nothing failed for `quiet_s` seconds."""
        if self.down_since is None or now - self._last_failure < self.quiet_s:
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
        quiet_s: float = QUIET_S,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.outage = OutageLog(emit, every_s, quiet_s)
        self._lock = threading.Lock()  # replay reads Kafka in a thread of its own

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith("aiokafka"):
            return True
        with self._lock:
            return self.outage.record(str(record.msg), record.getMessage, record.name, self.clock())

    def reachable(self) -> None:
        if self.outage.down_since is None:  # the common case, on every request: no lock
            return
        with self._lock:
            self.outage.reachable(self.clock())


_installed: KafkaLogFilter | None = None


@contextlib.contextmanager
def kafka_log_filter(
    every_s: float = SUMMARY_EVERY_S, quiet_s: float = QUIET_S
) -> Iterator[KafkaLogFilter]:
    """The filter installed for the block (one per process: inside another such block,
    the one installed there)."""
    global _installed
    if _installed is not None:
        yield _installed
        return
    _installed = KafkaLogFilter(every_s, quiet_s=quiet_s)
    add_record_filter(_installed)
    try:
        yield _installed
    finally:
        remove_record_filter(_installed)
        _installed = None


def watch_client(client: object) -> None:
    """Tell the installed filter (when there is one, then) each time `client` (an aiokafka
    consumer, producer or admin client) has a connection to a broker or gets metadata:
    proof that the brokers answer."""
    # aiokafka keeps its network client as `client` (producer) or `_client` (consumer,
    # admin). Its cluster metadata calls listeners on every successful update, but after an
    # outage a client reconnects without asking for metadata (for minutes: metadata_max_age),
    # so the connection step, `_get_conn` (None while a broker is away), is watched too.
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    cluster = getattr(inner, "cluster", None)
    if cluster is not None:
        cluster.add_listener(_on_metadata)
    get_conn = getattr(inner, "_get_conn", None)
    if get_conn is None or getattr(get_conn, "_logad_watched", False):
        return

    async def watched(*args: Any, **kwargs: Any) -> Any:
        conn = await get_conn(*args, **kwargs)
        if conn is not None and _installed is not None:
            _installed.reachable()
        return conn

    watched._logad_watched = True  # type: ignore[attr-defined]
    inner._get_conn = watched  # type: ignore[union-attr]


def _on_metadata(cluster: object) -> None:
    if _installed is not None:
        _installed.reachable()
