"""Sessions of simulated traffic, normal or carrying an anomaly, and the stream of their
events in time order. Pure: the caller passes in a `random.Random` and the start time."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.events import LogEvent
from schemas.sessions import Session
from stream.devtools.simulate.anomalies import inject
from stream.devtools.simulate.drift import NEW_VERSION_SERVICE, Drift, new_version
from stream.devtools.simulate.flows import NORMAL_KINDS, Flow, request_flow
from stream.devtools.simulate.templates import ANOMALY_KINDS, BUILDS, TEMPLATE_OF


@dataclass(frozen=True, slots=True)
class SimSession:
    session_id: str
    events: tuple[LogEvent, ...]
    anomaly: str | None = None
    """The injected anomaly's kind, None for normal traffic."""
    phrasings: tuple[int, ...] = ()
    """Which phrasing of its template each event's message is (an index into `texts`)."""

    @property
    def label(self) -> int:
        return 0 if self.anomaly is None else 1

    @property
    def trace_id(self) -> str:
        return trace_id(self.session_id)

    def to_session(self) -> Session:
        return Session(
            session_id=self.session_id,
            events=tuple(e.event_id for e in self.events if e.event_id is not None),
            start_ts=self.events[0].ts,
            end_ts=self.events[-1].ts,
            label=self.label,
        )


def trace_id(session_id: str) -> str:
    """A simulated session's trace id: the 16 hex digits after its kind's prefix (`req-`,
    `hb-`, ...). Raw log lines carry it, and raw events use it as their session id."""
    return session_id.rpartition("-")[2]


def _pick_kind(
    rng: random.Random,
) -> tuple[str, Callable[[random.Random], tuple[Flow, dict[str, Any]]]]:
    r = rng.random()
    for _kind, weight, prefix, build in NORMAL_KINDS:
        r -= weight
        if r < 0:
            return prefix, build
    return NORMAL_KINDS[0][2], NORMAL_KINDS[0][3]


def simulate_session(
    rng: random.Random, start_ms: int, anomaly: str | None = None, drift: Drift | None = None
) -> SimSession:
    """One session starting at `start_ms`: normal traffic of a random kind, or a request
    carrying the given anomaly kind; as `drift`'s new version logs it where that serves it."""
    if anomaly is None:
        prefix, build = _pick_kind(rng)
        f, fields = build(rng)
        steps = f.steps
    else:
        prefix = "req"
        for _ in range(100):
            f, fields = request_flow(rng)
            injected = inject(anomaly, rng, f, fields)
            if injected is not None:
                steps = injected
                break
        else:  # pragma: no cover - each kind fits most requests
            raise RuntimeError(f"could not inject {anomaly}")
    session_id = f"{prefix}-{rng.getrandbits(64):016x}"
    if (
        drift is not None
        and prefix == "req"
        and f.svc == NEW_VERSION_SERVICE
        and drift.serves(session_id, start_ms)
    ):
        steps = new_version(steps, fields)
    attrs: dict[str, Any] = {"label": 0} if anomaly is None else {"label": 1, "anomaly": anomaly}
    # The builds come from the session id's random bits, not from `rng`: it draws what it
    # drew before phrasings existed, so a seed keeps its event ids.
    builds = _Builds(int(trace_id(session_id), 16))
    # The message's trace is the session's (the drawn `trace` field stays drawn, for the same
    # reason).
    fields = {**fields, "trace": trace_id(session_id)}
    ts = start_ms
    events = []
    phrasings = []
    for event_id, service, step_fields, delay in steps:
        ts += delay
        t = TEMPLATE_OF[event_id]
        k = t.phrasing(builds.of(service))
        message = t.texts[k].format_map({**fields, **step_fields})
        events.append(LogEvent(ts, service, session_id, event_id, t.level, message, attrs))
        phrasings.append(k)
    return SimSession(session_id, tuple(events), anomaly, tuple(phrasings))


class _Builds:
    """The build of each service a session meets (it meets one instance of each): the next
    base-BUILDS digit of `bits`, a random number, for each service as it is met."""

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._builds: dict[str, int] = {}

    def of(self, service: str) -> int:
        build = self._builds.get(service)
        if build is None:
            self._bits, build = divmod(self._bits, BUILDS)
            self._builds[service] = build
        return build


def generate_sessions(
    rng: random.Random,
    n: int,
    start_ms: int,
    mean_interval_ms: float,
    anomaly_rate: float = 0.0,
    kinds: Sequence[str] = ANOMALY_KINDS,
    drift: Drift | None = None,
) -> Iterator[SimSession]:
    """`n` sessions with Poisson arrivals (mean gap `mean_interval_ms`), in start order.
    Each is anomalous with probability `anomaly_rate`, of a kind drawn uniformly from `kinds`."""
    t = float(start_ms)
    for _ in range(n):
        yield simulate_session(rng, int(t), _pick_anomaly(rng, anomaly_rate, kinds), drift)
        if mean_interval_ms > 0:
            t += rng.expovariate(1.0 / mean_interval_ms)


def interleave(sessions: Iterable[SimSession]) -> Iterator[LogEvent]:
    """The events of sessions given in start order, merged into one stream in event-time
    order. Holds only the sessions still in flight."""
    heap: list[tuple[int, int, LogEvent]] = []
    seq = 0
    for s in sessions:
        start = s.events[0].ts
        while heap and heap[0][0] <= start:
            yield heapq.heappop(heap)[2]
        for e in s.events:
            heapq.heappush(heap, (e.ts, seq, e))
            seq += 1
    while heap:
        yield heapq.heappop(heap)[2]


def simulate_day(
    rng: random.Random,
    day_start_ms: int,
    n: int,
    anomaly_rate: float = 0.0,
    kinds: Sequence[str] = ANOMALY_KINDS,
    drift: Drift | None = None,
) -> list[SimSession]:
    """`n` sessions starting at uniform random times within the day, in start order."""
    starts = sorted(day_start_ms + rng.randrange(86_400_000) for _ in range(n))
    return [
        simulate_session(rng, t, _pick_anomaly(rng, anomaly_rate, kinds), drift) for t in starts
    ]


def _pick_anomaly(rng: random.Random, rate: float, kinds: Sequence[str]) -> str | None:
    if rate > 0 and rng.random() < rate:
        return rng.choice(kinds)
    return None


_MALFORMED: tuple[bytes, ...] = (
    b"this is not json",
    b'["a", "json", "array"]',
    b'{"ts": 1700000000000, "service": "api-gateway", "event_id": "gateway.route.ok"}',
    b'{"ts": "yesterday", "service": "api-gateway", "session_id": "x", "event_id": "e"}',
    b'{"ts": 1700000000000, "service": "api-gateway", "session_id": "x", "event_id": ""}',
    b'{"ts": 1700000000000, "service": "api-gateway", "session_id": "x", "event_id": "e",',
    b"\xff\xfe\x00binary",
)


def malformed_message(i: int) -> bytes:
    """The i-th malformed message for dead-letter tests: each fails `LogEvent.decode`."""
    return _MALFORMED[i % len(_MALFORMED)]
