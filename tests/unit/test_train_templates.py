"""Templates travel with the model: `logad train` on days `logad parse` wrote puts their
templates.json into the bundle, and a warm start refuses a set that renumbers its parent's."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from schemas.bundle import (
    BUNDLE_FILES,
    TEMPLATES,
    read_bundle_templates,
    verify_bundle,
    write_manifest,
)
from schemas.errors import ConfigError, DataError
from schemas.scores import Score
from schemas.templates import TemplateSet, read_templates, write_templates
from stream.cli import main
from tests.raw_spring import NEVER_SEEN_TEMPLATE, interleaved, trace, traces
from tests.train_data import cli_flags
from trainer.bundle_templates import bundle_templates, find_templates
from trainer.mining import TemplateMiner

START_MS = int(datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp() * 1000)


def mined(*lines: str) -> TemplateSet:
    miner = TemplateMiner()
    for line in lines:
        miner.mine(line)
    return miner.to_set()


PARENT = mined("Routing GET /api/orders/42 to order-service", "Order 42 created")


def fake_bundle(d: Path, templates: TemplateSet | None) -> Path:
    d.mkdir(parents=True)
    for name in BUNDLE_FILES:
        (d / name).write_bytes(b"{}")
    if templates is not None:
        write_templates(d / TEMPLATES, templates)
    write_manifest(d, "v1", None, None)
    return d


def test_the_set_is_found_beside_the_data_or_named(tmp_path: Path) -> None:
    days, other = tmp_path / "days", tmp_path / "other"
    days.mkdir()
    other.mkdir()
    day = days / "preprocessed_logs_2026-11-02.jsonl"
    day.write_text("")
    assert find_templates(None, [days]) is None
    write_templates(days / TEMPLATES, PARENT)
    assert find_templates(None, [days]) == days / TEMPLATES
    assert find_templates(None, [day]) == days / TEMPLATES  # a file: its directory
    named = other / "set.json"
    write_templates(named, PARENT)
    assert find_templates(named, [days]) == named
    write_templates(other / TEMPLATES, PARENT)
    with pytest.raises(ConfigError, match=r"more than one templates\.json"):
        find_templates(None, [days, other])
    with pytest.raises(DataError, match="no such templates file"):
        find_templates(tmp_path / "nope.json", [days])


def test_a_warm_start_keeps_the_parent_ids(tmp_path: Path) -> None:
    parent = fake_bundle(tmp_path / "parent", PARENT)
    days = tmp_path / "days"
    days.mkdir()
    # No set beside the data: the parent's carries over; no parent either: none.
    assert bundle_templates(None, [days], parent) == PARENT
    assert bundle_templates(None, [days], fake_bundle(tmp_path / "bare", None)) is None
    # An extension (a new id, a generalised template) is fine.
    t1, t2 = PARENT.templates
    wider = dataclasses.replace(t1, template="Routing <*> <*> to order-service")
    grown = dataclasses.replace(t2, id="T3", template="Cache miss for key <*>")
    write_templates(days / TEMPLATES, TemplateSet(PARENT.params, (wider, t2, grown)))
    assert [t.id for t in bundle_templates(None, [days], parent).templates] == ["T1", "T2", "T3"]
    # A set mined afresh from other lines renumbers: refused, naming the id.
    write_templates(days / TEMPLATES, mined("Order 42 created", "Routing GET /x to order-service"))
    with pytest.raises(ConfigError) as e:
        bundle_templates(None, [days], parent)
    assert f"does not extend the templates of the bundle {parent}: T1 was" in str(e.value)


@pytest.mark.slow
def test_train_on_parsed_days_bundles_their_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "shop.log"
    lines = interleaved(traces(random.Random(4), 240, START_MS))
    log.write_text("".join(x.text() + "\n" for x in lines))
    parsed = tmp_path / "parsed"
    argv = ["parse", str(log), "--session-key", "trace_id", "--out", str(parsed)]
    assert main(["--log-level", "warning", *argv]) == 0
    out = tmp_path / "m1"
    train = ["--log-level", "warning", "train", *cli_flags(tmp_path), "--epochs", "1"]
    assert main([*train, "--data", str(parsed), "--out", str(out)]) == 0
    assert TEMPLATES in verify_bundle(out).files
    assert read_bundle_templates(out) == read_templates(parsed / TEMPLATES)
    capsys.readouterr()

    # A set that renumbers the parent's ids: one error line, before any training.
    renumbered = tmp_path / "renumbered.json"
    entries = read_templates(parsed / TEMPLATES).templates
    swapped = (dataclasses.replace(entries[0], template=entries[1].template), *entries[1:])
    write_templates(renumbered, TemplateSet(read_templates(parsed / TEMPLATES).params, swapped))
    flags = ["--init-from", str(out), "--templates", str(renumbered)]
    assert main([*train, "--data", str(parsed), "--out", str(tmp_path / "m2"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not extend the templates of the bundle" in err[0], err
    assert "T1 was" in err[0] and not (tmp_path / "m2").exists()

    # Replay and evaluate take raw events as serve does: ids from the bundle's templates.
    rng = random.Random(5)
    normal = traces(rng, 30, START_MS + 3_600_000)
    broken = [
        trace(rng, "place-order", START_MS + 3_700_000 + i * 50, broken=True) for i in range(10)
    ]
    events = {"normal": normal, "abnormal": broken}
    for name, group in events.items():
        lines = interleaved(group)
        (tmp_path / f"{name}.jsonl").write_bytes(
            b"".join(x.event().encode() + b"\n" for x in lines)
        )
    scores = tmp_path / "scores.jsonl"
    replay = ["replay", "--model", str(out), "--events", str(tmp_path / "abnormal.jsonl")]
    assert main(["--log-level", "warning", *replay, "--out", str(scores), "--device", "cpu"]) == 0
    replayed = [Score.decode(line) for line in scores.read_bytes().splitlines()]
    assert {s.session_id for s in replayed} == {t[0].trace_id for t in broken}
    named = {e.template for s in replayed for e in s.surprising if e.template}
    assert named <= {NEVER_SEEN_TEMPLATE} and named, "the never-seen line is named"
    capsys.readouterr()
    evaluate = ["evaluate", "--model", str(out), "--device", "cpu"]
    evaluate += ["--normal", str(tmp_path / "normal.jsonl")]
    evaluate += ["--abnormal", str(tmp_path / "abnormal.jsonl"), "--report", str(tmp_path / "r")]
    assert main(["--log-level", "warning", *evaluate]) == 0
    report = orjson.loads((tmp_path / "r" / "report.json").read_bytes())
    assert (report["n_normal"], report["n_abnormal"]) == (30, 10)
