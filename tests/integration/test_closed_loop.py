"""The closed loop without `serve`: archive -> retrain (gate) -> registry -> replay.

The archive is written here through `DailyArchive` from simulated, labelled windows, as
`logad serve --archive-dir` writes it (tests/integration/test_serve_archive.py covers that
path), which keeps this test to training and the gate.
"""

from __future__ import annotations

import argparse
import random
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from schemas.registry import list_bundles, read_pointer
from schemas.scores import Score
from schemas.windows import Window
from stream import cli_models, cli_replay, cli_retrain
from stream.archive import DAY_MS, DailyArchive
from stream.simulate import simulate_day

DAY1_MS = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
TINY = [
    "--preset",
    "tiny",
    "--lr",
    "3e-3",
    "--tokens-per-batch",
    "1024",
    "--cpu-threads",
    "1",
    "--device",
    "cpu",
]


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for m in (cli_retrain, cli_replay, cli_models):
        m.register(sub)
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


def _archive(archive: Path) -> None:
    with DailyArchive(archive, grace_ms=30_000) as a:
        for day in range(2):
            sims = simulate_day(random.Random(day), DAY1_MS + day * DAY_MS, 1000, 0.05)
            for s in sims:
                ev = s.events
                w = Window.build(
                    s.session_id,
                    0,
                    tuple(e.event_id for e in ev)[:510],
                    ev[0].ts,
                    ev[-1].ts,
                    0,
                    0,
                    len(ev),
                    label=s.label,
                )
                sc = Score(
                    w.window_id,
                    w.session_id,
                    0,
                    "none",
                    0.0,
                    1.0,
                    False,
                    len(w.events),
                    w.first_ts,
                    w.last_ts,
                    w.last_ts,
                )
                a.append(w, sc)
        a.mark_complete(DAY1_MS + 3 * DAY_MS)


def _decisions(registry: Path) -> list[dict[str, object]]:
    return [orjson.loads(p.read_bytes()) for p in sorted((registry / "decisions").glob("*.json"))]


@pytest.mark.slow
def test_retrain_promotes_then_rejects_a_worse_candidate_and_replay_is_stable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive, registry = tmp_path / "archive", tmp_path / "registry"
    _archive(archive)
    train_config = tmp_path / "train.toml"
    train_config.write_text(
        "val_fraction = 0.2\nthreshold_quantile = 0.99\nnum_workers = 0\nwarmup_steps = 10\n"
    )
    base = [
        "retrain",
        "--archive-dir",
        str(archive),
        "--registry",
        str(registry),
        "--last-days",
        "1",
        "--train-config",
        str(train_config),
        *TINY,
    ]
    # Trained enough to find the held-out day's anomalies (F1 well above 0).
    assert _main([*base, "--epochs", "40"]) == 0
    [first] = _decisions(registry)
    assert first["promoted"] and "first candidate" in str(first["reason"])
    assert first["train_days"] == ["2026-11-01"] and first["holdout_day"] == "2026-11-02"
    good = read_pointer(registry).version
    # A deliberately worse candidate: from scratch, barely trained.
    assert _main([*base, "--from-scratch", "--epochs", "1", "--lr", "1e-6"]) == 0
    second = _decisions(registry)[-1]
    assert not second["promoted"] and str(second["reason"]).startswith("rejected")
    assert second["current"]["version"] == good  # type: ignore[index]
    assert read_pointer(registry).version == good  # the registry did not move
    assert [b.version for b in list_bundles(registry)] == [good]
    assert not list(registry.glob(".retrain-*"))  # the candidate's temp dir is gone
    assert _main(["models", "--registry", str(registry)]) == 0
    assert f"* {good}" in capsys.readouterr().out.replace("  ", " ")
    # Replay of the same days with the same bundle, twice: identical bytes.
    outs = []
    for i in range(2):
        out = tmp_path / f"replay{i}.jsonl"
        assert (
            _main(
                [
                    "replay",
                    "--model",
                    str(registry),
                    "--days-dir",
                    str(archive),
                    "--from-date",
                    str(date(2026, 11, 1)),
                    "--out",
                    str(out),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 2000
