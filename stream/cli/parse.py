"""`logad parse`: raw log files (plain or .gz) to template ids, assignments and daily files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from schemas.runtime.console import out
from stream.cli.command import Subparsers, command_parser
from stream.jobs.parse import (
    ParseSettings,
    ParseSummary,
    check_inputs,
    run_parse,
)

_METAVARS = {
    "format": "NAME",
    "line_regex": "REGEX",
    "ts_format": "FMT",
    "session_key": "FIELD|REGEX",
    "day": "YYYY-MM-DD",
    "templates": "FILE",
    "mask_rules": "FILE",
}


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="raw log files")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "parse",
        help="mine template ids from raw log lines; write assignments and daily files",
        description="Read raw log files (plain or .gz), split each line's header off "
        "(--format or --line-regex), mine its message into a template id, and write "
        "DIR/templates.json, DIR/assignments.csv (file,line,template_id for every line) "
        "and, with --session-key, daily files DIR/preprocessed_logs_YYYY-MM-DD.jsonl that "
        "'logad train' reads. A line that cannot be parsed is counted and reported, and its "
        "row has an empty template id.",
        arguments=_arguments,
        settings=ParseSettings,
        metavars=_METAVARS,
        run=run,
    )


def _progress_bar(files: list[Path]) -> Any:
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(f.stat().st_size for f in files)
    return tqdm(total=total, unit="B", unit_scale=True, dynamic_ncols=True, desc="parse")


def run(args: argparse.Namespace, s: ParseSettings) -> int:
    files: list[Path] = args.files
    check_inputs(files, s)
    bar = _progress_bar(files)
    try:
        summary = run_parse(files, args.out, s, on_bytes=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    for line in summary_lines(summary):
        out(line)
    return 0


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def summary_lines(s: ParseSummary) -> list[str]:
    new = s.templates_after - s.templates_before
    lines = [
        f"parsed {_n(s.lines, 'line')} from {_n(s.files, 'file')}: "
        f"{_n(s.templates_after, 'template')} ({new:,} new), {s.unparseable:,} unparseable"
    ]
    if s.unparseable:
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(s.reasons.items()))
        lines.append(f"unparseable lines ({reasons}); the first:")
        lines += [f"  {b.file}:{b.line}: {b.reason}: {b.text!r}" for b in s.examples]
    if s.days:
        span = f"{s.days[0]}" if len(s.days) == 1 else f"{s.days[0]} .. {s.days[-1]}"
        lines.append(f"{_n(s.sessions, 'session')} in {_n(len(s.days), 'daily file')} ({span})")
    if s.undated_sessions:
        lines.append(
            f"{_n(s.undated_sessions, 'session')} had no time and were not written (give --day)"
        )
    lines += [f"wrote {p}" for p in s.written]
    return lines
