"""Simulated logs of a Spring Cloud-style system, with labelled anomalies. Pure: the caller
passes in a `random.Random` and the start time.

A client request enters the API gateway, which asks Eureka for an instance of a manager
service (user-, order- or inventory-manager), balances and routes to it. The manager checks
its cache, runs database queries (pool acquire, transactions, select/insert/update,
pagination loops) and answers; the gateway sends the response. In the background, services
register with Eureka and renew their leases with heartbeats, Eureka runs its eviction task,
and the gateway health-checks instances: each of those is a session of its own.

Anomalies are injected into request sessions and labelled with their kind:

- `db_timeout`: a query times out, is retried and times out again, and the request fails;
- `no_instance`: Eureka has no instance registered for the service, and the gateway 503s;
- `out_of_order`: steps of the flow are swapped (e.g. the response before the query);
- `unknown_event`: an event id that normal traffic never emits;
- `truncated`: the session stops mid-flow.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.events import LogEvent
from schemas.sessions import Session

GATEWAY = "api-gateway"
EUREKA = "eureka-server"
MANAGERS = ("user-manager", "order-manager", "inventory-manager")
MANAGER = "*"
"""A template's service when any manager service logs it."""

ANOMALY_KINDS = ("db_timeout", "no_instance", "out_of_order", "unknown_event", "truncated")


@dataclass(frozen=True, slots=True)
class Template:
    event_id: str
    service: str
    """The service that logs it; MANAGER for whichever manager service handles the session."""
    level: str
    text: str
    """`str.format` pattern over the session's fields and the step's own."""
    normal: bool = True
    """False for event ids that only injected anomalies emit."""


# One template a line: event id, service (gw: the API gateway, eureka: the Eureka server,
# *: whichever manager service handles the session), level, message pattern.
_TABLE = """
# API gateway: the request path
gateway.request.received gw     INFO  Incoming request {method} {path} from {client_ip}
gateway.auth.ok          gw     INFO  Authenticated principal {user} via JWT (exp in {ttl}s)
gateway.auth.cache_hit   gw     DEBUG Token validation served from cache for {user}
gateway.ratelimit.ok     gw     DEBUG Rate limit ok for {client_ip} ({remaining} left)
gateway.route.resolve    gw     DEBUG Route matched {path} -> lb://{SVC}
gateway.lb.choose        gw     DEBUG LoadBalancer chose {instance} for {SVC}
gateway.upstream.reset   gw     WARN  Connection reset by {instance}, retrying
gateway.retry.attempt    gw     WARN  Retrying {method} {path} on {SVC} (attempt {attempt})
gateway.route.ok         gw     INFO  Routed {method} {path} to {instance}
gateway.response.sent    gw     INFO  Completed {status} {method} {path} in {elapsed} ms
gateway.response.error   gw     ERROR Returning {status} for {method} {path}: {reason}
# API gateway: background
gateway.health.check     gw     DEBUG Health check GET http://{instance}/actuator/health
gateway.health.ok        gw     INFO  Health check {instance}: UP in {ms} ms
gateway.health.slow      gw     WARN  Health check {instance} slow: UP in {ms} ms
gateway.routes.refresh   gw     INFO  Refreshed routes from discovery: {n} routes
# Eureka server
eureka.lookup.request    eureka DEBUG GET /eureka/apps/{SVC} from {gw_instance}
eureka.lookup.hit        eureka DEBUG Resolved {SVC} -> {n} instance(s) (cached)
eureka.lookup.miss       eureka INFO  Response cache miss for {SVC}, reading the registry
eureka.registry.fetch    eureka INFO  Registry read for {SVC}: v{version}, {n} instance(s)
eureka.lookup.empty      eureka ERROR No instances registered for {SVC}
eureka.register.request  eureka INFO  Registering {SVC}/{instance}, status STARTING
eureka.register.ok       eureka INFO  Registered {SVC}/{instance} (replication=false)
eureka.status.up         eureka INFO  Instance {SVC}/{instance} status STARTING -> UP
eureka.heartbeat.received eureka DEBUG PUT /eureka/apps/{SVC}/{instance} status=UP
eureka.lease.renew       eureka DEBUG Lease renewed for {SVC}/{instance}, expires in 90 s
eureka.replicate.ok      eureka DEBUG Replicated {action} of {SVC}/{instance} to {peer}
eureka.lease.evict_check eureka INFO  Running the evict task with compensationTime {ms} ms
eureka.lease.evicted     eureka WARN  Evicted {SVC}/{instance}: lease expired
eureka.cache.refresh     eureka DEBUG Refreshed the response cache ({n} entries)
eureka.renew.threshold   eureka INFO  Renews threshold {n}, renews in the last minute {m}
# Manager services: discovery client and actuator
discovery.register.start *      INFO  DiscoveryClient_{SVC}/{instance}: registering service
discovery.register.ok    *      INFO  DiscoveryClient_{SVC}/{instance} - registration status: 204
discovery.heartbeat.sent *      DEBUG DiscoveryClient_{SVC}/{instance} - sending heartbeat
discovery.heartbeat.ok   *      DEBUG DiscoveryClient_{SVC}/{instance} - Heartbeat status: 200
actuator.health.report   *      DEBUG Health {instance}: db UP, diskSpace UP ({free} GB free)
# Manager services: request handling
manager.request.start    *      INFO  Handling {method} {path} [trace={trace}]
manager.validation.ok    *      DEBUG Request body validated: {fields} field(s)
manager.cache.hit        *      DEBUG Cache hit for {key}
manager.cache.miss       *      DEBUG Cache miss for {key}
manager.cache.put        *      DEBUG Cached {key} (ttl {ttl} s)
manager.cache.evict      *      DEBUG Evicted {key} from the cache
manager.response.ok      *      INFO  Returning {status} for {path} in {elapsed} ms
manager.response.error   *      ERROR Request {path} failed: {reason}
user.profile.fetch       *      INFO  Loading profile of user {uid}
user.profile.update      *      INFO  Updating {fields} field(s) of user {uid}
user.roles.resolve       *      DEBUG Resolved roles {roles} for user {uid}
user.list.page           *      DEBUG Users page {page}: {rows} row(s)
order.create.start       *      INFO  Creating order {oid} for user {uid} with {items} item(s)
order.items.validate     *      DEBUG Validated {items} line item(s) of order {oid}
order.payment.authorize  *      INFO  Payment authorized for order {oid}: {amount} EUR
order.event.publish      *      INFO  Published OrderCreated for {oid} to orders.events
order.fetch              *      INFO  Loading order {oid}
order.list.page          *      DEBUG Orders of user {uid}, page {page}: {rows} row(s)
inventory.stock.check    *      INFO  Stock check for SKU {sku}
inventory.stock.low      *      WARN  Low stock for SKU {sku}: {qty} left
inventory.stock.reserve  *      INFO  Reserved {qty} of SKU {sku}
inventory.search.page    *      DEBUG Search '{term}' page {page}: {rows} result(s)
# Database access, logged by the manager service (HikariCP, Hibernate)
db.pool.wait             *      WARN  HikariPool-1 - waited {ms} ms for a connection
db.pool.acquire          *      DEBUG HikariPool-1 - connection acquired ({active}/20 active)
db.pool.release          *      DEBUG HikariPool-1 - connection returned to the pool
db.tx.begin              *      DEBUG Began transaction
db.tx.commit             *      DEBUG Committed transaction
db.tx.rollback           *      WARN  Rolled back transaction: {reason}
db.query.select          *      DEBUG select from {table} where {where} [{ms} ms, {rows} rows]
db.query.insert          *      DEBUG insert into {table} ... [{ms} ms]
db.query.update          *      DEBUG update {table} where id=? [{ms} ms, {rows} rows]
db.query.slow            *      WARN  Slow query on {table}: {ms} ms
db.query.timeout         *      ERROR Query on {table} timed out after {ms} ms
db.query.retry           *      WARN  Retrying query on {table} (attempt {attempt})
# Never emitted by normal traffic: the `unknown_event` anomaly draws from these.
gateway.filter.npe       gw     ERROR NullPointerException in filter {filter}
eureka.peer.desync       eureka ERROR Peer {peer} registry out of sync: {n} diffs
manager.cache.corrupt    *      ERROR Corrupt cache entry {key}, evicting
db.schema.mismatch       *      ERROR Column {table}.version missing: schema mismatch
manager.thread.starved   *      WARN  Thread pool exhausted: {active} active tasks
"""
UNKNOWN_EVENT_IDS = (
    "gateway.filter.npe",
    "eureka.peer.desync",
    "manager.cache.corrupt",
    "db.schema.mismatch",
    "manager.thread.starved",
)
"""What the `unknown_event` anomaly inserts."""
ANOMALY_ONLY = frozenset(
    {"eureka.lookup.empty", "db.tx.rollback", "db.query.timeout", "db.query.retry"}
).union(UNKNOWN_EVENT_IDS)
"""Event ids that normal traffic never emits."""


_SERVICE_CODES = {"gw": GATEWAY, "eureka": EUREKA, "*": MANAGER}


def _parse_table(text: str) -> tuple[Template, ...]:
    out = []
    for line in text.strip().splitlines():
        if line.startswith("#"):
            continue
        event_id, service, level, message = line.split(None, 3)
        service = _SERVICE_CODES[service]
        out.append(Template(event_id, service, level, message, event_id not in ANOMALY_ONLY))
    return tuple(out)


TEMPLATES = _parse_table(_TABLE)
TEMPLATE_BY_ID: dict[str, Template] = {t.event_id: t for t in TEMPLATES}

_TABLES = {
    "user-manager": ("users", "user_roles", "user_prefs"),
    "order-manager": ("orders", "order_items", "payments"),
    "inventory-manager": ("stock", "products", "reservations"),
}
_SEARCH_TERMS = ("usb-c cable", "monitor", "desk lamp", "keyboard", "backpack", "headset")
_ROLES = ("USER", "USER,ADMIN", "USER,SUPPORT")


@dataclass(frozen=True, slots=True)
class SimSession:
    session_id: str
    events: tuple[LogEvent, ...]
    anomaly: str | None = None
    """The injected anomaly's kind, None for normal traffic."""

    @property
    def label(self) -> int:
        return 0 if self.anomaly is None else 1

    def to_session(self) -> Session:
        return Session(
            session_id=self.session_id,
            events=tuple(e.event_id for e in self.events),
            start_ts=self.events[0].ts,
            end_ts=self.events[-1].ts,
            label=self.label,
        )


# One step of a flow: (event id, service, fields for its message, delay in ms before it).
Step = tuple[str, str, dict[str, Any], int]


class _Flow:
    """Builds the steps of one session; `svc` is the manager service that handles it."""

    def __init__(self, rng: random.Random, svc: str) -> None:
        self.rng = rng
        self.svc = svc
        self.steps: list[Step] = []

    def add(self, event_id: str, delay: int = 1, **fields: Any) -> None:
        service = TEMPLATE_BY_ID[event_id].service
        self.steps.append((event_id, self.svc if service == MANAGER else service, fields, delay))

    def query(self, kind: str, table: str, rows: int = 1) -> None:
        rng = self.rng
        ms = rng.randint(1, 25)
        where = "id=?" if rows == 1 else "owner_id=? limit 20"
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


def _request(rng: random.Random) -> tuple[_Flow, dict[str, Any]]:
    """The steps of one normal client request."""
    svc = rng.choice(MANAGERS)
    f = _Flow(rng, svc)
    method, path, op = rng.choice(_OPS[svc])
    fields = _session_fields(rng, svc)
    fields.update(method=method, path=path.format_map(fields))
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


def _cached_read(f: _Flow, key: str, hit_rate: float) -> bool:
    """A cache lookup; True on a hit."""
    if f.rng.random() < hit_rate:
        f.add("manager.cache.hit", 1, key=key)
        return True
    f.add("manager.cache.miss", 1, key=key)
    return False


def _user_get(f: _Flow, fields: dict[str, Any]) -> None:
    key = f"user:{fields['uid']}"
    if not _cached_read(f, key, 0.55):
        f.add("user.profile.fetch", 1)
        f.acquire()
        f.query("select", "users")
        if f.rng.random() < 0.5:
            f.query("select", "user_roles", f.rng.randint(1, 3))
            f.add("user.roles.resolve", 1, roles=f.rng.choice(_ROLES))
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


def _user_update(f: _Flow, fields: dict[str, Any]) -> None:
    n = f.rng.randint(1, 6)
    f.add("manager.validation.ok", 1, fields=n)
    f.add("user.profile.update", 1, fields=n)
    queries = [("select", "users", 1), ("update", "users", 1)]
    if f.rng.random() < 0.3:
        queries.append(("update", "user_prefs", 1))
    f.transaction(queries)
    f.add("manager.cache.evict", 1, key=f"user:{fields['uid']}")


def _user_list(f: _Flow, fields: dict[str, Any]) -> None:
    f.acquire()
    pages = f.rng.randint(1, 4)
    for page in range(pages):
        rows = 20 if page < pages - 1 else f.rng.randint(1, 20)
        f.query("select", "users", rows)
        f.add("user.list.page", 1, page=page, rows=rows)
    f.add("db.pool.release")


def _order_create(f: _Flow, fields: dict[str, Any]) -> None:
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


def _order_get(f: _Flow, fields: dict[str, Any]) -> None:
    key = f"order:{fields['oid']}"
    if not _cached_read(f, key, 0.4):
        f.add("order.fetch", 1)
        f.acquire()
        f.query("select", "orders")
        f.query("select", "order_items", f.rng.randint(1, 5))
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


def _order_list(f: _Flow, fields: dict[str, Any]) -> None:
    f.acquire()
    pages = f.rng.choice((1, 1, 1, 2, 2, 3, 5))
    for page in range(pages):
        rows = 20 if page < pages - 1 else f.rng.randint(0, 20)
        f.query("select", "orders", rows)
        f.add("order.list.page", 1, page=page, rows=rows)
    f.add("db.pool.release")


def _stock_check(f: _Flow, fields: dict[str, Any]) -> None:
    f.add("inventory.stock.check", 1)
    f.acquire()
    f.query("select", "stock")
    f.add("db.pool.release")
    if f.rng.random() < 0.1:
        f.add("inventory.stock.low", 1, qty=f.rng.randint(0, 5))


def _stock_reserve(f: _Flow, fields: dict[str, Any]) -> None:
    qty = f.rng.randint(1, 4)
    f.add("manager.validation.ok", 1, fields=2)
    f.transaction([("select", "stock", 1), ("update", "stock", 1), ("insert", "reservations", 1)])
    f.add("inventory.stock.reserve", 1, qty=qty)


def _search(f: _Flow, fields: dict[str, Any]) -> None:
    term = fields["term"]
    key = f"search:{term}"
    if not _cached_read(f, key, 0.3):
        f.acquire()
        pages = f.rng.randint(1, 3)
        for page in range(pages):
            rows = 20 if page < pages - 1 else f.rng.randint(0, 20)
            f.query("select", "products", rows)
            f.add("inventory.search.page", 1, term=term, page=page, rows=rows)
        f.add("db.pool.release")
        f.add("manager.cache.put", 1, key=key)


_Op = Callable[[_Flow, dict[str, Any]], None]
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
        ("GET", "/api/inventory/search?q={term}", _search),
    ),
}


def _registration(rng: random.Random) -> tuple[_Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = _Flow(rng, svc)
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


def _heartbeat(rng: random.Random) -> tuple[_Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = _Flow(rng, svc)
    f.add("discovery.heartbeat.sent", 0)
    f.add("eureka.heartbeat.received", rng.randint(1, 6))
    f.add("eureka.lease.renew", 1)
    if rng.random() < 0.6:
        f.add("eureka.replicate.ok", rng.randint(1, 6), action="Heartbeat")
    f.add("discovery.heartbeat.ok", rng.randint(1, 6))
    return f, _session_fields(rng, svc)


def _health_check(rng: random.Random) -> tuple[_Flow, dict[str, Any]]:
    svc = rng.choice(MANAGERS)
    f = _Flow(rng, svc)
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


def _eureka_maintenance(rng: random.Random) -> tuple[_Flow, dict[str, Any]]:
    f = _Flow(rng, rng.choice(MANAGERS))
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
_KINDS = (
    ("request", 0.75, "req", _request),
    ("heartbeat", 0.10, "hb", _heartbeat),
    ("health", 0.08, "hc", _health_check),
    ("maintenance", 0.04, "ev", _eureka_maintenance),
    ("registration", 0.03, "reg", _registration),
)


def _index(steps: Sequence[Step], prefix: str) -> int | None:
    for i, s in enumerate(steps):
        if s[0].startswith(prefix):
            return i
    return None


def _step(f: _Flow, event_id: str, delay: int, **fields: Any) -> Step:
    service = TEMPLATE_BY_ID[event_id].service
    return (event_id, f.svc if service == MANAGER else service, fields, delay)


def _inject(kind: str, rng: random.Random, f: _Flow, fields: dict[str, Any]) -> list[Step] | None:
    """The steps of request `f` with anomaly `kind`; None if this request can't carry it."""
    steps = f.steps
    if kind == "db_timeout":
        i = _index(steps, "db.query.")
        if i is None:
            return None
        table = steps[i][2]["table"]
        out = steps[:i]
        timeout = rng.choice((3_000, 5_000))
        out.append(_step(f, "db.query.timeout", timeout, table=table, ms=timeout))
        for attempt in range(2, 2 + rng.randint(1, 2)):
            out.append(
                _step(f, "db.query.retry", rng.randint(50, 200), table=table, attempt=attempt)
            )
            out.append(_step(f, "db.query.timeout", timeout, table=table, ms=timeout))
        reason = "QueryTimeoutException"
        if _index(out, "db.tx.begin") is not None:
            out.append(_step(f, "db.tx.rollback", 2, reason=reason))
        out.append(_step(f, "db.pool.release", 1))
        out.append(_step(f, "manager.response.error", 1, status=500, reason=reason))
        out.append(_step(f, "gateway.response.error", 2, status=504, reason="upstream timed out"))
        return out
    if kind == "no_instance":
        i = _index(steps, "eureka.lookup.request")
        assert i is not None  # every request looks its service up
        out = steps[: i + 1]
        out.append(_step(f, "eureka.lookup.miss", 1))
        out.append(_step(f, "eureka.registry.fetch", rng.randint(5, 40), version=0, n=0))
        out.append(_step(f, "eureka.lookup.empty", 1))
        reason = f"no instances available for {fields['SVC']}"
        out.append(_step(f, "gateway.response.error", 2, status=503, reason=reason))
        return out
    if kind == "out_of_order":
        return _swap(rng, steps)
    if kind == "unknown_event":
        eid = rng.choice(UNKNOWN_EVENT_IDS)
        i = rng.randint(1, len(steps) - 1)
        extra = {
            "filter": "JwtAuthFilter",
            "active": rng.randint(200, 400),
            "key": f"user:{fields['uid']}",
            "table": rng.choice(_TABLES[f.svc]),
        }
        return [*steps[:i], _step(f, eid, rng.randint(1, 20), **extra), *steps[i:]]
    if kind == "truncated":
        if len(steps) < 8:
            return None
        return steps[: rng.randint(3, len(steps) - 3)]
    raise ValueError(f"unknown anomaly kind {kind!r}")


def _swap(rng: random.Random, steps: list[Step]) -> list[Step] | None:
    """Move one step out of its place. Times stay in their slots, so the log shows the
    steps in the new order."""
    ids = [s[0] for s in steps]
    moves: list[tuple[int, int]] = []  # (from, to)
    if "gateway.response.sent" in ids:  # the response before the manager even starts
        moves.append((ids.index("gateway.response.sent"), ids.index("manager.request.start")))
    q = _index(steps, "db.query.")
    if q is not None:
        if "manager.response.ok" in ids:  # the manager answers before querying
            moves.append((ids.index("manager.response.ok"), q))
        if "db.pool.release" in ids:  # the connection is released before it is used
            moves.append((ids.index("db.pool.release"), q))
    moves.append((ids.index("gateway.route.ok"), ids.index("eureka.lookup.request")))
    src, dst = rng.choice(moves)
    body = [(s[0], s[1], s[2]) for s in steps]
    body.insert(dst, body.pop(src))
    return [(*b, s[3]) for b, s in zip(body, steps, strict=True)]


def _pick_kind(
    rng: random.Random,
) -> tuple[str, Callable[[random.Random], tuple[_Flow, dict[str, Any]]]]:
    r = rng.random()
    for _kind, weight, prefix, build in _KINDS:
        r -= weight
        if r < 0:
            return prefix, build
    return _KINDS[0][2], _KINDS[0][3]


def simulate_session(rng: random.Random, start_ms: int, anomaly: str | None = None) -> SimSession:
    """One session starting at `start_ms`: normal traffic of a random kind, or a request
    carrying the given anomaly kind."""
    if anomaly is None:
        prefix, build = _pick_kind(rng)
        f, fields = build(rng)
        steps = f.steps
    else:
        prefix = "req"
        for _ in range(100):
            f, fields = _request(rng)
            injected = _inject(anomaly, rng, f, fields)
            if injected is not None:
                steps = injected
                break
        else:  # pragma: no cover - each kind fits most requests
            raise RuntimeError(f"could not inject {anomaly}")
    session_id = f"{prefix}-{rng.getrandbits(64):016x}"
    attrs: dict[str, Any] = {"label": 0} if anomaly is None else {"label": 1, "anomaly": anomaly}
    ts = start_ms
    events = []
    for event_id, service, step_fields, delay in steps:
        ts += delay
        t = TEMPLATE_BY_ID[event_id]
        message = t.text.format_map({**fields, **step_fields})
        events.append(LogEvent(ts, service, session_id, event_id, t.level, message, attrs))
    return SimSession(session_id, tuple(events), anomaly)


def generate_sessions(
    rng: random.Random,
    n: int,
    start_ms: int,
    mean_interval_ms: float,
    anomaly_rate: float = 0.0,
    kinds: Sequence[str] = ANOMALY_KINDS,
) -> Iterator[SimSession]:
    """`n` sessions with Poisson arrivals (mean gap `mean_interval_ms`), in start order.
    Each is anomalous with probability `anomaly_rate`, of a kind drawn uniformly from `kinds`."""
    t = float(start_ms)
    for _ in range(n):
        yield simulate_session(rng, int(t), _pick_anomaly(rng, anomaly_rate, kinds))
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
) -> list[SimSession]:
    """`n` sessions starting at uniform random times within the day, in start order."""
    starts = sorted(day_start_ms + rng.randrange(86_400_000) for _ in range(n))
    return [simulate_session(rng, t, _pick_anomaly(rng, anomaly_rate, kinds)) for t in starts]


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
