"""The log templates of the simulated Spring Cloud system: one per event id, with the
service that logs it, its level and its message patterns.

Each event id has two or three phrasings: the services run in several builds at once (a
rolling upgrade reworded some log statements), and a session meets one build of each
service. A template miner sees each phrasing as a template of its own."""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY = "api-gateway"
EUREKA = "eureka-server"
MANAGERS = ("user-manager", "order-manager", "inventory-manager")
MANAGER = "*"
"""A template's service when any manager service logs it."""

ANOMALY_KINDS = ("db_timeout", "no_instance", "out_of_order", "unknown_event", "truncated")

BUILDS = 3
"""Builds of each service running at once. Build b logs phrasing b mod the number of an
event's phrasings: an event with two phrasings is logged by build 2 in the original one."""


@dataclass(frozen=True, slots=True)
class Template:
    event_id: str
    service: str
    """The service that logs it; MANAGER for whichever manager service handles the session."""
    level: str
    texts: tuple[str, ...]
    """Its phrasings, the original first: `str.format` patterns over the session's fields
    and the step's own."""
    normal: bool = True
    """False for event ids that only injected anomalies emit."""

    @property
    def text(self) -> str:
        return self.texts[0]

    def phrasing(self, build: int) -> int:
        """The phrasing a service in build `build` logs."""
        return build % len(self.texts)


# One template a line: event id, service (gw: the API gateway, eureka: the Eureka server,
# *: whichever manager service handles the session), level, message pattern; each further
# phrasing of it on a line of its own after `|`.
_TABLE = """
# API gateway: the request path
gateway.request.received gw     INFO  Incoming request {method} {path} from {client_ip}
  | Received {method} request for {path} (remote address {client_ip})
  | Request {method} {path} accepted from client {client_ip}
gateway.auth.ok          gw     INFO  Authenticated principal {user} via JWT (exp in {ttl}s)
  | JWT accepted for {user}, token expires in {ttl}s
  | Authentication successful: subject={user} scheme=Bearer ttl={ttl}s
gateway.auth.cache_hit   gw     DEBUG Token validation served from cache for {user}
  | Cached token still valid for {user}, skipping introspection
gateway.ratelimit.ok     gw     DEBUG Rate limit ok for {client_ip} ({remaining} left)
  | RequestRateLimiter allowed {client_ip}: {remaining} tokens remaining
  | Within rate limit: key={client_ip} remaining={remaining}
gateway.route.resolve    gw     DEBUG Route matched {path} -> lb://{svc}
  | Mapping exchange {method} {path} to route {svc}-route
  | Resolved route for {path}: uri lb://{svc}
gateway.lb.choose        gw     DEBUG LoadBalancer chose {instance} for {SVC}
  | Selected instance {instance} of {svc} (round robin)
  | RoundRobinLoadBalancer picked {instance} for service {svc}
gateway.upstream.reset   gw     WARN  Connection reset by {instance}, retrying
  | Upstream {instance} closed the connection prematurely
gateway.retry.attempt    gw     WARN  Retrying {method} {path} on {SVC} (attempt {attempt})
  | Retry {attempt} of {method} {path} to {svc}
  | Re-sending {method} {path}, attempt {attempt} of 3
gateway.route.ok         gw     INFO  Routed {method} {path} to {instance}
  | Forwarding {method} {path} to upstream {instance}
  | Proxying {method} {path} -> {instance}
gateway.response.sent    gw     INFO  Completed {status} {method} {path} in {elapsed} ms
  | {method} {path} completed with status {status} ({elapsed} ms)
  | Response {status} for {method} {path} sent after {elapsed}ms
gateway.response.error   gw     ERROR Returning {status} for {method} {path}: {reason}
  | Upstream call {method} {path} ended in {status}: {reason}
  | Error response {status} to {method} {path} ({reason})
# API gateway: background
gateway.health.check     gw     DEBUG Health check GET http://{instance}/actuator/health
  | Probing http://{instance}/actuator/health
  | Polling the health endpoint of {instance}
gateway.health.ok        gw     INFO  Health check {instance}: UP in {ms} ms
  | Instance {instance} reports UP (health check took {ms}ms)
  | Health of {instance}: status=UP, latency={ms}ms
gateway.health.slow      gw     WARN  Health check {instance} slow: UP in {ms} ms
  | Slow health response from {instance}: {ms} ms
gateway.routes.refresh   gw     INFO  Refreshed routes from discovery: {n} routes
  | RouteRefreshListener: {n} routes after a discovery change
  | Route definitions reloaded ({n} routes)
# Eureka server
eureka.lookup.request    eureka DEBUG GET /eureka/apps/{SVC} from {gw_instance}
  | Fetching application {SVC} for client {gw_instance}
  | Lookup of {SVC} requested by {gw_instance}
eureka.lookup.hit        eureka DEBUG Resolved {SVC} -> {n} instance(s) (cached)
  | Read-only cache served {SVC}: {n} instance(s)
eureka.lookup.miss       eureka INFO  Response cache miss for {SVC}, reading the registry
  | Read-only cache has no entry for {SVC}; loading it from the registry
eureka.registry.fetch    eureka INFO  Registry read for {SVC}: v{version}, {n} instance(s)
  | Loaded {SVC} from the registry (version {version}, {n} instances)
  | Registry has {n} instance(s) of {SVC} at version {version}
eureka.lookup.empty      eureka ERROR No instances registered for {SVC}
  | Application {SVC} has no registered instances
  | Lookup failed: no instance of {SVC} is UP
eureka.register.request  eureka INFO  Registering {SVC}/{instance}, status STARTING
  | Registration request for {SVC}/{instance} (status STARTING)
  | Register request from {instance} for application {SVC}
eureka.register.ok       eureka INFO  Registered {SVC}/{instance} (replication=false)
  | New registration: {SVC}/{instance}
eureka.status.up         eureka INFO  Instance {SVC}/{instance} status STARTING -> UP
  | Status of {SVC}/{instance} changed from STARTING to UP
  | {SVC}/{instance} is now UP
eureka.heartbeat.received eureka DEBUG PUT /eureka/apps/{SVC}/{instance} status=UP
  | Heartbeat from {SVC}/{instance} (status UP)
  | Received renewal from {instance} for {SVC}
eureka.lease.renew       eureka DEBUG Lease renewed for {SVC}/{instance}, expires in 90 s
  | Renewed the lease of {SVC}/{instance}: valid for another 90s
eureka.replicate.ok      eureka DEBUG Replicated {action} of {SVC}/{instance} to {peer}
  | Replication of {action} for {SVC}/{instance} to {peer} succeeded
  | Peer {peer} acknowledged {action} of {SVC}/{instance}
eureka.lease.evict_check eureka INFO  Running the evict task with compensationTime {ms} ms
  | Evict task started (compensation {ms}ms)
  | EvictionTask: checking leases, compensationTime={ms}ms
eureka.lease.evicted     eureka WARN  Evicted {SVC}/{instance}: lease expired
  | Lease of {SVC}/{instance} expired, instance removed
eureka.cache.refresh     eureka DEBUG Refreshed the response cache ({n} entries)
  | Response cache updated: {n} entries
  | ResponseCache refresh done, {n} entries
eureka.renew.threshold   eureka INFO  Renews threshold {n}, renews in the last minute {m}
  | Self-preservation check: expected {n} renews, got {m} in the last minute
# Manager services: discovery client and actuator
discovery.register.start *      INFO  DiscoveryClient_{SVC}/{instance}: registering service...
  | Registering application {SVC} with eureka with status UP
  | Registering instance {instance} with Eureka
discovery.register.ok    *      INFO  DiscoveryClient_{SVC}/{instance} - registration status: 204
  | Registration of {SVC}/{instance} succeeded (204)
discovery.heartbeat.sent *      DEBUG DiscoveryClient_{SVC}/{instance} - sending heartbeat
  | Sending heartbeat for {SVC}/{instance}
  | Renewing the lease of {instance} with Eureka
discovery.heartbeat.ok   *      DEBUG DiscoveryClient_{SVC}/{instance} - Heartbeat status: 200
  | Heartbeat for {SVC}/{instance} acknowledged (200)
actuator.health.report   *      DEBUG Health {instance}: db UP, diskSpace UP ({free} GB free)
  | Health indicators: db=UP diskSpace=UP free={free}GB
  | Reporting UP for {instance} (db UP, {free} GB disk free)
# Manager services: request handling
manager.request.start    *      INFO  Handling {method} {path} [trace={trace}]
  | Dispatching {method} {path} to the controller
  | Processing request {method} {path} (trace {trace})
manager.validation.ok    *      DEBUG Request body validated: {fields} field(s)
  | Validated {fields} field(s) of the request body
  | Payload passed validation ({fields} fields)
manager.cache.hit        *      DEBUG Cache hit for {key}
  | Found {key} in the cache
  | Returning the cached value of {key}
manager.cache.miss       *      DEBUG Cache miss for {key}
  | No cached value for {key}
  | Nothing cached under {key}, loading
manager.cache.put        *      DEBUG Cached {key} (ttl {ttl} s)
  | Stored {key} in the cache for {ttl}s
  | Cache put {key}, expires in {ttl} s
manager.cache.evict      *      DEBUG Evicted {key} from the cache
  | Invalidated cache entry {key}
manager.response.ok      *      INFO  Returning {status} for {path} in {elapsed} ms
  | Handled {path}: {status} in {elapsed} ms
  | Controller finished {path} with {status} after {elapsed}ms
manager.response.error   *      ERROR Request {path} failed: {reason}
  | Handler for {path} threw {reason}
  | Responding {status} to {path}: {reason}
user.profile.fetch       *      INFO  Loading profile of user {uid}
  | Fetching user {uid} from the repository
  | findById({uid}) on UserRepository
user.profile.update      *      INFO  Updating {fields} field(s) of user {uid}
  | Patching user {uid}: {fields} changed field(s)
user.roles.resolve       *      DEBUG Resolved roles {roles} for user {uid}
  | User {uid} has authorities [{roles}]
user.list.page           *      DEBUG Users page {page}: {rows} row(s)
  | Fetched page {page} of users ({rows} rows)
  | Page {page} of the user list has {rows} entries
order.create.start       *      INFO  Creating order {oid} for user {uid} with {items} item(s)
  | New order {oid}: user {uid}, {items} item(s)
  | Placing order {oid} ({items} items) for user {uid}
order.items.validate     *      DEBUG Validated {items} line item(s) of order {oid}
  | Order {oid}: all {items} line item(s) valid
order.payment.authorize  *      INFO  Payment authorized for order {oid}: {amount} EUR
  | Authorized {amount} EUR for {oid}
  | PaymentGateway approved {oid} amount={amount} currency=EUR
order.event.publish      *      INFO  Published OrderCreated for {oid} to orders.events
  | Sent OrderCreated({oid}) to topic orders.events
order.fetch              *      INFO  Loading order {oid}
  | Looking up order {oid} in OrderRepository
order.list.page          *      DEBUG Orders of user {uid}, page {page}: {rows} row(s)
  | Page {page} of orders for user {uid}: {rows} rows
inventory.stock.check    *      INFO  Stock check for SKU {sku}
  | Checking availability of {sku}
  | Looking up the stock level of {sku}
inventory.stock.low      *      WARN  Low stock for SKU {sku}: {qty} left
  | {sku} is running low ({qty} units)
inventory.stock.reserve  *      INFO  Reserved {qty} of SKU {sku}
  | Reservation of {qty} x {sku} confirmed
inventory.search.page    *      DEBUG Search '{term}' page {page}: {rows} result(s)
  | Query "{term}" returned {rows} result(s) on page {page}
# Database access, logged by the manager service (HikariCP, Hibernate)
db.pool.wait             *      WARN  HikariPool-1 - waited {ms} ms for a connection
  | Connection not available yet, waited {ms}ms (pool HikariPool-1)
db.pool.acquire          *      DEBUG HikariPool-1 - connection acquired ({active}/20 active)
  | Borrowed a connection from HikariPool-1, active={active}
  | Got JDBC connection (pool HikariPool-1, {active} active)
db.pool.release          *      DEBUG HikariPool-1 - connection returned to the pool
  | Released JDBC connection
  | Closing JDBC connection (returned to HikariPool-1)
db.tx.begin              *      DEBUG Began transaction
  | Creating new transaction with name [{svc}.service]: PROPAGATION_REQUIRED
  | Opened new EntityManager for JPA transaction
db.tx.commit             *      DEBUG Committed transaction
  | Committing JPA transaction on EntityManager
  | Transaction committed
db.tx.rollback           *      WARN  Rolled back transaction: {reason}
  | Rolling back JPA transaction after {reason}
db.query.select          *      DEBUG select from {table} where {where} [{ms} ms, {rows} rows]
  | Hibernate: select * from {table} where {where} ({rows} rows, {ms} ms)
  | Query {table} [{where}] returned {rows} row(s) in {ms} ms
db.query.insert          *      DEBUG insert into {table} ... [{ms} ms]
  | Inserted 1 row into {table} ({ms} ms)
db.query.update          *      DEBUG update {table} where id=? [{ms} ms, {rows} rows]
  | Updated {rows} row(s) of {table} in {ms} ms
db.query.slow            *      WARN  Slow query on {table}: {ms} ms
  | Query against {table} took {ms} ms (threshold 500 ms)
db.query.timeout         *      ERROR Query on {table} timed out after {ms} ms
  | Statement cancelled on {table}: timeout after {ms}ms
db.query.retry           *      WARN  Retrying query on {table} (attempt {attempt})
  | Query on {table} failed, retry {attempt}
# Never emitted by normal traffic: the `unknown_event` anomaly draws from these.
gateway.filter.npe       gw     ERROR NullPointerException in filter {filter}
  | Filter {filter} failed with java.lang.NullPointerException
eureka.peer.desync       eureka ERROR Peer {peer} registry out of sync: {n} diffs
  | Registry of {peer} differs in {n} entries, resyncing
manager.cache.corrupt    *      ERROR Corrupt cache entry {key}, evicting
  | Failed to deserialize cached {key}, dropping it
db.schema.mismatch       *      ERROR Column {table}.version missing: schema mismatch
  | Schema validation failed: missing column [version] in table [{table}]
manager.thread.starved   *      WARN  Thread pool exhausted: {active} active tasks
  | Task executor saturated ({active} active), queueing
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
    rows: list[tuple[str, str, str, list[str]]] = []
    for line in text.strip().splitlines():
        if line.startswith("#"):
            continue
        if line.lstrip().startswith("| "):
            rows[-1][3].append(line.lstrip()[2:])
            continue
        event_id, service, level, message = line.split(None, 3)
        rows.append((event_id, _SERVICE_CODES[service], level, [message]))
    return tuple(
        Template(event_id, service, level, tuple(texts), event_id not in ANOMALY_ONLY)
        for event_id, service, level, texts in rows
    )


TEMPLATES = _parse_table(_TABLE)
TEMPLATE_BY_ID: dict[str, Template] = {t.event_id: t for t in TEMPLATES}
"""The templates of the version every service runs before a drift (simulate/drift.py)."""

# order-manager's new version (simulate/drift.py rolls it out): the same steps of creating
# an order, worded anew, so a template miner (or the model's vocabulary) sees new ids.
_NEW_VERSION_TABLE = """
order.checkout.start     *      INFO  Checkout {oid} started: user {uid}, {items} line(s)
  | Starting checkout {oid} for user {uid} ({items} lines)
order.lines.check        *      DEBUG Checked {items} order line(s) of {oid}
  | Order lines of {oid} checked: {items} ok
order.outbox.append      *      INFO  Appended OrderCreated({oid}) to the outbox
  | Outbox: queued OrderCreated for {oid}
"""

NEW_VERSION_TEMPLATES = _parse_table(_NEW_VERSION_TABLE)
"""Templates only the new version logs, from the drift on."""
TEMPLATE_OF: dict[str, Template] = {
    **TEMPLATE_BY_ID,
    **{t.event_id: t for t in NEW_VERSION_TEMPLATES},
}
"""Every template the traffic may log, drift included."""
