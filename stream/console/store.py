"""The console's memory: the alerts and scores of the last N minutes, bounded by count too.

Entries are ordered by arrival; arrival follows `scored_at` closely (serve stamps it just
before producing), so the oldest are at the left and eviction pops from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from schemas.scores import Alert, Score


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """What the console keeps of a Score: enough for the distribution and a session's
    windows, not its explanations (alerts carry those)."""

    scored_at: int
    session_id: str
    window_index: int
    score: float
    threshold: float
    anomalous: bool
    model_version: str

    @classmethod
    def of(cls, s: Score) -> ScorePoint:
        return cls(
            s.scored_at,
            s.session_id,
            s.window_index,
            s.score,
            s.threshold,
            s.anomalous,
            s.model_version,
        )


class Store:
    """Alerts (deduplicated by window id: a restarted serve may publish one twice) and
    score points, each kept while younger than `window_ms` and within its count bound."""

    def __init__(self, window_ms: int, max_alerts: int, max_scores: int) -> None:
        self.window_ms = window_ms
        self._alerts: deque[Alert] = deque()
        self._alert_ids: set[str] = set()
        self._max_alerts = max_alerts
        self._scores: deque[ScorePoint] = deque(maxlen=max_scores)
        self.alerts_seen = 0
        self.scores_seen = 0
        self.undecodable = 0

    def add_alert(self, alert: Alert) -> bool:
        """Keep `alert`; False when its window is already kept."""
        if alert.window_id in self._alert_ids:
            return False
        if len(self._alerts) >= self._max_alerts:
            self._alert_ids.discard(self._alerts.popleft().window_id)
        self._alerts.append(alert)
        self._alert_ids.add(alert.window_id)
        self.alerts_seen += 1
        return True

    def add_score(self, score: Score) -> None:
        self._scores.append(ScorePoint.of(score))
        self.scores_seen += 1

    def evict(self, now_ms: int) -> None:
        """Drop what is older than the window."""
        cutoff = now_ms - self.window_ms
        while self._alerts and self._alerts[0].scored_at < cutoff:
            self._alert_ids.discard(self._alerts.popleft().window_id)
        while self._scores and self._scores[0].scored_at < cutoff:
            self._scores.popleft()

    def alerts(self) -> list[Alert]:
        """Oldest first."""
        return list(self._alerts)

    def scores(self) -> Iterator[ScorePoint]:
        """Oldest first."""
        return iter(self._scores)

    def session_alerts(self, session_id: str) -> list[Alert]:
        """The session's alerts in window order."""
        found = [a for a in self._alerts if a.session_id == session_id]
        return sorted(found, key=lambda a: (a.window_index, a.scored_at))

    def session_scores(self, session_id: str) -> list[ScorePoint]:
        """The session's scored windows in window order."""
        found = [p for p in self._scores if p.session_id == session_id]
        return sorted(found, key=lambda p: (p.window_index, p.scored_at))

    def __len__(self) -> int:
        return len(self._alerts)
