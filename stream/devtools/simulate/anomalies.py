"""Anomalies injected into a request's steps, one kind at a time (see the package's
docstring for the kinds)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from stream.devtools.simulate.flows import TABLES, Flow, Step
from stream.devtools.simulate.templates import MANAGER, TEMPLATE_BY_ID, UNKNOWN_EVENT_IDS


def _index(steps: Sequence[Step], prefix: str) -> int | None:
    for i, s in enumerate(steps):
        if s[0].startswith(prefix):
            return i
    return None


def _step(f: Flow, event_id: str, delay: int, **fields: Any) -> Step:
    service = TEMPLATE_BY_ID[event_id].service
    return (event_id, f.svc if service == MANAGER else service, fields, delay)


def inject(kind: str, rng: random.Random, f: Flow, fields: dict[str, Any]) -> list[Step] | None:
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
            "table": rng.choice(TABLES[f.svc]),
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
