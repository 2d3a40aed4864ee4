"""Where gaps come from on the stream side, and who keys on them: the sessionizer's
windows, the archive's lines, `logad parse`'s daily files and the serve score cache."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from schemas.daily_files import daily_file_name, read_sessions, write_sessions
from schemas.events import LogEvent
from schemas.scores import Score
from schemas.sessions import Session
from schemas.windows import MAX_EVENTS, Window
from stream.cli import main
from stream.jobs.replay import DaySource, ReplaySettings, replay_scores
from stream.jobs.retrain import read_held_out
from stream.serve.archive import session_line
from stream.serve.score_cache import ScoreCache
from stream.serve.sessionizer import Sessionizer, SessionizerSettings
from tests.fakes import FakeScorer

T0 = 1_700_000_000_000


def ev(ts: int, sid: str, eid: str) -> LogEvent:
    return LogEvent(ts=T0 + ts, service="svc", session_id=sid, event_id=eid)


def test_sessionizer_windows_carry_gaps_in_event_order() -> None:
    sz = Sessionizer(SessionizerSettings(gap_ms=30_000, max_events=4))
    out: list[Window] = []
    for off, (ts, eid) in enumerate([(0, "A"), (5, "B"), (2, "C"), (1_005, "D"), (1_010, "E")]):
        out += sz.add(ev(ts, "s", eid), 0, off, now_ms=0)
    [w1, w2] = out + sz.flush_all(ended=True)
    # Sorted by time (C arrived late but happened before B); gaps between sorted times.
    assert w1.events == ("A", "C", "B", "D") and w1.gaps_ms == (0, 2, 3, 1_000)
    # The next window of the session starts without a gap.
    assert w2.events == ("E",) and w2.gaps_ms == (0,)


def test_the_archive_line_keeps_the_windows_gaps() -> None:
    w = Window.build("s", 0, ("A", "B"), T0, T0 + 7, 0, 1, 2, gaps_ms=(0, 7))
    score = FakeScorer(threshold=1.0, rule=lambda _: 0.0).score_windows([w], 0)[0]
    assert Session.decode(session_line(w, score)).gaps_ms == (0, 7)
    plain = Window.build("s", 0, ("A", "B"), T0, T0 + 7, 0, 1, 2)
    assert b"gaps_ms" not in session_line(plain, score)


def _spring(ts: str, trace: str, msg: str) -> str:
    return f"{ts}  INFO [gateway,{trace},9a1c0f3e2b4d5a6c] 1 --- [   exec-1] c.e.Order : {msg}"


def test_parse_writes_each_sessions_gaps_from_its_lines_times(tmp_path: Path) -> None:
    t1, t2 = "5f2b0c1d2e3f40516273849a5b6c7d8e", "0123456789abcdef0123456789abcdef"
    lines = [
        _spring("2023-01-29 10:00:00.100", t1, "order 1 in"),
        _spring("2023-01-29 10:00:00.150", t2, "order 2 in"),
        _spring("2023-01-29 10:00:03.000", t1, "order 1 paid"),
        _spring("2023-01-29 10:00:03.500", t1, "order 1 out"),
        # A line out of time order: no negative gap, and the next is measured from the latest.
        _spring("2023-01-29 10:00:00.000", t2, "order 2 early"),
        _spring("2023-01-29 10:00:00.400", t2, "order 2 out"),
    ]
    log = tmp_path / "gateway.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    argv = [str(log), "--format", "spring-boot", "--session-key", "trace_id", "--out", str(out)]
    assert main(["--log-level", "warning", "parse", *argv]) == 0
    got = {s.session_id: s for s in read_sessions(out / daily_file_name(date(2023, 1, 29)))}
    assert got[t1].gaps_ms == (0, 2_900, 500)
    assert got[t2].gaps_ms == (0, 0, 250)


class TimedScorer(FakeScorer):
    """A fake that says it is time-aware, and scores a window by its largest gap."""

    time_buckets = 16

    def __init__(self) -> None:
        super().__init__("v1", threshold=1_000.0, rule=lambda w: float(max(w.gaps_ms or (0,))))
        self.scored: list[tuple[int, ...] | None] = []

    def score_windows(self, windows: Sequence[Window], now_ms: int) -> list[Score]:
        self.scored += [w.gaps_ms for w in windows]
        return super().score_windows(windows, now_ms)


def _win(i: int, gaps: tuple[int, ...] | None) -> Window:
    return Window.build(f"s{i}", 0, ("A", "B", "C"), T0, T0 + 9, 0, i, i + 2, gaps_ms=gaps)


def test_the_score_cache_keys_on_gap_buckets_for_a_time_aware_scorer() -> None:
    timed, cache = TimedScorer(), ScoreCache(100)
    fast, fast_alike, slow = (0, 10, 10), (0, 9, 12), (0, 10, 60_000)  # 9..14 ms: one bucket
    got = cache.score(timed, [_win(0, fast), _win(1, fast_alike), _win(2, slow)], 0)
    assert timed.scored == [fast, slow]  # the same buckets share one entry
    assert [s.anomalous for s in got] == [False, False, True]
    cache.score(timed, [_win(3, None)], 0)
    assert timed.scored[-1] is None  # unknown gaps are their own key

    # A time-blind scorer's key ignores the gaps: the slow window is the fast one's repeat.
    blind, cache = FakeScorer("v1", threshold=1_000.0, rule=lambda w: 0.0), ScoreCache(100)
    cache.score(blind, [_win(0, fast), _win(2, slow)], 0)
    assert blind.calls == [1]


def test_replayed_daily_lines_get_their_own_gaps_back(tmp_path: Path) -> None:
    n = MAX_EVENTS + 5
    long_gaps = tuple(range(n))  # event i came i ms after the one before
    day = tmp_path / daily_file_name(date(2026, 1, 1))
    sessions = [
        Session("timed", ("A", "B", "C"), 1_000, 1_050, gaps_ms=(0, 20, 30)),
        Session("untimed", ("A", "B"), 2_000, 2_010),
        Session("long", tuple(f"E{i % 9}" for i in range(n)), 3_000, 9_000, gaps_ms=long_gaps),
    ]
    write_sessions(day, sessions)
    src = DaySource([day], 30_000)
    seen: list[Window] = []

    def restore(w: Window) -> Window:
        seen.append(src.restore(w))
        return seen[-1]

    replay_scores(src.items(), FakeScorer(), ReplaySettings(batch_windows=2), restore)
    got = {(w.session_id, w.index): w.gaps_ms for w in seen}
    assert got[("timed", 0)] == (0, 20, 30)
    assert got[("untimed", 0)] is None  # the synthetic times are not the line's gaps
    assert got[("long", 0)] == (0, *range(1, MAX_EVENTS))
    assert got[("long", 1)] == (0, *range(MAX_EVENTS + 1, n))


def test_the_retrain_gate_reads_each_held_out_windows_gaps(tmp_path: Path) -> None:
    n = MAX_EVENTS + 3
    day = tmp_path / daily_file_name(date(2026, 1, 2))
    long = Session("long", ("A",) * n, 0, 9, label=0, gaps_ms=(0, *[5] * (n - 1)))
    write_sessions(day, [long, Session("plain", ("A", "B"), 0, 1, label=0)])
    held = read_held_out(day)
    assert held.gaps == [(0, *[5] * (MAX_EVENTS - 1)), (0, 5, 5), None]
    assert [len(s) for s in held.sequences] == [MAX_EVENTS, 3, 2]
