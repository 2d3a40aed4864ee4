"""Hot reload: watch a registry's `current` pointer and load the bundle it names.

The new bundle is loaded (and its sha256s verified) in a thread of its own, beside the one
serving, so neither the event loop nor scoring waits for it. Its template set comes with it,
for raw events (stream/serve/raw_events.py). A bundle that fails to load or verify is
refused with an error log and the old model keeps serving; the same pointer is not retried
until it changes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from schemas.bundle import read_bundle_templates
from schemas.errors import LogadError
from schemas.registry import read_pointer
from schemas.templates import TemplateSet
from stream.serve.metrics import ServeMetrics
from stream.serve.worker import Scorer

log = structlog.get_logger(__name__)

LoadScorer = Callable[[Path], Scorer]
Offer = Callable[[Scorer, TemplateSet | None], None]
"""Hands a loaded model and its template set (None: it has none) to the service."""


def load_window_scorer(
    device: str, threads: int = 0, explain_known_mixes: bool = False
) -> LoadScorer:
    """The production loader: trainer.scoring.WindowScorer (torch is imported only here)."""

    def load(bundle_dir: Path) -> Scorer:
        import torch

        from trainer.scoring.scorer import WindowScorer

        if threads:
            torch.set_num_threads(threads)
        return WindowScorer.from_bundle(
            bundle_dir, device=device, explain_known_mixes=explain_known_mixes
        )

    return load


class ModelWatcher:
    def __init__(
        self,
        registry: Path,
        serving_version: str,
        load: LoadScorer,
        offer: Offer,
        metrics: ServeMetrics,
        check_s: float,
    ) -> None:
        self._registry = registry
        self._current = serving_version
        """The pointer version last taken (loaded and offered to the worker)."""
        self._refused: tuple[str, str] | None = None
        self._load = load
        self._offer = offer
        self._metrics = metrics
        self._check_s = check_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logad-reload")

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._check_s)
                await self.check()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def check(self) -> bool:
        """Load and offer the pointer's bundle if it changed; True when a new one was offered."""
        loop = asyncio.get_running_loop()
        try:
            pointer = await loop.run_in_executor(self._executor, read_pointer, self._registry)
        except LogadError as e:
            log.error("model_pointer_unreadable", registry=str(self._registry), error=str(e))
            return False
        key = (pointer.version, pointer.updated_at)
        if pointer.version == self._current or key == self._refused:
            return False
        log.info("model_loading", old=self._current, new=pointer.version)
        try:
            scorer, templates = await loop.run_in_executor(
                self._executor, self._load_bundle, self._registry / pointer.version
            )
        except Exception as e:  # any failure to load keeps the old model serving
            log.error(
                "model_refused",
                version=pointer.version,
                serving=self._current,
                error=str(e),
                error_type=type(e).__name__,
            )
            self._refused = key
            self._metrics.model_refused.inc()
            return False
        self._current = pointer.version
        self._offer(scorer, templates)
        return True

    def _load_bundle(self, bundle_dir: Path) -> tuple[Scorer, TemplateSet | None]:
        templates = read_bundle_templates(bundle_dir)  # first: a bad one loads no model
        return self._load(bundle_dir), templates
