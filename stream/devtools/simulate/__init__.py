"""Simulated logs of a Spring Cloud-style system, with labelled anomalies (`logad simulate`).

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

Every event is worded in one of two or three phrasings: each service runs in several builds,
and a session meets one build of each (so a template miner finds a template per phrasing).

The traffic model is pure (the caller passes in a `random.Random` and the start time):
`templates` (the log lines and their phrasings), `flows` (normal sessions), `anomalies`
(what is injected) and `traffic` (sessions and the event stream). `rawlog` renders them as
raw text: Spring Boot console lines with `[app,traceId,spanId]`, the session's trace id
its key. `outputs` writes daily files (of event ids, or raw logs) or produces to a topic
(events with event ids, or raw events); `settings` holds `SimulateSettings`, whose sections
the demo reuses.
"""

from stream.devtools.simulate.templates import (
    ANOMALY_KINDS,
    ANOMALY_ONLY,
    EUREKA,
    GATEWAY,
    MANAGER,
    MANAGERS,
    TEMPLATE_BY_ID,
    TEMPLATES,
    UNKNOWN_EVENT_IDS,
    Template,
)
from stream.devtools.simulate.traffic import (
    SimSession,
    generate_sessions,
    interleave,
    malformed_message,
    simulate_day,
    simulate_session,
    trace_id,
)

__all__ = [
    "ANOMALY_KINDS",
    "ANOMALY_ONLY",
    "EUREKA",
    "GATEWAY",
    "MANAGER",
    "MANAGERS",
    "TEMPLATES",
    "TEMPLATE_BY_ID",
    "UNKNOWN_EVENT_IDS",
    "SimSession",
    "Template",
    "generate_sessions",
    "interleave",
    "malformed_message",
    "simulate_day",
    "simulate_session",
    "trace_id",
]
