"""The flows of normal traffic: a client request through the gateway to a manager service
and its database, and the background sessions (registration, heartbeats, health checks,
Eureka's maintenance). Each builds the steps of one session from a `random.Random`."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from stream.devtools.simulate.templates import MANAGER, MANAGERS, TEMPLATE_BY_ID

TABLES = {
    "user-manager": ("users", "user_roles", "user_prefs"),
    "order-manager": ("orders", "order_items", "payments"),
    "inventory-manager": ("stock", "products", "reservations"),
}
_SEARCH_TERMS = ("usb-c cable", "monitor", "desk lamp", "keyboard", "backpack", "headset")
_ROLES = ("USER", "USER,ADMIN", "USER,SUPPORT")
_PAGE = "limit 20 offset ?"


Step = tuple[str, str, dict[str, Any], int]


class Flow:
    """Builds the steps of one session; `svc` is the manager service that handles it."""

    def __init__(self, rng: random.Random, svc: str) -> None:
        self.rng = rng
        self.svc = svc
        self.steps: list[Step] = []

    def add(self, event_id: str, delay: int = 1, **fields: Any) -> None:
        service = TEMPLATE_BY_ID[event_id].service
        self.steps.append((event_id, self.svc if service == MANAGER else service, fields, delay))

    def query(self, kind: str, table: str, rows: int = 1, where: str = "id=?") -> None:
        """A query; `where` is its call site's (a lookup by id, a page of a list), never
        derived from the rows it returns."""
        rng = self.rng
        ms = rng.randint(1, 25)
        self.add(f"db.query.{kind}", ms, table=table, ms=ms, rows=rows, where=where)
        if rng.random() < 0.04:
            slow = rng.randint(500, 2_500)
            self.add("db.query.slow", slow, table=table, ms=slow)

    def acquire(self) -> None:
        if self.rng.random() < 0.05:
            ms = self.rng.randint(20, 300)
            self.add("db.pool.wait", ms, ms=ms)
        self.add("db.pool.acquire", 1, active=self.rng.randint(1, 19))

    def transaction(self, queries: Sequence[tuple[str, str, int]]) -> None:
        self.acquire()
        self.add("db.tx.begin")
        for kind, table, rows in queries:
            self.query(kind, table, rows)
        self.add("db.tx.commit", 2)
        self.add("db.pool.release")


def _session_fields(rng: random.Random, svc: str) -> dict[str, Any]:
    ip = f"10.0.{rng.randint(1, 9)}.{rng.randint(2, 250)}"
    return {
        "svc": svc,
        "SVC": svc.upper(),
        "instance": f"{ip}:{8080 + MANAGERS.index(svc) if svc in MANAGERS else 8761}",
        "gw_instance": f"10.0.0.{rng.randint(2, 9)}:8080",
        "client_ip": f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        f".{rng.randint(1, 254)}",
        "user": f"user{rng.randint(1, 50_000)}",
        "uid": rng.randint(1, 50_000),
        "oid": f"ORD-{rng.randint(100_000, 999_999)}",
        "sku": f"SKU-{rng.randint(1_000, 9_999)}",
        "trace": f"{rng.getrandbits(64):016x}",
        "term": rng.choice(_SEARCH_TERMS),
        "peer": f"eureka-{rng.randint(1, 2)}:8761",
        "ttl": rng.choice((300, 600, 900)),
        "n": rng.randint(1, 4),
        "m": rng.randint(40, 120),
        "status": 200,
        "reason": "",
    }


def request_flow(rng: random.Random) -> tuple[Flow, dict[str, Any]]:
    """The steps of one normal client request."""
    svc = rng.choice(MANAGERS)
    f = Flow(rng, svc)
    method, path, op = rng.choice(_OPS[svc])
    fields = _session_fields(rng, svc)
    query = {"term_q": str(fields["term"]).replace(" ", "+")}  # URL-encoded in a path
    fields.update(method=method, path=path.format_map({**fields, **query}))
    if method == "POST":
        fields["status"] = 201

    f.add("gateway.request.received", 0)
    if rng.random() < 0.9:  # a few public endpoints carry no token
        f.add("gateway.auth.ok" if rng.random() < 0.6 else "gateway.auth.cache_hit", 2)
    if rng.random() < 0.85:
        f.add("gateway.ratelimit.ok", 1, remaining=rng.randint(1, 99))
    f.add("gateway.route.resolve", 1)
    f.add("eureka.lookup.request", rng.randint(1, 3))
    if rng.random() < 0.85:
        f.add("eureka.lookup.hit", 1)
    else:
        f.add("eureka.lookup.miss", 1)
        f.add("eureka.registry.fetch", rng.randint(5, 40), version=rng.randint(1_000, 9_999))
        f.add("eureka.lookup.hit", 1)
    f.add("gateway.lb.choose", 1)
    if rng.random() < 0.04:  # a transient reset, retried successfully
        f.add("gateway.upstream.reset", rng.randint(5, 50))
        f.add("gateway.retry.attempt", 100, attempt=2)
        f.add("gateway.lb.choose", 1)
    f.add("gateway.route.ok", 1)
    f.add("manager.request.start", rng.randint(1, 4))
    op(f, fields)
    elapsed = sum(s[3] for s in f.steps) + rng.randint(1, 5)
    f.add("manager.response.ok", 1, elapsed=elapsed)
    f.add("gateway.response.sent", rng.randint(1, 4), elapsed=elapsed + rng.randint(2, 9))
    return f, fields


def _cached_read(f: Flow, key: str, hit_rate: float) -> bool:
    """A cache lookup; True on a hit."""
    if f.rng.random() < hit_rate:
        f.add("manager.cache.hit", 1, key=key)
        return True
    f.add("manager.cache.miss", 1, key=key)
    return False


def _user_get(f: Flow, fields: dict[str, Any]) -> None:
    key = f"user:{fields['uid']}"
    if not _cached_read(f, key, 0.55):
        f.add("user.profile.fetch", 1)
        f.acquire()
        f.query("select", "users")
        if f.rng.random() < 0.5:
            f.query("select", "user_roles", f.rng.randint(1, 3), "user_id=?")
            f.add("user.roles.resolve", 1, roles=f.rng.choice(_ROLES))
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


def _user_update(f: Flow, fields: dict[str, Any]) -> None:
    n = f.rng.randint(1, 6)
    f.add("manager.validation.ok", 1, fields=n)
    f.add("user.profile.update", 1, fields=n)
    queries = [("select", "users", 1), ("update", "users", 1)]
    if f.rng.random() < 0.3:
        queries.append(("update", "user_prefs", 1))
    f.transaction(queries)
    f.add("manager.cache.evict", 1, key=f"user:{fields['uid']}")


def _user_list(f: Flow, fields: dict[str, Any]) -> None:
    f.acquire()
    pages = f.rng.randint(1, 4)
    for page in range(pages):
        rows = 20 if page < pages - 1 else f.rng.randint(1, 20)
        f.query("select", "users", rows, "tenant_id=? " + _PAGE)
        f.add("user.list.page", 1, page=page, rows=rows)
    f.add("db.pool.release")


def _order_create(f: Flow, fields: dict[str, Any]) -> None:
    items = f.rng.randint(1, 5)
    f.add("manager.validation.ok", 1, fields=3 + items)
    f.add("order.create.start", 1, items=items)
    f.add("order.items.validate", 2, items=items)
    queries = [("insert", "orders", 1)] + [("insert", "order_items", 1)] * items
    f.transaction(queries)
    amount = f"{f.rng.randint(5, 900)}.{f.rng.randint(0, 99):02d}"
    f.add("order.payment.authorize", f.rng.randint(30, 400), amount=amount)
    if f.rng.random() < 0.8:
        f.add("order.event.publish", 3)


def _order_get(f: Flow, fields: dict[str, Any]) -> None:
    key = f"order:{fields['oid']}"
    if not _cached_read(f, key, 0.4):
        f.add("order.fetch", 1)
        f.acquire()
        f.query("select", "orders")
        f.query("select", "order_items", f.rng.randint(1, 5), "order_id=?")
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


def _order_list(f: Flow, fields: dict[str, Any]) -> None:
    f.acquire()
    pages = f.rng.choice((1, 1, 1, 2, 2, 3, 5))
    for page in range(pages):
        rows = 20 if page < pages - 1 else f.rng.randint(0, 20)
        f.query("select", "orders", rows, "user_id=? " + _PAGE)
        f.add("order.list.page", 1, page=page, rows=rows)
    f.add("db.pool.release")


def _stock_check(f: Flow, fields: dict[str, Any]) -> None:
    f.add("inventory.stock.check", 1)
    f.acquire()
    f.query("select", "stock")
    f.add("db.pool.release")
    if f.rng.random() < 0.1:
        f.add("inventory.stock.low", 1, qty=f.rng.randint(0, 5))


def _stock_reserve(f: Flow, fields: dict[str, Any]) -> None:
    qty = f.rng.randint(1, 4)
    f.add("manager.validation.ok", 1, fields=2)
    f.transaction([("select", "stock", 1), ("update", "stock", 1), ("insert", "reservations", 1)])
    f.add("inventory.stock.reserve", 1, qty=qty)


def _search(f: Flow, fields: dict[str, Any]) -> None:
    term = fields["term"]
    key = f"search:{term.replace(' ', '+')}"  # URL-encoded, as in the request's path
    if not _cached_read(f, key, 0.3):
        f.acquire()
        pages = f.rng.randint(1, 3)
        for page in range(pages):
            rows = 20 if page < pages - 1 else f.rng.randint(0, 20)
            f.query("select", "products", rows, "name like ? " + _PAGE)
            f.add("inventory.search.page", 1, term=term, page=page, rows=rows)
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


_Op = Callable[[Flow, dict[str, Any]], None]
# (method, path pattern, body) of each manager's endpoints.
_OPS: dict[str, tuple[tuple[str, str, _Op], ...]] = {
    "user-manager": (
        ("GET", "/api/users/{uid}", _user_get),
        ("PUT", "/api/users/{uid}", _user_update),
        ("GET", "/api/users?page=0&size=20", _user_list),
    ),
    "order-manager": (
        ("POST", "/api/orders", _order_create),
        ("GET", "/api/orders/{oid}", _order_get),
        ("GET", "/api/orders?userId={uid}", _order_list),
    ),
    "inventory-manager": (
        ("GET", "/api/inventory/{sku}", _stock_check),
        ("POST", "/api/inventory/reserve", _stock_reserve),
        ("GET", "/api/inventory/search?q={term_q}", _search),
    ),
}


def _registration(rng: random.Random) -> tuple[Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = Flow(rng, svc)
    f.add("discovery.register.start", 0)
    f.add("eureka.register.request", rng.randint(2, 10))
    f.add("eureka.register.ok", 1)
    if rng.random() < 0.7:
        f.add("eureka.replicate.ok", rng.randint(2, 8), action="Register")
    f.add("discovery.register.ok", rng.randint(1, 5))
    f.add("eureka.status.up", rng.randint(100, 2_000))
    if rng.random() < 0.6:
        f.add("eureka.replicate.ok", rng.randint(2, 8), action="StatusUpdate")
    if rng.random() < 0.5:
        f.add("gateway.routes.refresh", rng.randint(1_000, 5_000))
    return f, _session_fields(rng, svc)


def _heartbeat(rng: random.Random) -> tuple[Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = Flow(rng, svc)
    f.add("discovery.heartbeat.sent", 0)
    f.add("eureka.heartbeat.received", rng.randint(1, 6))
    f.add("eureka.lease.renew", 1)
    if rng.random() < 0.6:
        f.add("eureka.replicate.ok", rng.randint(1, 6), action="Heartbeat")
    f.add("discovery.heartbeat.ok", rng.randint(1, 6))
    return f, _session_fields(rng, svc)


def _health_check(rng: random.Random) -> tuple[Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = Flow(rng, svc)
    for i in range(rng.randint(1, 3)):
        f.add("gateway.health.check", 0 if i == 0 else rng.randint(1, 20))
        ms = rng.randint(2, 30)
        f.add("actuator.health.report", ms, free=rng.randint(5, 400))
        if rng.random() < 0.08:
            slow = rng.randint(800, 3_000)
            f.add("gateway.health.slow", slow, ms=slow)
        else:
            f.add("gateway.health.ok", 1, ms=ms + 1)
    return f, _session_fields(rng, svc)


def _eureka_maintenance(rng: random.Random) -> tuple[Flow, dict[str, Any]]:
    f = Flow(rng, rng.choice(MANAGERS))
    f.add("eureka.lease.evict_check", 0, ms=rng.randint(0, 40))
    if rng.random() < 0.1:
        f.add("eureka.lease.evicted", rng.randint(1, 5))
    refreshed = rng.random() < 0.7
    if refreshed:
        f.add("eureka.cache.refresh", rng.randint(5, 30))
    if not refreshed or rng.random() < 0.4:
        f.add("eureka.renew.threshold", rng.randint(1, 10))
    return f, _session_fields(rng, f.svc)


# (kind, weight, session-id prefix, builder) for normal traffic.
NORMAL_KINDS = (
    ("request", 0.75, "req", request_flow),
    ("heartbeat", 0.10, "hb", _heartbeat),
    ("health", 0.08, "hc", _health_check),
    ("maintenance", 0.04, "ev", _eureka_maintenance),
    ("registration", 0.03, "reg", _registration),
)
