"""Raw Spring Boot log lines of a small shop's request flows, for the tests that start from
text: `logad parse` reads them as lines, and raw LogEvents (a message, no event id) carry the
same messages. A trace is one session; its id is the Sleuth trace id in each line's header.

    2026-11-02 10:00:00.123  INFO [gateway,6f1c...,a3b4...] 1 --- [nio-8080-exec-1]
        c.e.g.RouteFilter : Routing GET /api/orders/42 to order-service   (one line)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.events import LogEvent
from schemas.templates import TemplateSet
from trainer.mining import TemplateMiner

Step = tuple[str, str, str, Callable[[random.Random], str]]
"""(app, level, logger, message from a random source)."""


def _id(rng: random.Random) -> int:
    return rng.randint(1, 99_999)


FLOWS: dict[str, list[Step]] = {
    "order-lookup": [
        (
            "gateway",
            "INFO",
            "c.e.g.RouteFilter",
            lambda r: f"Routing GET /api/orders/{_id(r)} to order-service",
        ),
        (
            "order-service",
            "INFO",
            "c.e.o.OrderController",
            lambda r: f"Fetching order {_id(r)} for customer {_id(r)}",
        ),
        (
            "order-service",
            "DEBUG",
            "c.e.o.OrderRepository",
            lambda r: f"Order {_id(r)} loaded in {r.randint(1, 40)} ms",
        ),
        (
            "gateway",
            "INFO",
            "c.e.g.AccessLog",
            lambda r: (
                f"Completed GET /api/orders/{_id(r)} with status 200 in {r.randint(5, 90)} ms"
            ),
        ),
    ],
    "place-order": [
        (
            "gateway",
            "INFO",
            "c.e.g.RouteFilter",
            lambda r: "Routing POST /api/orders to order-service",
        ),
        (
            "order-service",
            "INFO",
            "c.e.o.OrderService",
            lambda r: f"Creating order for customer {_id(r)} with {r.randint(1, 9)} items",
        ),
        (
            "inventory-service",
            "INFO",
            "c.e.i.StockService",
            lambda r: f"Reserved {r.randint(1, 9)} items for order {_id(r)}",
        ),
        (
            "payment-service",
            "INFO",
            "c.e.p.PaymentService",
            lambda r: (
                f"Payment {r.getrandbits(64):016x} authorized for "
                f"{r.randint(5, 500)}.{r.randint(10, 99)} EUR"
            ),
        ),
        ("order-service", "INFO", "c.e.o.OrderService", lambda r: f"Order {_id(r)} created"),
        (
            "gateway",
            "INFO",
            "c.e.g.AccessLog",
            lambda r: f"Completed POST /api/orders with status 201 in {r.randint(40, 400)} ms",
        ),
    ],
    "login": [
        (
            "gateway",
            "INFO",
            "c.e.g.RouteFilter",
            lambda r: "Routing POST /api/auth/login to auth-service",
        ),
        (
            "auth-service",
            "INFO",
            "c.e.a.LoginService",
            lambda r: f"User '{r.choice(['alice', 'bob', 'carol', 'dave'])}' authenticated",
        ),
        (
            "auth-service",
            "DEBUG",
            "c.e.a.TokenService",
            lambda r: f"Issued token {r.getrandbits(64):016x} valid for 3600 s",
        ),
        (
            "gateway",
            "INFO",
            "c.e.g.AccessLog",
            lambda r: f"Completed POST /api/auth/login with status 200 in {r.randint(20, 120)} ms",
        ),
    ],
    "browse": [
        (
            "gateway",
            "INFO",
            "c.e.g.RouteFilter",
            lambda r: f"Routing GET /api/products?page={r.randint(1, 30)} to catalog-service",
        ),
        (
            "catalog-service",
            "INFO",
            "c.e.c.CatalogController",
            lambda r: f"Returning {r.randint(10, 50)} products for page {r.randint(1, 30)}",
        ),
        (
            "gateway",
            "INFO",
            "c.e.g.AccessLog",
            lambda r: f"Completed GET /api/products with status 200 in {r.randint(5, 60)} ms",
        ),
    ],
}

NEVER_SEEN: Step = (
    "payment-service",
    "ERROR",
    "c.e.p.BankClient",
    lambda r: (
        f"Bank gateway refused the connection: TLS handshake failed after {r.randint(100, 900)} ms"
    ),
)
"""A line no training flow has: a template the bundle does not know."""
NEVER_SEEN_TEMPLATE = "Bank gateway refused the connection: TLS handshake failed after <*>"


@dataclass(frozen=True)
class RawLine:
    ts: int
    app: str
    level: str
    trace_id: str
    span_id: str
    logger: str
    message: str

    def text(self) -> str:
        t = datetime.fromtimestamp(self.ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return (
            f"{t} {self.level:>5} [{self.app},{self.trace_id},{self.span_id}] 1 --- "
            f"[nio-8080-exec-{self.ts % 9 + 1}] {self.logger} : {self.message}"
        )

    def event(self) -> LogEvent:
        """The raw LogEvent a shipper would produce: session = trace id, no event id."""
        return LogEvent(self.ts, self.app, self.trace_id, None, self.level, self.message)


def trace(rng: random.Random, flow: str, start_ms: int, broken: bool = False) -> list[RawLine]:
    """One request of `flow`; `broken`: its second step is the never-seen line instead."""
    steps = list(FLOWS[flow])
    if broken:
        steps[1] = NEVER_SEEN
    trace_id = f"{rng.getrandbits(64):016x}"
    out = []
    ts = start_ms
    for app, level, logger, message in steps:
        ts += rng.randint(1, 30)
        span = f"{rng.getrandbits(64):016x}"
        out.append(RawLine(ts, app, level, trace_id, span, logger, message(rng)))
    return out


def traces(rng: random.Random, n: int, start_ms: int, spacing_ms: int = 50) -> list[list[RawLine]]:
    """`n` normal traces of every flow, started `spacing_ms` apart."""
    names = sorted(FLOWS)
    return [trace(rng, names[i % len(names)], start_ms + i * spacing_ms) for i in range(n)]


def interleaved(groups: list[list[RawLine]]) -> list[RawLine]:
    """Every line in time order, as a log file or a topic holds them."""
    return sorted((x for g in groups for x in g), key=lambda x: (x.ts, x.trace_id))


# A few raw messages and the template set mined from them, for tests of raw events.
KNOWN = [
    "Routing GET /api/orders/42 to order-service",
    "Order 42 loaded in 12 ms",
    "Completed GET /api/orders/42 with status 200 in 30 ms",
]
NEW = "Bank gateway refused the connection: TLS handshake failed after 310 ms"


def bundle_set(lines: Sequence[str] = KNOWN) -> TemplateSet:
    miner = TemplateMiner()
    for line in lines:
        miner.mine(line)
    return miner.to_set()
