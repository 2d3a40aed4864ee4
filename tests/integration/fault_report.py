"""The fault suite's counts (tests marked `fault`): what each test produced, what serve
scored, duplicates, dead letters and peak RSS. The `fault_counts` fixture
(tests/integration/conftest.py) hands a test its `FaultCounts`; at the end of the session
the table is printed in the terminal summary and written to build/fault-suite.json."""

from __future__ import annotations

import dataclasses
import resource
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from _pytest.terminal import TerminalReporter

from schemas.scores import Score

REPORT = Path(__file__).resolve().parents[2] / "build" / "fault-suite.json"


@dataclass
class FaultCounts:
    test: str
    produced: int | None = None
    """Sessions produced to the input topic (valid ones)."""
    scored: int | None = None
    """Distinct sessions with at least one score."""
    duplicates: int | None = None
    """Scores beyond the first of their window id (a window scored twice counts 1)."""
    dead_lettered: int | None = None
    """Records in the dead-letter topic."""
    peak_rss_mb: float | None = None
    rss_of: str = ""
    """Whose peak RSS: "serve" (a serve process's VmHWM) or "pytest" (serve in-process)."""
    seconds: float | None = None

    def record_scores(self, produced: Iterable[str], scores: Iterable[Score]) -> None:
        """Fill produced, scored and duplicates from the session ids produced and the
        scores read back."""
        scores = list(scores)
        self.produced = len(set(produced))
        self.scored = len({s.session_id for s in scores})
        self.duplicates = duplicate_scores(scores)

    def serve_rss(self, pid: int) -> None:
        self.peak_rss_mb, self.rss_of = max(self.peak_rss_mb or 0.0, peak_rss_mb(pid)), "serve"

    def pytest_rss(self) -> None:
        self.peak_rss_mb, self.rss_of = self_peak_rss_mb(), "pytest"


RESULTS: list[FaultCounts] = []


def duplicate_scores(scores: Iterable[Score]) -> int:
    """Scores of a window id already scored: re-scores after a crash or rebalance."""
    return sum(n - 1 for n in Counter(s.window_id for s in scores).values())


def peak_rss_mb(pid: int) -> float:
    """The peak resident set (VmHWM) of a running process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def self_peak_rss_mb() -> float:
    """This process's peak resident set, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if isinstance(v, float) else str(v)


def summary(terminal: TerminalReporter) -> None:
    if not RESULTS:
        return
    terminal.section("fault suite counts")
    head = ("test", "produced", "scored", "dupes", "dlq", "peak RSS MiB", "s")
    rows = [
        (
            r.test.split("::", 1)[-1],
            _cell(r.produced),
            _cell(r.scored),
            _cell(r.duplicates),
            _cell(r.dead_lettered),
            f"{_cell(r.peak_rss_mb)} ({r.rss_of})" if r.rss_of else "-",
            _cell(r.seconds),
        )
        for r in RESULTS
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        terminal.write_line("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_bytes(
        orjson.dumps([dataclasses.asdict(r) for r in RESULTS], option=orjson.OPT_INDENT_2)
    )
    terminal.write_line(f"written to {REPORT}")
