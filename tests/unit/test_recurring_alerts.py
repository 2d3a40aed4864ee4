"""Alerts on a new normal: the events a release brings recur steadily, an incident's do not
(trainer/window_filter.py `recurring_events`); the filter keeps such windows, and retrain
decides over its days, stops watching them and counts them as normal on the held-out day."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from schemas.daily_files import DayFile, daily_file_name, read_sessions, write_sessions
from schemas.feedback import Feedback
from schemas.scores import Expected, Score, SurprisingEvent
from schemas.sessions import Session
from schemas.windows import Window
from stream.jobs.retrain import (
    CandidateSettings,
    RetrainSettings,
    read_held_out,
    recurring_in,
    scan_day,
    train_argv,
)
from stream.jobs.retrain_gate import DayPlan
from stream.serve.archive import session_line
from trainer.end_marker import END_EVENT
from trainer.window_filter import (
    Reason,
    WindowColumns,
    WindowFilterSettings,
    WindowRecord,
    filter_windows,
    recurring_events,
    recurs,
)

DAY0 = date(2026, 3, 1)
D0 = 1_772_323_200_000  # 2026-03-01T00:00Z
DAY_MS = 86_400_000
HOUR = 3_600_000
RELEASE = ("order.checkout.start", "order.lines.check")


def _day(day: int) -> list[WindowRecord]:
    """1,000 windows over 24 hours: 50 alert on the release's events (spread over every
    hour), 28 on a database timeout within one hour, 5 on a rare fault; the rest are quiet."""
    base = D0 + day * DAY_MS
    out: list[WindowRecord] = []
    for i in range(1_000):
        t = base + i * (DAY_MS // 1_000)
        sid = f"d{day}-{i}"
        if i % 20 == 0:
            out.append(WindowRecord(sid, t, t + 10, 9.0, True, RELEASE))
        elif 500 <= i < 530:
            out.append(WindowRecord(sid, t, t + 10, 9.0, True, ("db.query.timeout",)))
        elif i % 200 == 7:
            out.append(WindowRecord(sid, t, t + 10, 9.0, True, ("rare.fault",)))
        else:
            out.append(WindowRecord(sid, t, t + 10, 1.0, False))
    return out


def _days(n: int) -> WindowColumns:
    return WindowColumns.of([r for d in range(n) for r in _day(d)])


def test_a_release_recurs_an_incident_and_a_rare_fault_do_not() -> None:
    s = WindowFilterSettings()
    assert recurring_events(_days(2), s) == frozenset(RELEASE)
    assert recurring_events(_days(1), s) == frozenset()  # one day is not yet a new normal
    assert recurring_events(_days(2), WindowFilterSettings(adopt_min_share=0.06)) == frozenset()
    # The incident is 3% of a day too, but within one hour.
    assert "db.query.timeout" in recurring_events(_days(2), WindowFilterSettings(adopt_min_hours=1))


def test_the_filter_keeps_windows_alerted_on_recurring_events_only() -> None:
    records = [r for d in range(2) for r in _day(d)]
    both = WindowRecord("mixed", D0 + 3 * HOUR, D0 + 3 * HOUR, 9.0, True, (*RELEASE, "db.x"))
    result = filter_windows(WindowColumns.of([*records, both]), WindowFilterSettings())
    counts = result.counts()
    assert result.recurring == RELEASE
    why = dict(zip([r.session_id for r in records], result.reasons.tolist(), strict=False))
    release = [r.session_id for r in records if r.pattern == RELEASE]
    # Those near the incident go with its alert-dense period; the others are kept.
    near = {sid for sid in release if why[sid] == Reason.ALERT_DENSE}
    assert 0 < len(near) < 10
    assert all(why[sid] == Reason.KEPT for sid in release if sid not in near)
    assert counts["kept_as_recurring"] == 100 - len(near)
    by_pattern = {
        r.pattern: int(why) for r, why in zip(records, result.reasons.tolist(), strict=False)
    }
    assert by_pattern[("rare.fault",)] == Reason.ALERTED
    assert by_pattern[("db.query.timeout",)] in (Reason.ALERTED, Reason.ALERT_DENSE)
    assert result.reasons[-1] == Reason.ALERTED  # a release window with a fault in it
    off = filter_windows(WindowColumns.of(records), WindowFilterSettings(adopt_recurring=False))
    assert off.counts()["kept_as_recurring"] == 0 and off.counts()["alerted"] >= 100


def test_the_end_marker_is_adopted_only_beside_a_releases_events() -> None:
    # Every day, 5% of the windows alert on their end alone (cut-short sessions, every hour)
    # and the release's windows alert on its events and the end.
    def day(d: int) -> list[WindowRecord]:
        base = D0 + d * DAY_MS
        out = []
        for i in range(1_000):
            t = base + i * (DAY_MS // 1_000)
            pattern: tuple[str, ...] | None = None
            if i % 20 == 0:
                pattern = (*RELEASE, END_EVENT)
            elif i % 20 == 1:
                pattern = (END_EVENT,)
            out.append(WindowRecord(f"d{d}-{i}", t, t + 10, 9.0 if pattern else 1.0,
                                    pattern is not None, pattern))  # fmt: skip
        return out

    records = [r for d in range(2) for r in day(d)]
    w = WindowColumns.of(records)
    assert END_EVENT not in recurring_events(w, WindowFilterSettings(adopt_along_share=1.0))
    result = filter_windows(w, WindowFilterSettings(adopt_along_share=0.5))
    assert END_EVENT in result.recurring  # beside the release half the time: adopted with it
    why = {r.session_id: int(x) for r, x in zip(records, result.reasons.tolist(), strict=True)}
    cut_short = [r.session_id for r in records if r.pattern == (END_EVENT,)]
    released = [r.session_id for r in records if r.pattern and len(r.pattern) == 3]
    assert cut_short and all(why[sid] == Reason.ALERTED for sid in cut_short)
    assert released and all(why[sid] == Reason.KEPT for sid in released)
    assert not recurs((END_EVENT,), frozenset({END_EVENT})) and not recurs((), frozenset())
    assert recurs((RELEASE[0], END_EVENT), frozenset({RELEASE[0], END_EVENT}))


def test_an_operators_anomalous_verdict_blocks_its_events() -> None:
    w = _days(2)
    fb = [Feedback(verdict="anomalous", session_id="d1-20")]  # one release window
    result = filter_windows(w, WindowFilterSettings(), fb)
    assert result.recurring == () and result.counts()["kept_as_recurring"] == 0


def test_events_given_by_the_caller_are_used_as_they_are() -> None:
    s = WindowFilterSettings(adopt_events=("rare.fault",))
    result = filter_windows(_days(1), s)
    assert result.recurring == ("rare.fault",)
    assert result.counts()["kept_as_recurring"] == 5


def test_settings_refuse_bad_adoption_values() -> None:
    for bad in ({"adopt_min_share": 0.0}, {"adopt_min_hours": 25}, {"adopt_min_days": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WindowFilterSettings(**bad)  # type: ignore[arg-type]


def _score(w: Window, nll: float, threshold: float = 5.0) -> Score:
    surprising = (SurprisingEvent(1, "b", nll, (Expected("x", 0.9),)),)
    return Score.for_window(
        w, model_version="v1", score=nll, threshold=threshold, surprising=surprising, scored_at=0
    )


def test_the_archive_records_every_windows_threshold_and_alerted_ones_pattern() -> None:
    w = Window.build("s1", 0, ("a", "b", "c"), D0, D0 + 5, 0, 1, 3)
    alerted = Session.decode(session_line(w, _score(w, 9.0)))
    quiet = Session.decode(session_line(w, _score(w, 1.0)))
    assert alerted.alerted and alerted.pattern == ("b",)
    assert not quiet.alerted and quiet.pattern is None
    assert alerted.threshold == quiet.threshold == 5.0  # what the near-miss rule compares with
    assert b"pattern" not in session_line(w, _score(w, 1.0))


def _archive_day(tmp: Path, day: int) -> DayFile:
    sessions = [
        Session(
            r.session_id,
            ("a", "b"),
            r.start_ts,
            r.end_ts,
            None,
            r.score,
            r.alerted,
            True,
            r.pattern,
        )
        for r in _day(day)
    ]
    d = DAY0.replace(day=DAY0.day + day)
    path = tmp / daily_file_name(d)
    write_sessions(path, sessions)
    return DayFile(path, d)


def test_retrain_decides_over_its_days_and_counts_the_new_normal_as_normal(
    tmp_path: Path,
) -> None:
    scans = [scan_day(_archive_day(tmp_path, d), []) for d in range(2)]
    s = WindowFilterSettings()
    recurring = recurring_in(scans, s)
    assert recurring == frozenset(RELEASE)
    assert recurring_in(scans[:1], s) == frozenset()
    assert recurring_in(scans, WindowFilterSettings(adopt_recurring=False)) == frozenset()
    watched = [w for x in scans for w in x.watched]
    assert len(watched) == 2 * 83
    still = [w for w in watched if not w.recurs(recurring)]
    assert len(still) == 2 * 33  # the incident and the rare fault stay watched
    held = read_held_out(scans[1].count.path, still, recurring)
    assert sum(bool(a) for a in held.alerted) == 33
    assert sum(a is False for a in held.alerted) == 967
    assert not any(held.confirmed)
    sessions = [x.session_id for x in read_sessions(scans[1].count.path)]
    marked = [
        Feedback("anomalous", session_id=sessions[0]),
        Feedback("normal", session_id=sessions[1]),
    ]
    held = read_held_out(scans[1].count.path, still, recurring, marked)
    assert held.confirmed[:2] == [True, False] and sum(held.confirmed) == 1


def test_train_argv_passes_the_recurring_events_as_one_list(tmp_path: Path) -> None:
    s = RetrainSettings(
        archive_dir=tmp_path,
        registry=tmp_path,
        candidate=CandidateSettings(),
        window_filter=WindowFilterSettings(adopt_events=RELEASE),
    )
    plan = DayPlan((DAY0,), DAY0, (tmp_path / "a.jsonl",), tmp_path / "b.jsonl")
    argv = train_argv(s, plan, tmp_path / "out", None)
    i = argv.index("--adopt-events")
    assert argv[i + 1] == ",".join(RELEASE)
    bare = RetrainSettings(archive_dir=tmp_path, registry=tmp_path)
    assert "--adopt-events" not in train_argv(bare, plan, tmp_path / "out", None)


def test_an_event_that_alerts_only_beside_the_release_is_adopted_with_it() -> None:
    records: list[WindowRecord] = []
    for day in range(2):
        for r in _day(day):
            i = int(r.session_id.split("-")[1])
            if r.pattern == RELEASE and i % 80 == 0:  # too few to recur on their own
                r = replace(r, pattern=(*RELEASE, "manager.cache.put"))
            records.append(r)
    lone = WindowRecord("lone", D0 + 5 * HOUR, D0 + 5 * HOUR, 9.0, True, ("manager.cache.put",))
    w = WindowColumns.of([*records, lone])
    s = WindowFilterSettings()
    assert recurring_events(w, s) == frozenset({*RELEASE, "manager.cache.put"})
    # Beside the release 26 of 27 times: not enough at 0.99.
    assert recurring_events(w, replace(s, adopt_along_share=0.99)) == frozenset(RELEASE)
    # The rare fault alerts beside the release once: too few windows to ride along.
    odd = replace(records[0], pattern=(*RELEASE, "rare.fault"))
    assert "rare.fault" not in recurring_events(WindowColumns.of([odd, *records[1:]]), s)


def test_adopted_windows_are_not_near_misses() -> None:
    records = [replace(r, threshold=5.0) for d in range(2) for r in _day(d)]
    result = filter_windows(WindowColumns.of(records), WindowFilterSettings())
    release = [i for i, r in enumerate(records) if r.pattern == RELEASE]
    assert result.counts()["near_miss"] == 0
    assert sum(result.reasons[i] == Reason.KEPT for i in release) == result.kept_as_recurring
    assert result.kept_as_recurring >= 90
