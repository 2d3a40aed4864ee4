"""Benches write one stable file each and keep bench/results/index.json in step with it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench.machine import (
    INDEX,
    REPO,
    RESULTS,
    RESULTS_DIR_ENV,
    invocation,
    read_index,
    summary_of,
    write_result,
)


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "results"))
    return tmp_path / "results"


def stream_payload(events_per_s: int) -> dict[str, object]:
    return {
        "bench": "stream_throughput",
        "sessionizer": {
            "config": {"events": 1000},
            "results": {"sessionizer": {"events_per_cpu_s": events_per_s}},
        },
    }


def test_writes_the_stable_file_and_its_index_entry(results: Path) -> None:
    path = write_result("stream_throughput", stream_payload(500_000), command="make x")
    assert path == results / "stream_throughput.json"
    doc = orjson.loads(path.read_bytes())
    # machine.py's header fields are added when the payload has none.
    assert {"date", "machine"} <= doc.keys() and doc["bench"] == "stream_throughput"
    entry = read_index(results)["stream_throughput"]
    assert entry["file"] == "stream_throughput.json"
    assert entry["date"] == doc["date"]
    assert entry["machine"] and entry["command"] == "make x"
    assert entry["summary"] == "sessionizer: 500000 events per CPU-second (1000 events)"


def test_a_rerun_replaces_its_entry_and_keeps_the_others(results: Path) -> None:
    write_result("stream_throughput", stream_payload(1), command="a")
    write_result("other", {"bench": "other", "date": "2030-01-01"}, command="b")
    write_result("stream_throughput", stream_payload(2), command="c")
    index = read_index(results)
    assert sorted(index) == ["other", "stream_throughput"]
    assert index["stream_throughput"]["command"] == "c"
    assert "2 events per CPU-second" in index["stream_throughput"]["summary"]
    assert index["other"]["date"] == "2030-01-01"  # the payload's own date is kept
    assert sorted(p.name for p in results.iterdir()) == [
        INDEX,
        "other.json",
        "stream_throughput.json",
    ]


def test_an_explicit_path_is_indexed_in_its_own_folder(results: Path, tmp_path: Path) -> None:
    path = write_result(
        "ignored", {"bench": "x"}, path=tmp_path / "adhoc" / "run1.json", command=""
    )
    assert path == tmp_path / "adhoc" / "run1.json" and path.is_file()
    assert list(read_index(tmp_path / "adhoc")) == ["run1"]
    assert not results.exists()


@pytest.mark.parametrize("name", ["", "index", "a/b", ".hidden"])
def test_bad_names_are_refused(results: Path, name: str) -> None:
    with pytest.raises(ValueError):
        write_result(name, {}, command="")


def test_the_index_cannot_be_written_as_a_result(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_result("x", {}, path=tmp_path / INDEX, command="")


def test_a_partial_or_unknown_result_still_gets_a_summary() -> None:
    assert summary_of({"bench": "stream_e2e", "results": {}}) == "stream_e2e"
    assert summary_of({"benchmark": "new_bench"}) == "new_bench"


def test_the_invocation_names_the_module_and_repo_relative_paths() -> None:
    argv = [str(REPO / "bench" / "replay_hdfs.py"), "--model", str(REPO / "bench" / "out" / "m")]
    assert invocation(argv) == ".venv/bin/python -m bench.replay_hdfs --model bench/out/m"
    assert invocation(["/usr/bin/tool", "--x", "a b"]) == "/usr/bin/tool --x 'a b'"


def test_the_checked_in_index_lists_every_result_and_nothing_else() -> None:
    index = read_index(RESULTS)
    files = sorted(p.name for p in RESULTS.glob("*.json") if p.name != INDEX)
    assert sorted(e["file"] for e in index.values()) == files
    for name, entry in index.items():
        assert entry["file"] == f"{name}.json"
        assert entry["command"] and entry["date"] and entry["machine"]
        payload = orjson.loads((RESULTS / entry["file"]).read_bytes())
        assert entry["summary"] == summary_of(payload)
