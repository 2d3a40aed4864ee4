"""Operator verdicts from the page's buttons ("mark normal", "confirm anomalous"): appended
to the feedback file `logad retrain` reads (schemas/feedback.py), and remembered to show
on the page. At start, the file's earlier verdicts are read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from schemas.feedback import Feedback, Verdict, append_feedback, read_feedback, session_verdicts

log = structlog.get_logger(__name__)

BY = "logad console"


def feedback_lines(
    sessions: Sequence[str], verdict: Verdict, note: str | None, now: datetime
) -> list[Feedback]:
    when = now.isoformat(timespec="seconds")
    return [Feedback(verdict, session_id=s, note=note, by=BY, time=when) for s in sessions]


class Verdicts:
    """The last verdict per session; `path` None: verdicts are refused (no file to keep
    them in, and retrain would never see them)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.by_session: dict[str, str] = {}
        if path is not None and path.exists():
            self.by_session = dict(session_verdicts(read_feedback(path)))

    async def record(
        self, sessions: Sequence[str], verdict: Verdict, note: str | None = None
    ) -> int:
        """Append one line per session (on a worker thread: it fsyncs); returns how many."""
        if self.path is None:
            raise RuntimeError("no feedback file")
        items = feedback_lines(sessions, verdict, note, datetime.now(UTC))
        await asyncio.get_running_loop().run_in_executor(None, append_feedback, self.path, items)
        for s in sessions:
            self.by_session[s] = verdict
        log.info("console_verdicts", verdict=verdict, sessions=len(sessions), path=str(self.path))
        return len(items)
