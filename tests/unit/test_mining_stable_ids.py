"""Template ids are stable: across mining, saving, loading and two extensions ("retrains"),
an id keeps its template and its lines, and new ids are only appended."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import pytest

from schemas.templates import TemplateSet, read_templates, write_templates
from trainer.mining import DEFAULT_PARAMS, TemplateMiner, with_params
from trainer.mining.tokens import PARAM

DATA = Path(__file__).resolve().parents[2] / "data" / "loghub_2k"


def _content(system: str) -> list[str]:
    path = DATA / system / f"{system}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        return [row["Content"] for row in csv.DictReader(fh)]


def _extend(path: Path | None, lines: list[str], out: Path) -> dict[str, str]:
    """Load the set at `path` (or start empty), mine `lines`, save to `out`; each line's id."""
    miner = TemplateMiner() if path is None else TemplateMiner.from_set(read_templates(path))
    ids = {}
    for i, line in enumerate(lines):
        ids[line] = miner.mine(line, first_seen=f"{out.stem}:{i + 1}")[0]
    write_templates(out, miner.to_set())
    return ids


def _number(tid: str) -> int:
    return int(tid[1:])


def _generalises(old: str, new: str) -> bool:
    a, b = old.split(), new.split()
    return len(a) == len(b) and all(x == y or y == PARAM for x, y in zip(a, b, strict=True))


def test_ids_keep_their_templates_and_lines_across_two_extensions(tmp_path: Path) -> None:
    zk, spark, hdfs, hadoop = (_content(s) for s in ("Zookeeper", "Spark", "HDFS", "Hadoop"))
    set_a = zk[:1000] + spark[:1000]
    set_b = zk[1000:] + hdfs
    set_c = spark[1000:] + hadoop + zk[:200]
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    ids_a = _extend(None, set_a, a)
    ids_b = _extend(a, set_b, b)
    ids_c = _extend(b, set_c, c)
    sets = [read_templates(p).templates for p in (a, b, c)]

    for old, new in itertools.pairwise(sets):
        # Old ids come first, in order, each a generalisation of the template it was.
        assert [t.id for t in new[: len(old)]] == [t.id for t in old]
        for t_old, t_new in zip(old, new, strict=False):
            assert _generalises(t_old.template, t_new.template), t_old.id
            assert t_new.count >= t_old.count
            assert t_new.first_seen == t_old.first_seen
        # New ids are appended after the last old one.
        assert all(_number(t.id) > _number(old[-1].id) for t in new[len(old) :])
    assert len(sets[0]) < len(sets[1]) < len(sets[2])

    # Every line still maps to the id it got, after each later extension.
    after_b = TemplateMiner.from_set(read_templates(b))
    after_c = TemplateMiner.from_set(read_templates(c))
    for line, tid in ids_a.items():
        assert after_b.match(line) == tid, line
        assert after_c.match(line) == tid, line
    for line, tid in ids_b.items():
        assert after_c.match(line) == tid, line
    for line, tid in ids_c.items():
        assert after_c.match(line) == tid, line


def test_a_loaded_set_matches_like_the_miner_that_wrote_it(tmp_path: Path) -> None:
    miner = TemplateMiner()
    lines = _content("BGL") + _content("Hadoop")
    for line in lines[::2]:
        miner.mine(line)
    path = tmp_path / "t.json"
    write_templates(path, miner.to_set())
    loaded = TemplateMiner.from_set(read_templates(path))
    assert loaded.to_set() == miner.to_set()
    assert [loaded.match(line) for line in lines] == [miner.match(line) for line in lines]
    # And it goes on mining exactly as the original does.
    assert [loaded.mine(line) for line in lines[1::2]] == [miner.mine(line) for line in lines[1::2]]
    assert loaded.to_set() == miner.to_set()


_TOKENS = ["a", "b", "foo", "bar", "x1", "y2", "Q5", "z7", "k", "7", PARAM]


@pytest.mark.parametrize("seed", range(300))
def test_no_line_ever_moves_to_another_id(seed: int) -> None:
    """Random small logs, random parameters, saves and loads in between: every line keeps
    the first id it got (a plain Drain tree fails this: a line can lose its template to
    another one that generalised, or to a tree child added later)."""
    rng = random.Random(seed)
    params = with_params(
        DEFAULT_PARAMS,
        mask_rules=(),
        depth=rng.choice([3, 4, 5]),
        similarity=rng.choice([0.3, 0.5, 0.7]),
        max_children=rng.choice([2, 3, 100]),
        word_variants=rng.choice([0, 2, 3]),
    )
    miner = TemplateMiner(params)
    first: dict[str, str] = {}
    for _ in range(rng.randint(10, 100)):
        line = " ".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 4)))
        tid, _ = miner.mine(line)
        assert first.setdefault(line, tid) == tid, line
        if rng.random() < 0.2:
            miner = TemplateMiner.from_set(TemplateSet.from_dict(miner.to_set().to_dict()))
    for line, tid in first.items():
        assert miner.match(line) == tid, line
