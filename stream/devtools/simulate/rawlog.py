"""Simulated sessions as raw log lines and raw events: what the services would print.

A line is Spring Boot's default logback console pattern, in UTC, with Sleuth/Micrometer's
`[app,traceId,spanId]` after the level, as `logad parse --format spring-boot` reads it
(`%d %5p [%X{app},%X{traceId},%X{spanId}] %pid --- [%15.15t] %-40.40logger{39} : %m`), for example:

    YYYY-MM-DD hh:mm:ss.SSS  INFO [api-gateway,5f2b9c1d8e7a6b43,5f2b9c1d8e7a6b43] 1 ---
      [ctor-http-nio-3] o.s.c.g.h.RoutePredicateHandlerMapping   : Route matched
      /api/orders/42 -> lb://order-manager

(one line, cut in three here). The trace id is the session's (16 hex digits); each service
a session meets logs under a span of its own, the first one under the root span, whose id
is the trace id. A raw event is a LogEvent without an event id: the line's message, keyed
by the trace id.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import orjson

from schemas.events import LogEvent
from stream.devtools.simulate.templates import EUREKA, GATEWAY, MANAGERS
from stream.devtools.simulate.traffic import SimSession, trace_id

_PID = 1
"""Each service runs in a container of its own, as process 1."""

# (event-id prefix, logger, thread): the longest prefix of an event id wins. In a thread
# name, {n} is the session's worker number and {port} the service's port; `{pkg}` in a
# logger is the manager's package.
_ORIGINS = (
    ("gateway.", "c.e.gateway.filter.RequestLoggingFilter", "reactor-http-nio-{n}"),
    ("gateway.auth.", "c.e.gateway.security.JwtAuthFilter", "reactor-http-nio-{n}"),
    ("gateway.ratelimit.", "o.s.c.g.f.ratelimit.RedisRateLimiter", "reactor-http-nio-{n}"),
    ("gateway.route.resolve", "o.s.c.g.h.RoutePredicateHandlerMapping", "reactor-http-nio-{n}"),
    ("gateway.lb.", "o.s.c.l.core.RoundRobinLoadBalancer", "reactor-http-nio-{n}"),
    ("gateway.upstream.", "o.s.c.g.filter.NettyRoutingFilter", "reactor-http-nio-{n}"),
    ("gateway.retry.", "o.s.c.g.f.f.RetryGatewayFilterFactory", "reactor-http-nio-{n}"),
    ("gateway.route.ok", "o.s.c.g.filter.NettyRoutingFilter", "reactor-http-nio-{n}"),
    ("gateway.health.", "c.e.gateway.health.HealthChecker", "boundedElastic-{n}"),
    ("gateway.routes.", "o.s.c.g.route.CachingRouteLocator", "boundedElastic-{n}"),
    ("gateway.filter.", "o.s.c.g.handler.FilteringWebHandler", "reactor-http-nio-{n}"),
    ("eureka.", "c.n.e.registry.AbstractInstanceRegistry", "nio-8761-exec-{n}"),
    ("eureka.lookup.", "c.n.e.registry.ResponseCacheImpl", "nio-8761-exec-{n}"),
    ("eureka.registry.", "c.n.e.registry.ResponseCacheImpl", "nio-8761-exec-{n}"),
    (
        "eureka.replicate.",
        "c.n.eureka.cluster.PeerEurekaNode",
        "TaskBatchingWorker-target_eureka-{n}",
    ),
    ("eureka.peer.", "c.n.eureka.cluster.PeerEurekaNodes", "Eureka-PeerNodesUpdater"),
    ("eureka.lease.evict", "c.n.e.registry.AbstractInstanceRegistry", "Eureka-EvictionTimer"),
    ("eureka.cache.", "c.n.e.registry.ResponseCacheImpl", "Eureka-CacheFillTimer"),
    ("eureka.renew.", "c.n.e.r.PeerAwareInstanceRegistryImpl", "RenewalThresholdUpdater"),
    ("discovery.", "com.netflix.discovery.DiscoveryClient", "InstanceInfoReplicator-0"),
    ("discovery.heartbeat.", "com.netflix.discovery.DiscoveryClient", "HeartbeatExecutor-0"),
    ("actuator.", "o.s.b.a.health.HealthEndpointSupport", "nio-{port}-exec-{n}"),
    ("manager.", "c.e.{pkg}.web.RequestLogger", "nio-{port}-exec-{n}"),
    ("manager.cache.", "c.e.{pkg}.cache.CacheService", "nio-{port}-exec-{n}"),
    ("manager.thread.", "o.s.s.concurrent.ThreadPoolTaskExecutor", "nio-{port}-exec-{n}"),
    ("user.", "c.e.users.service.UserService", "nio-{port}-exec-{n}"),
    ("order.", "c.e.orders.service.OrderService", "nio-{port}-exec-{n}"),
    ("inventory.", "c.e.inventory.service.StockService", "nio-{port}-exec-{n}"),
    ("db.pool.", "com.zaxxer.hikari.pool.HikariPool", "nio-{port}-exec-{n}"),
    ("db.tx.", "o.s.orm.jpa.JpaTransactionManager", "nio-{port}-exec-{n}"),
    ("db.query.", "org.hibernate.SQL", "nio-{port}-exec-{n}"),
    ("db.query.timeout", "o.h.engine.jdbc.spi.SqlExceptionHelper", "nio-{port}-exec-{n}"),
    ("db.schema.", "o.h.tool.schema.spi.SchemaValidator", "nio-{port}-exec-{n}"),
)
_PACKAGES = {"user-manager": "users", "order-manager": "orders", "inventory-manager": "inventory"}
_PORTS = {GATEWAY: 8080, EUREKA: 8761} | {svc: 8081 + i for i, svc in enumerate(MANAGERS)}
_WORKERS = 10
"""Request threads per service (Tomcat's and Reactor Netty's pools, kept small)."""


def _origin(event_id: str) -> tuple[str, str]:
    """(logger, thread pattern) of an event id."""
    best = max((p for p in _ORIGINS if event_id.startswith(p[0])), key=lambda p: len(p[0]))
    return best[1], best[2]


_ORIGIN_CACHE: dict[str, tuple[str, str]] = {}


def _origin_of(event_id: str) -> tuple[str, str]:
    got = _ORIGIN_CACHE.get(event_id)
    if got is None:
        got = _ORIGIN_CACHE[event_id] = _origin(event_id)
    return got


def format_line(
    ts: int, level: str, app: str, trace: str, span: str, thread: str, logger: str, msg: str
) -> str:
    """One line in the console pattern above."""
    t = datetime.fromtimestamp(ts // 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{t}.{ts % 1000:03d} {level:>5} [{app},{trace},{span}] {_PID} --- "
        f"[{thread[-15:]:>15}] {logger[-40:]:<40} : {msg}"
    )


def raw_lines(s: SimSession) -> list[tuple[int, str]]:
    """(event time, line) of each of the session's events, in its order."""
    trace = s.trace_id
    # Spans and worker threads are the session's own draws, from its id: rendering draws
    # nothing from the traffic's generator.
    rng = random.Random(s.session_id)
    spans: dict[str, tuple[str, int]] = {}
    out = []
    for e in s.events:
        assert e.event_id is not None  # the simulator names every event it makes
        span = spans.get(e.service)
        if span is None:
            span_id = trace if not spans else f"{rng.getrandbits(64):016x}"
            span = spans[e.service] = (span_id, rng.randint(1, _WORKERS))
        logger, thread = _origin_of(e.event_id)
        pkg = _PACKAGES.get(e.service, "app")
        thread = thread.format(n=span[1], port=_PORTS[e.service])
        line = format_line(
            e.ts,
            e.level or "INFO",
            e.service,
            trace,
            span[0],
            thread,
            logger.format(pkg=pkg),
            e.message or "",
        )
        out.append((e.ts, line))
    return out


def merged_lines(sessions: Iterable[SimSession]) -> Iterator[str]:
    """The lines of sessions, merged in event-time order as one log shows them (a session's
    own lines keep their order)."""
    return (line for _, line in heapq.merge(*(raw_lines(s) for s in sessions), key=_ts))


def _ts(item: tuple[int, str]) -> int:
    return item[0]


def raw_event(e: LogEvent) -> tuple[bytes, bytes]:
    """(key, value) of a simulated event as a raw event: no event id, the trace id as its
    session id and key, the message and level as logged, the labels in attrs."""
    trace = trace_id(e.session_id)
    record = {"ts": e.ts, "service": e.service, "session_id": trace, "level": e.level}
    record["message"] = e.message
    if e.attrs:
        record["attrs"] = e.attrs
    return trace.encode(), orjson.dumps(record)
