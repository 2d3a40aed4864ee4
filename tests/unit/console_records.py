"""Alerts and scores for the console's unit tests."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.scores import Alert, Expected, Score, SurprisingEvent

T0 = 1_800_000_000_000
"""A wall-clock ms the tests count from."""


def surprising(
    position: int, event_id: str, nll: float, template: str | None = None
) -> SurprisingEvent:
    return SurprisingEvent(
        position, event_id, nll, (Expected("E1", 0.9), Expected("E2", 0.05)), template
    )


def alert(
    session: str,
    at: int,
    odd: Sequence[tuple[int, str, float]],
    *,
    events: Sequence[str] = ("E0", "E1", "E2", "E3", "E4"),
    threshold: float = 8.0,
    window_index: int = 0,
) -> Alert:
    """An alert of `session` scored at T0 + `at` ms whose surprising events are `odd`
    (position, event id, nll); its score is their largest NLL."""
    s = tuple(surprising(p, e, n) for p, e, n in odd)
    score = Score(
        window_id=f"{session}/{window_index}",
        session_id=session,
        window_index=window_index,
        model_version="v1",
        score=max(n for _, _, n in odd),
        threshold=threshold,
        anomalous=True,
        n_events=len(events),
        first_ts=T0 + at - 1_000,
        last_ts=T0 + at - 10,
        scored_at=T0 + at,
        surprising=s,
    )
    return Alert.from_score(score, tuple(events))


def score(session: str, at: int, value: float, threshold: float = 8.0, index: int = 0) -> Score:
    return Score(
        window_id=f"{session}/{index}",
        session_id=session,
        window_index=index,
        model_version="v1",
        score=value,
        threshold=threshold,
        anomalous=value > threshold,
        n_events=3,
        first_ts=T0 + at - 100,
        last_ts=T0 + at - 10,
        scored_at=T0 + at,
    )
