"""An exact memo of the model's output per window content, for the scoring worker.

Log sessions repeat: the same request path yields the same event sequence again and
again. A window's score, its threshold verdict and its surprising events depend only on
the model and the window's events (the passes mask by position), so the output computed
once is reused, exactly, for every later window with the same events under the same model
version. What belongs to the window itself (ids, times, index, label, late) and the
scoring time always come from the window being scored, never from the cache.

The key is (model_version, events, ended): the raw event ids, not their token ids, so two
windows that differ only in which unknown event they hold do not share an entry (the
explanation names the window's own event); `ended` decides the session-end marker. A
time-aware model (its scorer's `time_buckets` > 0) also sees each event's gap bucket, so
its key holds the window's buckets (trainer/time_gaps.py) too: the same events at another
pace are another entry, while gaps that fall in the same buckets share one. Bounded
(LRU); cleared when the model changes. Thread-safe: the worker's scoring threads (one per
model process) share it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas.scores import Score, SurprisingEvent
from schemas.windows import Window
from trainer.time_gaps import window_buckets


class _Scorer(Protocol):
    @property
    def model_version(self) -> str: ...

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]: ...


@dataclass(frozen=True, slots=True)
class ModelOutput:
    """The part of a Score that only the model and the window's events determine."""

    score: float
    threshold: float
    surprising: tuple[SurprisingEvent, ...]

    @classmethod
    def of(cls, s: Score) -> ModelOutput:
        return cls(s.score, s.threshold, s.surprising)

    def for_window(self, w: Window, model_version: str, now_ms: int) -> Score:
        return Score.for_window(
            w,
            model_version=model_version,
            score=self.score,
            threshold=self.threshold,
            surprising=self.surprising,
            scored_at=now_ms,
        )


Key = tuple[str, tuple[tuple[str, ...], bool, tuple[int, ...] | None]]
"""(model version, (events, ended, gap buckets: None for a time-blind model))."""


def _buckets(w: Window, time_buckets: int) -> tuple[int, ...] | None:
    if not time_buckets:
        return None
    return tuple(window_buckets(w.gaps_ms, len(w.events), time_buckets).tolist())


class ScoreCache:
    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._lru: OrderedDict[Key, ModelOutput] = OrderedDict()
        self._version: str | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else 0.0

    def score(self, scorer: _Scorer, windows: Sequence[Window], now_ms: int) -> list[Score]:
        """`scorer.score_windows(windows, now_ms)`, calling the model only for windows whose
        events it has not seen under this model version (each distinct one once). Calls
        from several threads may overlap: the model runs outside the cache's lock."""
        version = scorer.model_version
        # A scorer that does not say (a test's fake) is time-blind.
        n = int(getattr(scorer, "time_buckets", 0))
        keys: list[Key] = [(version, (w.events, w.ended, _buckets(w, n))) for w in windows]
        found: list[ModelOutput | None] = []
        todo: dict[Key, int] = {}  # key -> index in `unseen`
        unseen: list[Window] = []
        with self._lock:
            if version != self._version:
                self._lru.clear()  # the old model's outputs can never be asked for again
                self._version = version
            lru = self._lru
            for w, key in zip(windows, keys, strict=True):
                out = lru.get(key)
                if out is not None:
                    lru.move_to_end(key)
                    self.hits += 1
                elif key in todo:
                    self.hits += 1  # the same content twice in one batch: scored once
                else:
                    todo[key] = len(unseen)
                    unseen.append(w)
                    self.misses += 1
                found.append(out)
        scores: list[Score] = []
        if unseen:
            scores = scorer.score_windows(unseen, now_ms)
            if len(scores) != len(unseen):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(unseen)}")
            with self._lock:
                for key, i in todo.items():
                    self._lru[key] = ModelOutput.of(scores[i])
                while len(self._lru) > self.max_entries:
                    self._lru.popitem(last=False)
        result: list[Score] = []
        for w, key, out in zip(windows, keys, found, strict=True):
            if out is not None:
                result.append(out.for_window(w, version, now_ms))
                continue
            i = todo[key]
            # The window scored is returned as the model scored it; a repeat in the batch
            # takes its output.
            result.append(
                scores[i]
                if unseen[i] is w
                else ModelOutput.of(scores[i]).for_window(w, version, now_ms)
            )
        return result
