"""The session-end marker: an event appended after a session's last event.

A masked language model predicts each event from the events around it, so a session that
simply stops early (HDFS's two-event `E5 E22` blocks, 17% of its anomalies) holds nothing
it finds surprising. With an explicit end event the model learns where sessions end, and
an end after `E5 E22` is as surprising as any out-of-place event: every scoring strategy
sees it with no change.

The marker is an ordinary event id, so the vocab, the trainer and the scorer need nothing
special: a model trained on marked sessions has it in its vocab, and evaluation marks the
sessions it scores exactly when the bundle's vocab holds it. It is appended once per
session, before the 510-event split, so it lands in the session's last window only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from schemas.daily_files import read_sessions, write_sessions
from schemas.sessions import Session
from schemas.vocab import SPECIALS, Vocab

END_EVENT = "<end>"
"""Not a special token on purpose: the model must predict it like any event."""

assert END_EVENT not in SPECIALS


def with_end(events: Sequence[str]) -> tuple[str, ...]:
    return (*events, END_EVENT)


def uses_end_marker(vocab: Vocab) -> bool:
    """A bundle trained on marked sessions has the marker in its vocab."""
    return END_EVENT in vocab


def marked(sessions: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    return [with_end(s) for s in sessions]


def write_marked_sessions(src: Path, dst: Path) -> int:
    """Copy a session file with the marker appended to every session (for training)."""

    def gen() -> Iterator[Session]:
        for s in read_sessions(src):
            yield replace(s, events=with_end(s.events))

    dst.parent.mkdir(parents=True, exist_ok=True)
    return write_sessions(dst, gen())
