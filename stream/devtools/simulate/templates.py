"""The log templates of the simulated Spring Cloud system: one per event id, with the
service that logs it, its level and its message pattern."""

from __future__ import annotations

from dataclasses import dataclass

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
