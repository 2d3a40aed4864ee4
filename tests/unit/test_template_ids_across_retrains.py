"""Template ids are stable across retrains: each night's `logad parse` extends the serving
bundle's set, `logad train --init-from` carries it into the next bundle, and after two
retrains every line of the first day still maps to the id it got on that day."""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.bundle import TEMPLATES, read_bundle_templates
from schemas.templates import TemplateSet
from stream.cli import main
from tests.raw_spring import FLOWS, RawLine, interleaved, trace
from tests.train_data import cli_flags
from trainer.mining import TemplateMiner
from trainer.mining.lineage import extension_error

DAY_MS = 86_400_000
START_MS = int(datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp() * 1000)


def _day(tmp: Path, n: int, flows: list[str], broken: int, day: int) -> tuple[Path, list[RawLine]]:
    rng = random.Random(day)
    start = START_MS + day * DAY_MS
    groups = [trace(rng, flows[i % len(flows)], start + i * 50) for i in range(n)]
    groups += [trace(rng, "place-order", start + (n + i) * 50, broken=True) for i in range(broken)]
    lines = interleaved(groups)
    log = tmp / f"day{day}.log"
    log.write_text("".join(x.text() + "\n" for x in lines))
    return log, lines


def _assigned(parsed: Path) -> list[str]:
    with (parsed / "assignments.csv").open() as fh:
        return [row["template_id"] for row in csv.DictReader(fh)]


def _ids(s: TemplateSet) -> list[str]:
    return [t.id for t in s.templates]


@pytest.mark.slow
def test_ids_never_move_across_two_retrains(tmp_path: Path) -> None:
    quiet = ["--log-level", "warning"]
    train = [*quiet, "train", *cli_flags(tmp_path), "--epochs", "1"]
    flows = sorted(FLOWS)
    # Night 0 knows two flows; night 1 adds the others; night 2 adds a never-seen line.
    plan = [(flows[:2], 0), (flows, 0), (flows, 6)]
    bundles: list[Path] = []
    first_lines: list[RawLine] = []
    first_ids: list[str] = []
    for night, (day_flows, broken) in enumerate(plan):
        log, lines = _day(tmp_path, 160, day_flows, broken, night)
        parsed = tmp_path / f"parsed{night}"
        parse = [*quiet, "parse", str(log), "--session-key", "trace_id", "--out", str(parsed)]
        if bundles:  # extend the serving bundle's set, as the nightly job does
            parse += ["--templates", str(bundles[-1] / TEMPLATES)]
        assert main(parse) == 0
        out = tmp_path / f"m{night}"
        warm = ["--init-from", str(bundles[-1])] if bundles else []
        assert main([*train, "--data", str(parsed), "--out", str(out), *warm]) == 0
        if not bundles:
            first_lines, first_ids = lines, _assigned(parsed)
        bundles.append(out)

    sets = [read_bundle_templates(b) for b in bundles]
    assert all(s is not None for s in sets)
    s0, s1, s2 = (s for s in sets if s is not None)
    # Each set extends the one before: old ids first and in order, new ids appended.
    assert len(_ids(s0)) < len(_ids(s1)) < len(_ids(s2))
    assert _ids(s1)[: len(_ids(s0))] == _ids(s0) and _ids(s2)[: len(_ids(s1))] == _ids(s1)
    assert extension_error(s0, s1) is None and extension_error(s1, s2) is None
    # Every line of the first day maps to its first-day id under the newest set.
    newest = TemplateMiner.from_set(s2)
    assert len(first_ids) == len(first_lines) and all(first_ids)
    assert [newest.match(x.message) for x in first_lines] == first_ids
