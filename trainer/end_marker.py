"""The session-end marker: an event appended after a session's last event, and the one rule
that says when.

A masked language model predicts each event from the events around it, so a session that
simply stops early (HDFS's two-event `E5 E22` blocks, 17% of its anomalies) holds nothing
it finds surprising. With an explicit end event the model learns where sessions end, and
an end after `E5 E22` is as surprising as any out-of-place event: every scoring strategy
sees it with no change.

The rule, used by the trainer's tokenization (trainer/token_cache.py) and by the scorer
(trainer/scoring/scorer.py `WindowScorer`, which the stream, replay and `logad evaluate` all go
through): a window's events get the marker appended iff the window has fewer than
MAX_EVENTS events and ended its session. A window of exactly MAX_EVENTS events was (almost
always) cut from a longer session, and with the marker it would not fit the model anyway, so
it gets none. A session file holds whole sessions; the stream's sessionizer says which
windows ended theirs (`Window.ended`: closed by the gap or an idle flush, not cut by the
duration limit, the open-session bound, a revoke or a shutdown).

The marker is an ordinary event id, so the vocab needs nothing special: a model trained
with `end_marker` has it in its vocab, and the scorer marks windows exactly when the
bundle's vocab holds it.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.vocab import SPECIALS, Vocab
from schemas.windows import MAX_EVENTS

END_EVENT = "<end>"
"""Not a special token on purpose: the model must predict it like any event."""

assert END_EVENT not in SPECIALS


def marks(n_events: int, ended: bool = True) -> bool:
    """Whether a window of `n_events` events gets the marker (the rule above); `ended`
    False: it was cut while its session may go on."""
    return ended and n_events < MAX_EVENTS


def with_end(events: Sequence[str]) -> tuple[str, ...]:
    """The window's events, with the marker appended when the rule says so."""
    return (*events, END_EVENT) if marks(len(events)) else tuple(events)


def uses_end_marker(vocab: Vocab) -> bool:
    """A bundle trained with the marker has it in its vocab."""
    return END_EVENT in vocab


def encode_window(
    vocab: Vocab, events: Sequence[str], end_marker: bool, ended: bool = True
) -> list[int]:
    """A window's events as the model's token ids (no [CLS]/[SEP]), marked when
    `end_marker` and the rule say so."""
    ids = vocab.encode(events)
    if end_marker and marks(len(ids), ended):
        ids.append(vocab.id_of(END_EVENT))
    return ids
