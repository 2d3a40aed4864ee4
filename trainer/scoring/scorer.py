"""`WindowScorer`: a loaded model bundle that turns `Window` records into `Score` records.

It scores with the strategy the bundle was calibrated with (calibration.json), against the
bundle's threshold. When the bundle's vocab holds the session-end marker, it appends the
marker to the windows trainer/end_marker.py's rule marks, as the trainer did; an
explanation at position n_events is that marker ("the session ended here"). A time-aware
bundle (its manifest's `time_buckets`) gets each window's gaps as token types
(trainer/time_gaps.py); a time-blind one never looks at them. It serializes
callers with a lock: the stream calls it from one worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
import structlog
import torch
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, VOCAB, Calibration, verify_bundle
from schemas.errors import BundleError, DecodeError
from schemas.runtime.secret import Secret
from schemas.scores import Expected, Score, SurprisingEvent
from schemas.vocab import Vocab
from schemas.windows import Window
from trainer.end_marker import END_EVENT, encode_window, uses_end_marker
from trainer.known_mixes import KnownMixes
from trainer.model import device_for, load_model, time_buckets_of
from trainer.scoring.rules import missing_lookup
from trainer.scoring.score import WindowResult, score_token_windows
from trainer.scoring.strategy import ScoringStrategy
from trainer.time_gaps import window_buckets

log = structlog.get_logger(__name__)


class WindowScorer:
    """A loaded model bundle that scores windows. One caller at a time (a lock enforces it)."""

    def __init__(
        self,
        model: BertForMaskedLM,
        vocab: Vocab,
        strategy: ScoringStrategy,
        threshold: float,
        model_version: str,
        device: torch.device,
        *,
        max_batch_tokens: int = 32768,
        known: KnownMixes | None = None,
        explain_known_mixes: bool = False,
        time_buckets: int = 0,
    ) -> None:
        if time_buckets_of(model) != time_buckets:
            raise BundleError(
                f"{model_version}: the manifest says {time_buckets} time buckets, the model "
                f"has {model.config.type_vocab_size} token types"
            )
        if int(model.config.vocab_size) != len(vocab):
            raise BundleError(
                f"model vocab size {model.config.vocab_size} != vocab.json size {len(vocab)}"
            )
        if why := missing_lookup(strategy, known):
            raise BundleError(f"{model_version}: {why} (retrain, or pick another strategy)")
        # Module.to moves in place; BertForMaskedLM's own `to` wrapper is untyped.
        torch.nn.Module.to(model, device)
        model.train(False)
        self.model = model
        self.vocab = vocab
        self.strategy = strategy
        self.threshold = float(threshold)
        self.model_version = model_version
        self.device = device
        self.max_batch_tokens = max_batch_tokens
        self.end_marker = uses_end_marker(vocab)
        self.known = known
        self.explain_known_mixes = explain_known_mixes
        """Run the model on windows the known-mix rule scores 0, for their surprising
        events; off, they get no forward pass and no explanation."""
        self.time_buckets = time_buckets
        """The bundle's time buckets: 0, a time-blind model (gaps are not looked at)."""
        self._lock = threading.Lock()

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: Path,
        device: str = "auto",
        *,
        max_batch_tokens: int = 32768,
        explain_known_mixes: bool = False,
        bundle_key: Secret | None = None,
    ) -> WindowScorer:
        """Verify the bundle's hashes (and with a key its signature), then load it. Scores
        with the strategy it was calibrated with (calibration.json's `strategy`)."""
        manifest = verify_bundle(bundle_dir, bundle_key)
        try:
            vocab = Vocab.load(bundle_dir / VOCAB)
        except DecodeError as e:
            raise BundleError(f"bundle {manifest.version}: bad {VOCAB}: {e}") from None
        calibration = Calibration.from_json((bundle_dir / CALIBRATION).read_bytes())
        if not calibration.strategy:
            raise BundleError(
                f"bundle {manifest.version}: {CALIBRATION} records no scoring strategy"
            )
        try:
            strategy = ScoringStrategy.from_dict(calibration.strategy)
        except (ValueError, TypeError) as e:
            raise BundleError(f"bundle {manifest.version}: bad scoring strategy: {e}") from None
        dev = device_for(device)
        model = load_model(bundle_dir, dev)
        log.info(
            "scorer_loaded",
            model_version=manifest.version,
            device=str(dev),
            vocab_size=len(vocab),
            threshold=calibration.threshold,
            groups=strategy.groups,
            end_marker=END_EVENT in vocab,
            time_buckets=manifest.time_buckets,
        )
        return cls(
            model,
            vocab,
            strategy,
            calibration.threshold,
            manifest.version,
            dev,
            max_batch_tokens=max_batch_tokens,
            known=KnownMixes.of(
                calibration.known_mixes,
                calibration.known_pairs,
                calibration.count_ceilings,
                vocab.id_of(END_EVENT) if END_EVENT in vocab else None,
            ),
            explain_known_mixes=explain_known_mixes,
            time_buckets=manifest.time_buckets,
        )

    def score_events(
        self,
        sequences: Sequence[Sequence[str]],
        ended: Sequence[bool] | None = None,
        gaps: Sequence[Sequence[int] | None] | None = None,
    ) -> list[WindowResult]:
        """Score windows given as event-id sequences (each at most 510 events), marked as
        the bundle was trained (see the module doc). `ended[i]` False: window i was cut
        while its session may go on, so it gets no end marker (default: all ended).
        `gaps[i]`: window i's `gaps_ms` (None: unknown), seen by a time-aware bundle only."""
        flags = [True] * len(sequences) if ended is None else ended
        token_windows = [
            encode_window(self.vocab, seq, self.end_marker, e)
            for seq, e in zip(sequences, flags, strict=True)
        ]
        types: list[npt.NDArray[np.int64]] | None = None
        if self.time_buckets:
            per_window = [None] * len(sequences) if gaps is None else gaps
            types = [
                window_buckets(g, len(ids), self.time_buckets)
                for g, ids in zip(per_window, token_windows, strict=True)
            ]
        with self._lock:
            return score_token_windows(
                self.model,
                token_windows,
                self.strategy,
                self.device,
                max_batch_tokens=self.max_batch_tokens,
                known=self.known,
                explain_known_mixes=self.explain_known_mixes,
                token_types=cast(Sequence[Sequence[int]] | None, types),
            )

    def use_threads(self, n: int) -> None:
        """Score with `n` CPU threads from now on. Call it from the thread that scores:
        torch keeps the count per calling thread (and as the default for new ones)."""
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        """One Score per window, in order; `now_ms` is the wall clock stamped as scored_at."""
        results = self.score_events(
            [w.events for w in windows], [w.ended for w in windows], [w.gaps_ms for w in windows]
        )
        return [self._to_score(w, r, now_ms) for w, r in zip(windows, results, strict=True)]

    def _to_score(self, window: Window, result: WindowResult, now_ms: int) -> Score:
        surprising = tuple(
            SurprisingEvent(
                position=s.position,
                # The window's own id, which for an [UNK] event says what it was.
                event_id=(
                    window.events[s.position] if s.position < len(window.events) else END_EVENT
                ),
                nll=s.nll,
                expected=tuple(Expected(self.vocab.token(t), p) for t, p in s.expected),
                reason=s.reason,
            )
            for s in result.surprising
        )
        return Score.for_window(
            window,
            model_version=self.model_version,
            score=result.score,
            threshold=self.threshold,
            surprising=surprising,
            scored_at=now_ms,
        )
