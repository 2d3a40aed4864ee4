"""The sweep's bookkeeping: run specs, the per-configuration summary and its table."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench.quality_sweep import DEFAULT_ROW, RunSpec, parse_run, summarize, table


def _result(preset: str, seed: int, f1: float | None) -> dict[str, Any]:
    r: dict[str, Any] = {"preset": preset, "lr": 1e-3, "epochs": 60, "seed": seed}
    if f1 is None:
        r["error"] = "RuntimeError: boom"
    else:
        r["rows"] = [{"name": "full k=6 max", "f1": 0.5}, {"name": DEFAULT_ROW, "f1": f1}]
        r["val_loss"] = 0.1
    return r


def test_parse_run() -> None:
    assert parse_run("small:1e-3") == ("small", 1e-3)
    for bad in ("small", "small:fast"):
        with pytest.raises(argparse.ArgumentTypeError, match="PRESET:LR"):
            parse_run(bad)


def test_slug_names_every_field() -> None:
    assert RunSpec("base", 2e-4, 3, 60).slug == "base-lr0.0002-e60-s3"


def test_summary_takes_the_default_strategy_per_seed() -> None:
    results = [_result("tiny", 1, 0.9), _result("tiny", 0, 0.7), _result("small", 0, 0.95)]
    by_preset = {s["preset"]: s for s in summarize(results)}
    tiny = by_preset["tiny"]
    assert list(tiny["f1_by_seed"].items()) == [(0, 0.7), (1, 0.9)]
    assert tiny["f1_mean"] == pytest.approx(0.8)
    assert tiny["f1_min"] == 0.7
    assert by_preset["small"]["f1_by_seed"] == {0: 0.95}


def test_a_failed_run_is_shown_not_averaged() -> None:
    (s,) = summarize([_result("base", 0, None), _result("base", 1, 0.6)])
    assert s["f1_by_seed"] == {0: None, 1: 0.6}
    assert s["f1_mean"] == 0.6
    assert "0:fail 1:0.6000" in table([s])


def test_default_row_is_the_trainers_default_strategy() -> None:
    from bench.strategies import VARIANTS
    from trainer.scoring.strategy import DEFAULT_STRATEGY

    [row] = [v for v in VARIANTS if v.name == DEFAULT_ROW]
    assert row.strategy.served == DEFAULT_STRATEGY
