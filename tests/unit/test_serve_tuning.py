"""serve's process tuning: the model's thread count and the GC settings it runs under."""

from __future__ import annotations

import gc
import os

from stream.serve.service import model_threads, model_threads_idle
from trainer.gc_tuning import GC_THRESHOLD_0, restore_gc, tune_gc, tuned_gc


def test_model_threads_leave_a_core_to_the_consume_loop() -> None:
    assert model_threads(3) == 3
    assert model_threads(0) == max(1, len(os.sched_getaffinity(0)) - 1)
    assert model_threads(0) >= 1


def test_an_idle_loop_leaves_every_core_to_the_model() -> None:
    cores = len(os.sched_getaffinity(0))
    assert model_threads_idle(0, 1) == cores
    assert model_threads_idle(3, 1) == 3
    assert model_threads_idle(1, 4) == 4  # never fewer than while the loop is busy


def test_tune_gc_freezes_what_is_loaded_and_restore_undoes_it() -> None:
    before = gc.get_threshold()
    old = tune_gc()
    try:
        assert old == before
        assert gc.get_threshold() == (GC_THRESHOLD_0, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        restore_gc(old)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_tuned_gc_restores_even_when_the_block_fails() -> None:
    before = gc.get_threshold()
    try:
        with tuned_gc():
            assert gc.get_threshold()[0] == GC_THRESHOLD_0 and gc.get_freeze_count() > 0
            raise RuntimeError("scoring failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
