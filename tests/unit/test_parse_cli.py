"""`logad parse` end to end, in process: each built-in format, session keys, daily files,
.gz input, unparseable lines, extending a template set, and one-line errors."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from pathlib import Path

import orjson
import pytest

from schemas.daily_files import daily_file_name, read_sessions
from schemas.templates import read_templates
from stream.cli import main

DATA = Path(__file__).resolve().parents[2] / "data" / "loghub_2k"


def _parse(*argv: str | Path) -> int:
    return main(["--log-level", "warning", "parse", *map(str, argv)])


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "assignments.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line the command printed (and nothing like a traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("logad")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_content_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "user 17 logged in\r\nuser 18 logged in\r\ncache miss for key k1\r\nuser 19 logged in\r\n"
    )
    out = tmp_path / "out"
    assert _parse(log, "--format", "content", "--out", out) == 0
    rows = _rows(out)
    assert [(r["file"], r["line"], r["template_id"]) for r in rows] == [
        (str(log), "1", "T1"),
        (str(log), "2", "T1"),
        (str(log), "3", "T2"),
        (str(log), "4", "T1"),
    ]
    templates = read_templates(out / "templates.json").templates
    assert [(t.id, t.template, t.count) for t in templates] == [
        ("T1", "user <*> logged in", 3),
        ("T2", "cache miss for key k1", 1),
    ]
    assert templates[1].first_seen == f"{log}:3"
    assert not list(out.glob("preprocessed_logs_*"))  # no session key, no daily files
    assert "parsed 4 lines from 1 file: 2 templates (2 new), 0 unparseable" in (
        capsys.readouterr().out
    )


def _spring(ts: str, level: str, trace: str | None, thread: str, logger: str, msg: str) -> str:
    sleuth = f"[gateway,{trace},9a1c0f3e2b4d5a6c] " if trace is not None else ""
    return f"{ts} {level:>5} {sleuth}1 --- [{thread:>15}] {logger:<40} : {msg}"


def test_spring_boot_sessions_by_trace_id(tmp_path: Path) -> None:
    t1, t2 = "5f2b0c1d2e3f40516273849a5b6c7d8e", "0123456789abcdef0123456789abcdef"
    t3 = "fedcba9876543210fedcba9876543210"
    lines = [
        _spring(
            "2023-01-29 23:59:58.100", "INFO", t1, "nio-8080-exec-1", "c.e.Order", "order 1 in"
        ),
        _spring(
            "2023-01-29 23:59:58.200", "INFO", t2, "nio-8080-exec-2", "c.e.Order", "order 2 in"
        ),
        _spring("2023-01-30 00:00:01.000", "WARN", t1, "nio-8080-exec-1", "c.e.Pay", "slow: 1.5s"),
        _spring("2023-01-30 00:00:01.500", "INFO", None, "main", "c.e.App", "Started App in 3 s"),
        _spring(
            "2023-01-30 00:00:02.000", "INFO", t1, "nio-8080-exec-1", "c.e.Order", "order 1 out"
        ),
        _spring("2023-01-30 00:00:03.000", "INFO", "", "main", "c.e.App", "health ok"),
        # A session whose first line comes after midnight and a late line from before it:
        # it is filed under the day of its first line.
        _spring(
            "2023-01-30 00:00:04.000", "INFO", t3, "nio-8080-exec-3", "c.e.Order", "order 3 in"
        ),
        _spring("2023-01-29 23:59:59.000", "INFO", t3, "nio-8080-exec-4", "c.e.Order", "order 3 x"),
    ]
    log = tmp_path / "gateway.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert _parse(log, "--format", "spring-boot", "--session-key", "trace_id", "--out", out) == 0
    assert all(r["template_id"] for r in _rows(out))
    day1 = list(read_sessions(out / daily_file_name(date(2023, 1, 29))))
    # t1 began on the 29th: the whole session goes there, its events in file order.
    assert [s.session_id for s in day1] == [t1, t2]
    first = day1[0]
    ids = [r["template_id"] for r in _rows(out)]
    assert first.events == (ids[0], ids[2], ids[4])
    assert first.start_ts == 1675036798100
    assert first.end_ts == 1675036802000
    assert day1[1].events == (ids[1],)
    # Lines with no trace (plain, or an empty trace id) join no session.
    (late,) = read_sessions(out / daily_file_name(date(2023, 1, 30)))
    assert late.session_id == t3
    assert late.events == (ids[6], ids[7])
    assert (late.start_ts, late.end_ts) == (1675036799000, 1675036804000)


def _hdfs_lines() -> list[str]:
    return [
        "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
        "blk_38865049064139660 terminating",
        "081109 203807 222 INFO dfs.DataNode$PacketResponder: PacketResponder 0 for block "
        "blk_-6952295868487656571 terminating",
        "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap "
        "updated: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864",
        "081109 204015 308 INFO dfs.DataNode$PacketResponder: PacketResponder 2 for block "
        "blk_8229193803249955061 terminating",
        "081110 000001 19 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: blockMap "
        "updated: 10.251.71.16:50010 is added to blk_38865049064139660 size 67108864",
    ]


@pytest.mark.parametrize("gz", [False, True])
def test_hdfs_sessions_by_block_regex(tmp_path: Path, gz: bool) -> None:
    text = "\n".join(_hdfs_lines()) + "\n"
    log = tmp_path / ("hdfs.log.gz" if gz else "hdfs.log")
    log.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    out = tmp_path / "out"
    assert _parse(log, "--format", "hdfs", "--session-key", r"blk_-?\d+", "--out", out) == 0
    ids = [r["template_id"] for r in _rows(out)]
    assert ids == ["T1", "T1", "T2", "T1", "T2"]
    sessions = {s.session_id: s for s in read_sessions(out / "preprocessed_logs_2008-11-09.jsonl")}
    assert sessions["blk_38865049064139660"].events == ("T1", "T2")
    assert set(sessions) == {
        "blk_38865049064139660",
        "blk_-6952295868487656571",
        "blk_7128370237687728475",
        "blk_8229193803249955061",
    }


def test_hdfs_format_gives_loghubs_content_column(tmp_path: Path) -> None:
    """The hdfs header parse splits Loghub's raw lines exactly where Loghub did."""
    from stream.jobs.log_formats import BUILTIN

    raw = (DATA / "HDFS" / "HDFS_2k.log").read_bytes().decode().splitlines()
    with (DATA / "HDFS" / "HDFS_2k.log_structured_corrected.csv").open(newline="") as fh:
        content = [row["Content"] for row in csv.DictReader(fh)]
    parsed = [BUILTIN["hdfs"].parse(line) for line in raw]
    assert [p.message if p else None for p in parsed] == content


def test_unparseable_lines_are_counted_shown_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _hdfs_lines()
    log = tmp_path / "mixed.log"
    log.write_bytes(
        "\n".join([good[0], "java.lang.IllegalStateException: boom", good[1]]).encode()
        + b"\n081109 203615 148 INFO dfs.X: caf\xe9\n"
        + b"089999 203615 148 INFO dfs.X: month 99\n"
    )
    out = tmp_path / "out"
    assert _parse(log, "--format", "hdfs", "--out", out) == 0
    assert [r["template_id"] for r in _rows(out)] == ["T1", "", "T1", "", ""]
    printed = capsys.readouterr().out
    assert "5 lines from 1 file: 1 template (1 new), 3 unparseable" in printed
    assert "(no hdfs header: 1, not UTF-8: 1, unreadable time: 1)" in printed
    assert f"{log}:2: no hdfs header: 'java.lang.IllegalStateException: boom'" in printed


def test_line_regex_with_fields_and_a_time_format(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text(
        "29/01/2023 10:00:00 [req-1] GET /api/v1/users/42 200\n"
        "29/01/2023 10:00:01 [req-2] GET /api/v1/users/7 200\n"
        "29/01/2023 10:00:02 [req-1] POST /api/v1/orders 201\n"
    )
    out = tmp_path / "out"
    regex = r"(?P<ts>\S+ \S+) \[(?P<request>[^\]]+)\] (?P<message>.*)"
    argv = ["--line-regex", regex, "--ts-format", "%d/%m/%Y %H:%M:%S", "--session-key", "request"]
    assert _parse(log, *argv, "--out", out) == 0
    sessions = list(read_sessions(out / "preprocessed_logs_2023-01-29.jsonl"))
    assert [(s.session_id, s.events) for s in sessions] == [
        ("req-1", ("T1", "T2")),
        ("req-2", ("T1",)),
    ]


def test_content_sessions_need_a_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.log"
    log.write_text("job job_1 started\njob job_1 done\n")
    out = tmp_path / "out"
    argv = ["--format", "content", "--session-key", r"job_\d+", "--out", out]
    assert _parse(log, *argv) == 2
    assert "give --day YYYY-MM-DD" in _error(capsys)
    assert _parse(log, *argv, "--day", "2026-02-03") == 0
    (s,) = read_sessions(out / "preprocessed_logs_2026-02-03.jsonl")
    assert s.events == ("T1", "T2") and s.start_ts is None


def test_extending_a_template_set_keeps_its_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("user 1 logged in\ndisk sda1 full\n")
    second.write_text("cache cleared\nuser 2 logged in\ndisk sdb2 full\n")
    a, b = tmp_path / "a", tmp_path / "b"
    assert _parse(first, "--format", "content", "--out", a) == 0
    argv = ["--format", "content", "--templates", a / "templates.json", "--out", b]
    assert _parse(second, *argv) == 0
    assert [r["template_id"] for r in _rows(b)] == ["T3", "T1", "T2"]
    old = read_templates(a / "templates.json").templates
    new = read_templates(b / "templates.json").templates
    assert [t.id for t in new] == ["T1", "T2", "T3"]
    assert new[0].count == 2 and new[0].first_seen == old[0].first_seen
    capsys.readouterr()
    assert _parse(second, *argv, "--similarity", "0.9") == 2
    assert "--similarity differs from the --templates file's" in _error(capsys)


def test_mask_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "order"\npattern = "ORD-[A-Z]+"\n')
    log = tmp_path / "a.log"
    log.write_text("paid ORD-ABC\npaid ORD-XYZ\n")
    out = tmp_path / "out"
    assert _parse(log, "--format", "content", "--mask-rules", rules, "--out", out) == 0
    saved = read_templates(out / "templates.json")
    assert [t.template for t in saved.templates] == ["paid <*>"]
    assert saved.params.mask_rules[0].name == "order"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--line-regex", "(?P<message>.*"], "logad: error: bad --line-regex: missing )"),
        (["--line-regex", "(?P<msg>.*)"], "--line-regex needs a (?P<message>...) group"),
        (["--format", "hdfs", "--session-key", "blk_(\\d+"], "bad --session-key regex"),
        (["--format", "syslog"], "logad: error: unknown format 'syslog' (known: content"),
        (["--format", "hdfs", "--session-key", "trace_id"], "no such field in format hdfs"),
        (["--similarity", "1.5"], "similarity must be in (0, 1]"),
        (["--templates", "nope.json"], "no such templates file: nope.json"),
    ],
)
def test_bad_arguments_are_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    assert _parse(log, *argv, "--out", tmp_path / "out") == 2
    assert error in _error(capsys)
    assert not (tmp_path / "out").exists()  # nothing written before the checks pass


def test_a_missing_input_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone.log"
    assert _parse(missing, "--out", tmp_path / "out") == 2
    assert _error(capsys) == f"logad: error: no such file: {missing}"


def test_written_templates_file_is_plain_json(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("hello 1\n")
    assert _parse(log, "--format", "content", "--out", tmp_path / "o") == 0
    obj = orjson.loads((tmp_path / "o" / "templates.json").read_bytes())
    assert obj["templates"][0] == {
        "id": "T1",
        "template": "hello <*>",
        "count": 1,
        "first_seen": f"{log}:1",
        "route": ["2", "hello"],
    }


@pytest.mark.parametrize("gz", [False, True])
def test_progress_hears_of_every_byte_of_the_file(tmp_path: Path, gz: bool) -> None:
    from stream.jobs.parse import ParseSettings, run_parse

    text = ("\n".join(_hdfs_lines()) + "\n") * 500  # past one progress chunk of lines
    log = tmp_path / "hdfs.log"
    log.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    seen: list[int] = []
    summary = run_parse([log], tmp_path / "out", ParseSettings(format="hdfs"), on_bytes=seen.append)
    assert summary.lines == 2500
    assert len(seen) > 1 and sum(seen) == log.stat().st_size
