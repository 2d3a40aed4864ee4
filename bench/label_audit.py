"""Held-out "normal" traces that carry an incident's own error lines.

An incident is a fixed span from its injection (bench/quality_trainticket.py). A fault that
outlasts the span leaves traces after it that log the same errors as the traces inside it,
and those count as normal. This audit finds them from the data alone, without any detector:
for each ERROR-level template held by a held-out normal trace, the incidents whose traces
(in time and on the injected service) log it too, and how many training traces do.

A held-out trace listed here is one a detector flags whenever it flags that incident's
traces for that error. It reads the labels, never chooses a threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ERROR = "ERROR"


@dataclass(frozen=True)
class TraceLines:
    """One trace's lines in scoring order: template id, level and message of each."""

    events: Sequence[str]
    levels: Sequence[str | None]
    messages: Sequence[str]

    def error_templates(self) -> set[str]:
        return {e for e, lv in zip(self.events, self.levels, strict=True) if lv == ERROR}

    def example(self, template: str, chars: int = 200) -> str:
        for e, lv, m in zip(self.events, self.levels, self.messages, strict=True):
            if e == template and lv == ERROR:
                return m[:chars]
        raise KeyError(template)


def shared_error_templates(
    traces: Sequence[TraceLines],
    held_out: np.ndarray,
    training: Sequence[TraceLines],
    incident_traces: Mapping[str, Sequence[int]],
    alerted: np.ndarray,
    since_s: Sequence[float | None],
) -> dict[str, Any]:
    """Per ERROR template that some held-out trace and some incident's traces both log: the
    held-out traces with it (how many a detector `alerted` on, seconds since the latest
    injection on their service), the `training` traces with it, and the incidents with it.
    `incident_traces` maps an incident id to the indices of its traces in `traces`. The
    headline counts the held-out traces logging such a template that no training trace logs:
    whatever flags the incident's traces for that error flags them too."""
    errors = [t.error_templates() for t in traces]
    trained = [t.error_templates() for t in training]
    by_incident = {inc: {e for i in idx for e in errors[i]} for inc, idx in incident_traces.items()}
    shared = sorted(
        {e for i in np.flatnonzero(held_out) for e in errors[i]}
        & {e for es in by_incident.values() for e in es}
    )
    found = []
    carriers = np.zeros(len(traces), np.bool_)
    for e in shared:
        held = [int(i) for i in np.flatnonzero(held_out) if e in errors[i]]
        in_training = sum(e in t for t in trained)
        carriers[held] |= in_training == 0
        found.append(
            {
                "template": e,
                "example": traces[held[0]].example(e),
                "held_out_traces": len(held),
                "held_out_alerted": int(alerted[held].sum()),
                "seconds_since_injection": sorted(
                    round(x, 1) for i in held if (x := since_s[i]) is not None
                ),
                "training_traces": in_training,
                "incidents": [
                    {
                        "id": inc,
                        "traces_with_it": sum(e in errors[i] for i in idx),
                        "traces": len(idx),
                    }
                    for inc, idx in incident_traces.items()
                    if e in by_incident[inc]
                ],
            }
        )
    return {
        "held_out_traces": int(held_out.sum()),
        "held_out_traces_with_an_incident_error_unseen_in_training": int(carriers.sum()),
        "of_them_alerted": int((carriers & alerted).sum()),
        "held_out_alerted": int((held_out & alerted).sum()),
        "templates": found,
    }
