"""Drift: a new version of order-manager rolls out, and the normal traffic changes under
the model.

The new version creates orders in the same steps, worded anew (new event ids in place of
old ones: `RENAMED`), and caches a new order as soon as its transaction commits (a known
event, `manager.cache.put`, in a place it never held). Every other service, and every other
endpoint's log, stays as it was. Labels and injected anomalies are untouched: a drifted
session is as normal, or as anomalous, as it would have been.

From the drift's first day the new version serves a share of order-manager's requests that
grows by 1/`ramp_days` a day (all of them from day `ramp_days` on). Which requests it serves
comes from a hash of the session id, not from the traffic's random generator, so the same
seed gives the same sessions with or without a drift, apart from the drifted ones' events.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stream.devtools.simulate.flows import Step

DAY_MS = 86_400_000
NEW_VERSION_SERVICE = "order-manager"
"""The service whose new version the drift rolls out."""

RENAMED = {
    "order.create.start": "order.checkout.start",
    "order.items.validate": "order.lines.check",
    "order.event.publish": "order.outbox.append",
}
"""Old event id -> the new version's id for the same step."""
NEW_VERSION_IDS = frozenset(RENAMED.values())
"""Event ids only the new version logs."""


@dataclass(frozen=True, slots=True)
class Drift:
    """When the new version rolls out: from `start_ms` (a midnight UTC) over `ramp_days`."""

    start_ms: int
    ramp_days: int = 1

    def __post_init__(self) -> None:
        if self.ramp_days < 1:
            raise ValueError(f"ramp_days must be >= 1, got {self.ramp_days}")

    def share(self, ts_ms: int) -> float:
        """The share of order-manager's requests the new version serves at `ts_ms`."""
        if ts_ms < self.start_ms:
            return 0.0
        day = (ts_ms - self.start_ms) // DAY_MS
        return min(1.0, (day + 1) / self.ramp_days)

    def serves(self, session_id: str, start_ms: int) -> bool:
        """Whether the new version handles this order-manager session."""
        share = self.share(start_ms)
        return share >= 1.0 or (share > 0.0 and _unit(session_id) < share)


def _unit(session_id: str) -> float:
    """A stable number in [0, 1) for a session id."""
    return zlib.crc32(session_id.encode()) / 2**32


def new_version(steps: Sequence[Step], fields: dict[str, Any]) -> list[Step]:
    """The steps as the new version logs them (unchanged where it logs as the old one)."""
    out: list[Step] = []
    creating = False
    for event_id, service, step_fields, delay in steps:
        new_id = RENAMED.get(event_id, event_id)
        creating = creating or new_id == "order.checkout.start"
        out.append((new_id, service, step_fields, delay))
        if creating and event_id == "db.tx.commit":
            out.append(("manager.cache.put", service, {"key": f"order:{fields['oid']}"}, 1))
            creating = False
    return out
