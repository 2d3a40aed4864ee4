"""The template miner on small hand-made logs: grouping, generalising, words, match."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trainer.mining import DEFAULT_PARAMS, TemplateMiner, with_params

DATA = Path(__file__).resolve().parents[2] / "data" / "loghub_2k"


def _mine(miner: TemplateMiner, lines: list[str]) -> list[str]:
    return [miner.mine(line)[0] for line in lines]


def test_values_vary_within_one_template_which_generalises() -> None:
    m = TemplateMiner()
    ids = _mine(
        m,
        [
            "Receiving block blk_1 src: /10.0.0.1:50010 dest: /10.0.0.2:50010",
            "Receiving block blk_-2 src: /10.0.0.3:50010 dest: /10.0.0.4:50010",
            "Served block blk_3 to /10.0.0.5",
            "Receiving block blk_4 src: /10.0.0.6:50010 dest: /10.0.0.7:50010",
        ],
    )
    assert ids == ["T1", "T1", "T2", "T1"]
    assert m.template("T1").template == "Receiving block <*> src: /<*> dest: /<*>"
    assert m.template("T1").count == 3


def test_mine_reports_what_changed() -> None:
    m = TemplateMiner()
    assert m.mine("job job_a1 started on node n7") == ("T1", True)  # new
    assert m.mine("job job_a1 started on node n7") == ("T1", False)  # seen as is
    assert m.mine("job job_b2 started on node n7") == ("T1", True)  # generalised
    assert m.template("T1").template == "job <*> started on node n7"
    assert m.mine("job job_c3 started on node n7") == ("T1", False)


def test_different_words_are_different_templates() -> None:
    m = TemplateMiner()
    ids = _mine(
        m,
        [
            "Block rdd_1 stored as bytes in memory (size 5.4 KB, free 3 MB)",
            "Block rdd_2 stored as values in memory (size 12 B, free 2 MB)",
            "Task task_7 Transitioned from NEW to RUNNING",
            "Task task_8 Transitioned from RUNNING to SUCCEEDED",
            "Block broadcast_3 stored as bytes in memory (size 1.0 KB, free 1 MB)",
        ],
    )
    assert ids == ["T1", "T2", "T3", "T4", "T1"]


def test_a_list_of_values_is_one_variable_part() -> None:
    m = TemplateMiner()
    ids = _mine(
        m,
        [
            "ask 10.0.0.1:50010 to delete blk_1",
            "ask 10.0.0.2:50010 to delete blk_2 blk_3 blk_4",
            "ask 10.0.0.3:50010 to delete blk_5 blk_6",
        ],
    )
    assert ids == ["T1", "T1", "T1"]
    assert m.template("T1").template == "ask <*> to delete <*>"


def test_words_that_are_values_get_their_own_template_after_word_variants() -> None:
    m = TemplateMiner(with_params(DEFAULT_PARAMS, word_variants=2))
    names = ["shanghai", "suzhou", "beijing", "nanjing", "shanghai"]
    ids = _mine(m, [f"Query station {n} done" for n in names])
    # Two variants stay apart (they could be an enumeration), the third word starts a
    # template with <*> there, which takes the fourth; the first keeps its own id.
    assert ids == ["T1", "T2", "T3", "T3", "T1"]
    assert m.template("T3").template == "Query station <*> done"


def test_without_word_variants_every_word_stays_apart() -> None:
    m = TemplateMiner(with_params(DEFAULT_PARAMS, word_variants=0))
    names = ["shanghai", "suzhou", "beijing", "nanjing"]
    assert _mine(m, [f"Query station {n} done" for n in names]) == ["T1", "T2", "T3", "T4"]


def test_similarity_threshold_splits_lines_that_differ_too_much() -> None:
    lines = ["cmd a1 b2 c3 end", "cmd x9 y8 z7 end"]
    assert _mine(TemplateMiner(with_params(DEFAULT_PARAMS, similarity=0.4)), lines) == [
        "T1",
        "T1",
    ]
    assert _mine(TemplateMiner(with_params(DEFAULT_PARAMS, similarity=0.5)), lines) == [
        "T1",
        "T2",
    ]


def test_match_changes_nothing_and_finds_known_templates() -> None:
    m = TemplateMiner()
    m.mine("user u1 logged in from 10.0.0.1")
    before = m.to_set()
    assert m.match("user u2 logged in from 10.0.0.9") == "T1"  # would generalise T1
    assert m.match("disk full on /dev/sda1") is None
    assert m.to_set() == before


def _content(system: str) -> list[str]:
    path = DATA / system / f"{system}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        return [row["Content"] for row in csv.DictReader(fh)]


@pytest.mark.parametrize("system", ["Zookeeper", "Spark", "BGL"])
def test_match_gives_the_id_mine_gives(system: str) -> None:
    lines = _content(system)
    m = TemplateMiner()
    _mine(m, lines[:1000])
    for line in lines[1000:]:
        matched = m.match(line)
        tid, _ = m.mine(line)
        if matched is not None:
            assert matched == tid, line


def test_the_cache_never_changes_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _content("Hadoop") + _content("HDFS")
    cached = TemplateMiner()
    expected = []
    for i, line in enumerate(lines):
        if i % 3 == 0:
            cached.match(line)  # a match first, then the same line mined
        expected.append(cached.mine(line))
    monkeypatch.setattr(TemplateMiner, "_remember", lambda *_: None)
    uncached = TemplateMiner()
    assert [uncached.mine(line) for line in lines] == expected
    assert uncached.to_set() == cached.to_set()


def test_empty_message_has_a_template() -> None:
    m = TemplateMiner()
    assert m.mine("") == ("T1", True)
    assert m.mine("   ") == ("T1", False)
    assert m.match("") == "T1"
