"""The registry an operator works with, under a live `logad serve` on a real broker: a
candidate the retrain gate refused is kept and promoted by hand, then two plain rollbacks
walk back through the promotion history (never back to the version just left), and serve
hot-reloads each move."""

from __future__ import annotations

import asyncio
import functools
from datetime import date
from pathlib import Path

import orjson
import pytest
from serve_support import (
    DAY_MS,
    MakeTopics,
    Topics,
    copy_bundle,
    covers,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    traffic,
)

from schemas.bundle import verify_bundle
from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.registry import read_pointer
from schemas.sessions import Session
from stream.cli import main
from stream.jobs.retrain import RetrainSettings
from stream.jobs.retrain_gate import DayPlan, Figures, figures


async def _cli(argv: list[str]) -> int:
    """`logad ARGV` in a thread, so the serve in this event loop keeps polling meanwhile."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(main, argv))


class Prober:
    """Sends one short session at a time until one is scored by the version asked for."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap, self.topics, self.n = bootstrap, topics, 0

    async def until(self, version: str) -> None:
        for _ in range(20):
            self.n += 1
            probe = traffic(1, 0.0, seed=500 + self.n, start_ms=DAY_MS + self.n * 60_000)
            await produce(self.bootstrap, self.topics.input, messages(probe))
            sid = probe[0].session_id
            records = await read_topic(self.bootstrap, self.topics.scores, covers({sid}), 30)
            if any(s.model_version == version for s in scores_of(records) if s.session_id == sid):
                return
        raise AssertionError(f"serve never switched to {version}")


def _archive(root: Path) -> Path:
    root.mkdir()
    for d in (1, 2):
        path = root / daily_file_name(date(2026, 11, d))
        write_sessions(path, [Session(f"s{d}-{i}", ("a", "b")) for i in range(5)])
        path.with_name(path.name + DONE_SUFFIX).touch()
    return root


def _models(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    rows = {}
    for line in capsys.readouterr().out.splitlines()[1:]:
        words = line.split()
        rows[words[1] if words[0] in ("*", "-") else words[0]] = line
    return rows


@pytest.mark.slow
@pytest.mark.integration
async def test_refused_candidate_kept_promoted_by_hand_then_rolled_back_two_steps(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = await serve_topics(1)
    registry = tmp_path / "registry"
    v1, v2, v3, v4 = (f"v2026110{i}T000000Z-byhand" for i in (1, 2, 3, 4))
    for v in (v1, v2, v3):
        staged = copy_bundle(bundle, tmp_path / "staged" / v, v)
        assert await _cli(["promote", str(staged), "--registry", str(registry)]) == 0

    # The candidate is the same tiny model under v4; the gate is told it alerts more.
    def train(s: RetrainSettings, plan: DayPlan, out: Path, init_from: Path | None) -> None:
        copy_bundle(bundle, out, v4)

    def evaluate(path: Path, held: object, s: RetrainSettings, key: object = None) -> Figures:
        version = verify_bundle(path).version
        return figures(version, 1.0, [2.0 if version == v4 else 0.0], [None], [False])

    monkeypatch.setattr("stream.jobs.retrain._train_candidate", train)
    monkeypatch.setattr("stream.jobs.retrain.evaluate_bundle", evaluate)
    archive = _archive(tmp_path / "archive")
    prober = Prober(kafka_bootstrap, topics)
    settings = settings_for(kafka_bootstrap, topics, registry)

    async with serving(settings):
        await prober.until(v3)
        retrain = ["retrain", "--archive-dir", str(archive), "--registry", str(registry)]
        # Five-session days: the minimums are lowered so that they count.
        retrain += ["--min-sessions", "1", "--min-holdout-windows", "1"]
        assert await _cli([*retrain, "--device", "cpu"]) == 0
        record = orjson.loads(sorted((registry / "decisions").glob("*.json"))[-1].read_bytes())
        # The archived day carries no labels: the record says so, F1 is not compared.
        assert record["action"] == "refused" and record["labelled"] is False
        assert [(c["name"], c["passed"]) for c in record["criteria"]] == [
            ("false_alert_rate", False),
            ("alerted_kept", None),
            ("val_loss", None),
            ("f1", None),
        ]
        assert read_pointer(registry).version == v3 and (registry / v4).is_dir()  # kept
        await prober.until(v3)
        capsys.readouterr()
        assert await _cli(["models", "--registry", str(registry)]) == 0
        rows = _models(capsys)
        assert rows[v3].startswith("*") and "refused" in rows[v4]

        # By hand, past the gate: a reason is needed and recorded.
        assert await _cli(["promote", v4, "--registry", str(registry)]) == 2
        why = ["--reason", "the spike was a planned load test"]
        assert await _cli(["promote", v4, "--registry", str(registry), *why]) == 0
        await prober.until(v4)

        # Two plain rollbacks: v4 -> v3 -> v2, never back to v4.
        assert await _cli(["rollback", "--registry", str(registry), "--reason", "noisy"]) == 0
        assert read_pointer(registry).version == v3
        await prober.until(v3)
        assert await _cli(["rollback", "--registry", str(registry)]) == 0
        assert read_pointer(registry).version == v2
        await prober.until(v2)

    decisions = [
        orjson.loads(p.read_bytes()) for p in sorted((registry / "decisions").glob("*.json"))
    ]
    hand = [(d["action"], d["version"], d["by_hand"]) for d in decisions[1:]]
    assert hand == [("promoted", v4, True), ("rolled_back", v3, True), ("rolled_back", v2, True)]
    assert decisions[1]["reason"] == "the spike was a planned load test"
    capsys.readouterr()
    assert await _cli(["models", "--registry", str(registry)]) == 0
    rows = _models(capsys)
    assert rows[v2].startswith("*") and rows[v1].startswith("-")  # the next rollback: v1
    assert "rolled-back" in rows[v4] and "rolled-back" in rows[v3]
    assert "noisy" in rows[v4]
