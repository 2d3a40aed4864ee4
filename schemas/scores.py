"""`Score` (one per window, on the scores topic) and `Alert` (anomalous windows only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas import _fields as f
from schemas.errors import DecodeError
from schemas.windows import Window

RULE_REASONS: dict[str, str] = {
    "unseen_event": "an event the model never trained on",
    "past_count_ceiling": "more of this event than the training windows held",
    "unseen_end": "no training session ended right after this event",
}
"""Why a rule, not the model, set an event's surprise (the strategy's `unk_nll`): the record's
`reason`, and the words an alert shows for it."""


@dataclass(frozen=True, slots=True)
class Expected:
    event_id: str
    prob: float


@dataclass(frozen=True, slots=True)
class SurprisingEvent:
    """One of the window's most surprising events, and what the model expected there."""

    position: int
    """Index of the event within the window's events (0-based, excluding [CLS])."""
    event_id: str
    nll: float
    expected: tuple[Expected, ...]
    template: str | None = None
    """The template's text when the model's bundle does not know it (a log line unlike any
    it was trained with, mined into a new template): render it as "new log template: ..."."""
    reason: str | None = None
    """A key of `RULE_REASONS` when a rule set `nll` (training cannot vouch for the event, so
    what the model expected there explains less); None: the model's NLL."""

    @property
    def reason_text(self) -> str | None:
        """The rule's words for a reader (`RULE_REASONS`); None when the model set the NLL, or
        when a new template already says the model never saw the event."""
        if self.reason is None or (self.reason == "unseen_event" and self.template is not None):
            return None
        return RULE_REASONS[self.reason]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "position": self.position,
            "event_id": self.event_id,
            "nll": self.nll,
            "expected": [{"event_id": e.event_id, "prob": e.prob} for e in self.expected],
        }
        if self.template is not None:
            d["template"] = self.template
        if self.reason is not None:
            d["reason"] = self.reason
        return d

    @classmethod
    def from_dict(cls, obj: Any, name: str) -> SurprisingEvent:
        if not isinstance(obj, dict):
            raise DecodeError("must be an object", name)
        exp = obj.get("expected", [])
        if not isinstance(exp, list):
            raise DecodeError("must be a list", f"{name}.expected")
        expected = []
        for i, e in enumerate(exp):
            en = f"{name}.expected[{i}]"
            if not isinstance(e, dict):
                raise DecodeError("must be an object", en)
            expected.append(
                Expected(
                    f.ident(f.req(e, "event_id"), en + ".event_id"),
                    f.number(f.req(e, "prob"), en + ".prob"),
                )
            )
        return cls(
            position=f.integer(f.req(obj, "position"), name + ".position", 0),
            event_id=f.ident(f.req(obj, "event_id"), name + ".event_id"),
            nll=f.number(f.req(obj, "nll"), name + ".nll"),
            expected=tuple(expected),
            template=f.opt_text(obj.get("template"), name + ".template"),
            reason=_reason(obj.get("reason"), name + ".reason"),
        )


def _reason(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in RULE_REASONS:
        raise DecodeError(f"must be one of {', '.join(RULE_REASONS)}", name)
    return value


def alert_pattern(surprising: Sequence[SurprisingEvent], threshold: float) -> tuple[str, ...]:
    """What makes alerts one incident: the distinct ids of the surprising events over the
    threshold, sorted (the events that made it an alert; the rest of the top events vary
    between sessions). With none over it, the most surprising one."""
    over = {s.event_id for s in surprising if s.nll > threshold}
    if not over and surprising:
        over = {max(surprising, key=lambda s: s.nll).event_id}
    return tuple(sorted(over))


@dataclass(frozen=True, slots=True)
class Score:
    window_id: str
    session_id: str
    window_index: int
    model_version: str
    score: float
    threshold: float
    anomalous: bool
    n_events: int
    first_ts: int
    last_ts: int
    scored_at: int
    """Wall-clock epoch ms when the score was computed."""
    surprising: tuple[SurprisingEvent, ...] = ()
    late: bool = False
    label: int | None = None

    @classmethod
    def for_window(
        cls,
        window: Window,
        *,
        model_version: str,
        score: float,
        threshold: float,
        surprising: tuple[SurprisingEvent, ...],
        scored_at: int,
    ) -> Score:
        """The Score of `window`: what identifies the window (ids, times, late, label) is
        copied from it, the verdict is `score > threshold`."""
        return cls(
            window_id=window.window_id,
            session_id=window.session_id,
            window_index=window.index,
            model_version=model_version,
            score=score,
            threshold=threshold,
            anomalous=score > threshold,
            n_events=len(window.events),
            first_ts=window.first_ts,
            last_ts=window.last_ts,
            scored_at=scored_at,
            surprising=surprising,
            late=window.late,
            label=window.label,
        )

    @property
    def pattern(self) -> tuple[str, ...]:
        """See `alert_pattern`."""
        return alert_pattern(self.surprising, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "window_id": self.window_id,
            "session_id": self.session_id,
            "window_index": self.window_index,
            "model_version": self.model_version,
            "score": self.score,
            "threshold": self.threshold,
            "anomalous": self.anomalous,
            "n_events": self.n_events,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "scored_at": self.scored_at,
            "surprising": [s.to_dict() for s in self.surprising],
            "late": self.late,
        }
        if self.label is not None:
            d["label"] = self.label
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @staticmethod
    def _common(obj: dict[str, Any]) -> dict[str, Any]:
        surprising = obj.get("surprising", [])
        if not isinstance(surprising, list):
            raise DecodeError("must be a list", "surprising")
        label = obj.get("label")
        if label is not None and (isinstance(label, bool) or label not in (0, 1)):
            raise DecodeError(f"must be 0 or 1, got {label!r}", "label")
        return {
            "window_id": f.ident(f.req(obj, "window_id"), "window_id"),
            "session_id": f.ident(f.req(obj, "session_id"), "session_id"),
            "window_index": f.integer(f.req(obj, "window_index"), "window_index", 0),
            "model_version": f.ident(f.req(obj, "model_version"), "model_version"),
            "score": f.number(f.req(obj, "score"), "score"),
            "threshold": f.number(f.req(obj, "threshold"), "threshold"),
            "anomalous": f.boolean(f.req(obj, "anomalous"), "anomalous"),
            "n_events": f.integer(f.req(obj, "n_events"), "n_events", 0),
            "first_ts": f.timestamp_ms(f.req(obj, "first_ts"), "first_ts"),
            "last_ts": f.timestamp_ms(f.req(obj, "last_ts"), "last_ts"),
            "scored_at": f.timestamp_ms(f.req(obj, "scored_at"), "scored_at"),
            "surprising": tuple(
                SurprisingEvent.from_dict(s, f"surprising[{i}]") for i, s in enumerate(surprising)
            ),
            "late": f.boolean(obj.get("late", False), "late"),
            "label": label,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Score:
        return cls(**cls._common(obj))

    @classmethod
    def decode(cls, data: bytes | str) -> Score:
        return cls.from_dict(f.load_object(data, "score"))


@dataclass(frozen=True, slots=True)
class Alert:
    """An anomalous window: its score, its events, and the surprising ones explained."""

    window_id: str
    session_id: str
    window_index: int
    model_version: str
    score: float
    threshold: float
    anomalous: bool
    n_events: int
    first_ts: int
    last_ts: int
    scored_at: int
    surprising: tuple[SurprisingEvent, ...]
    late: bool
    label: int | None
    events: tuple[str, ...]

    @classmethod
    def from_score(cls, score: Score, events: tuple[str, ...]) -> Alert:
        return cls(
            score.window_id,
            score.session_id,
            score.window_index,
            score.model_version,
            score.score,
            score.threshold,
            score.anomalous,
            score.n_events,
            score.first_ts,
            score.last_ts,
            score.scored_at,
            score.surprising,
            score.late,
            score.label,
            events,
        )

    @property
    def pattern(self) -> tuple[str, ...]:
        """See `alert_pattern`."""
        return alert_pattern(self.surprising, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        d = Score.to_dict(self)  # type: ignore[arg-type]  # same leading fields
        d["events"] = list(self.events)
        return d

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Alert:
        return cls(**Score._common(obj), events=f.id_list(f.req(obj, "events"), "events"))

    @classmethod
    def decode(cls, data: bytes | str) -> Alert:
        return cls.from_dict(f.load_object(data, "alert"))
