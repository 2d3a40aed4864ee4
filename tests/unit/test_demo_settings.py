"""`logad demo` composes simulate's and train's sections with its own defaults, and runs
`logad train` with exactly those."""

from __future__ import annotations

from pathlib import Path

from stream.cli import build_parser
from stream.devtools.demo import DemoSettings, train_argv


def _settings(*argv: str) -> DemoSettings:
    args = build_parser().parse_args(["demo", *argv])
    settings: DemoSettings = args.build(args)
    return settings


def test_the_demo_keeps_its_defaults_and_flags() -> None:
    s = _settings()
    assert (s.daily.days, s.daily.sessions_per_day, s.live.rate) == (3, 2_000, 4_000.0)
    assert (s.traffic.anomaly_rate, s.traffic.seed) == (0.05, 7)
    assert (s.training.preset, s.training.epochs, s.training.lr) == ("small", 9, 1e-3)
    s = _settings("--days", "1", "--rate", "10", "--seed", "3", "--preset", "tiny")
    assert (s.daily.days, s.live.rate, s.traffic.seed, s.training.preset) == (1, 10.0, 3, "tiny")


def test_the_demo_trains_with_its_own_training_settings(tmp_path: Path) -> None:
    s = _settings("--epochs", "2", "--seed", "5")
    argv = train_argv(s, tmp_path / "days", tmp_path / "model")
    args = build_parser().parse_args(argv)
    assert args.log_level == "warning" and args.data == [tmp_path / "days"]
    trained = args.build(args)
    assert (trained.preset, trained.epochs, trained.seed) == ("small", 2, 5)
    assert (trained.lr, trained.tokens_per_batch, trained.warmup_steps) == (1e-3, 1024, 10)
