"""Hot reload: a promoted bundle takes over between batches; a bad one is refused."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import orjson
import pytest
from serve_support import (
    DAY_MS,
    MakeTopics,
    copy_bundle,
    covers,
    http_get,
    messages,
    produce,
    read_topic,
    scores_of,
    serving,
    settings_for,
    traffic,
)

from schemas.registry import read_pointer
from stream.cli import main
from stream.devtools import broker


async def _until_metric(port: int, line: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while line not in (await loop.run_in_executor(None, http_get, port, "/metrics"))[1]:
        assert loop.time() < deadline, f"never saw {line!r} in /metrics"
        await asyncio.sleep(0.2)


def model_processes(bundle_fragment: str) -> list[int]:
    """Pids of live model processes (stream/serve/model_process.py) whose bundle path holds
    `bundle_fragment`."""
    pids = []
    for d in Path("/proc").iterdir():
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0") if d.name.isdigit() else []
        except OSError:
            continue
        if b"stream.serve.model_process" in argv and any(
            bundle_fragment.encode() in a for a in argv
        ):
            pids.append(int(d.name))
    return pids


async def _until_gone(bundle_fragment: str, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s * 5)):
        if not model_processes(bundle_fragment):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"a model process for {bundle_fragment} is still running")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [0, 2], ids=["thread", "processes"])
async def test_hot_reload_switches_model_without_losing_windows(
    kafka_bootstrap: str,
    serve_topics: MakeTopics,
    bundle: Path,
    tmp_path: Path,
    processes: int,
) -> None:
    topics = await serve_topics(2)
    registry = tmp_path / "registry"
    assert main(["promote", str(bundle), "--registry", str(registry)]) == 0
    v1 = read_pointer(registry).version
    v2 = "v-reload-2"
    staged = copy_bundle(bundle, tmp_path / "staged", v2)
    hour = 3_600_000
    parts = [traffic(120, 0.1, seed=41 + i, start_ms=DAY_MS + i * hour) for i in range(3)]
    port = broker.free_port()
    settings = settings_for(
        kafka_bootstrap, topics, registry, metrics_port=port, model_processes=processes
    )

    async with serving(settings):
        await produce(kafka_bootstrap, topics.input, messages(parts[0]))
        ids0 = {s.session_id for s in parts[0]}
        await read_topic(kafka_bootstrap, topics.scores, covers(ids0), 60)

        assert main(["promote", str(staged), "--registry", str(registry)]) == 0
        await asyncio.sleep(2.0)  # the watcher polls every 0.2 s and loads beside the old
        await produce(kafka_bootstrap, topics.input, messages(parts[1]))
        ids1 = ids0 | {s.session_id for s in parts[1]}
        await read_topic(kafka_bootstrap, topics.scores, covers(ids1), 60)
        await _until_metric(port, f'logad_model_info{{version="{v2}"}} 1.0')
        if processes:  # the new model's processes serve; the old one's have stopped
            assert len(model_processes(str(registry / v2))) == processes
            await _until_gone(str(registry / v1))

        # A bundle that fails its sha256 check is refused; the serving model stays.
        bad = registry / "v-reload-3-bad"
        shutil.copytree(registry / v2, bad)
        (bad / "manifest.json").write_bytes(
            (bad / "manifest.json").read_bytes().replace(v2.encode(), bad.name.encode())
        )
        weights = bad / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
        pointer = {"version": bad.name, "previous": v2, "updated_at": "2026-11-28T00:00:00"}
        (registry / ".current.tmp").write_bytes(orjson.dumps(pointer))
        os.replace(registry / ".current.tmp", registry / "current")
        await _until_metric(port, "logad_model_refused_total 1.0")
        await produce(kafka_bootstrap, topics.input, messages(parts[2]))
        ids2 = ids1 | {s.session_id for s in parts[2]}
        records = await read_topic(kafka_bootstrap, topics.scores, covers(ids2), 60)
        loop = asyncio.get_running_loop()
        assert (await loop.run_in_executor(None, http_get, port, "/readyz"))[0] == 200

    await _until_gone(str(registry))  # serve stopped every model process it started
    scores = scores_of(records)  # one scores partition: in the order they were produced
    assert {s.session_id for s in scores} == ids2, "no window lost"
    assert len({s.window_id for s in scores}) == len(scores), "no window scored twice"
    versions = [s.model_version for s in scores]
    switch = versions.index(v2)
    assert set(versions[:switch]) == {v1} and set(versions[switch:]) == {v2}
    assert all(s.model_version == v1 for s in scores if s.session_id in ids0)
    assert all(s.model_version == v2 for s in scores if s.session_id in ids2 - ids1)
