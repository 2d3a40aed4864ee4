"""The simulator's drift: a new order-manager version rolls out from a day, over a ramp."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest

from schemas.daily_files import read_sessions
from stream.cli import main
from stream.devtools.simulate import SimSession, generate_sessions
from stream.devtools.simulate.drift import DAY_MS, NEW_VERSION_IDS, RENAMED, Drift
from stream.devtools.simulate.outputs import day_sessions
from stream.devtools.simulate.settings import DriftSettings, TrafficSettings
from stream.devtools.simulate.templates import TEMPLATE_OF

DRIFT_DAY = date(2025, 3, 4)
TRAFFIC = TrafficSettings(anomaly_rate=0.05, seed=11)


def _drift(ramp_days: int = 1) -> Drift:
    d = DriftSettings(drift_date=DRIFT_DAY.isoformat(), drift_ramp_days=ramp_days).drift()
    assert d is not None
    return d


def _new_ids(sessions: Sequence[SimSession]) -> set[str]:
    return {e.event_id for s in sessions for e in s.events} & NEW_VERSION_IDS


def _is_order_create(s: SimSession) -> bool:
    ids = {e.event_id for e in s.events}
    return bool(ids & {"order.create.start", "order.checkout.start"})


def test_new_ids_appear_only_from_the_drift_day() -> None:
    drift = _drift()
    before = day_sessions(TRAFFIC, DRIFT_DAY - timedelta(days=1), 1_500, drift)
    after = day_sessions(TRAFFIC, DRIFT_DAY, 1_500, drift)
    assert not _new_ids(before)
    assert _new_ids(after) == NEW_VERSION_IDS
    # From the drift on, the new version serves every order creation: the old ids are gone.
    assert not {e.event_id for s in after for e in s.events} & set(RENAMED)
    # Each new id is a template the traffic can word, in more than one phrasing.
    assert all(len(TEMPLATE_OF[i].texts) >= 2 for i in NEW_VERSION_IDS)


def test_labels_and_sessions_are_unchanged_by_a_drift() -> None:
    plain = day_sessions(TRAFFIC, DRIFT_DAY, 1_500)
    drifted = day_sessions(TRAFFIC, DRIFT_DAY, 1_500, _drift())
    assert [s.session_id for s in plain] == [s.session_id for s in drifted]
    assert [s.anomaly for s in plain] == [s.anomaly for s in drifted]
    assert [s.label for s in plain] == [s.label for s in drifted]
    assert 0 < sum(s.label for s in drifted) < len(drifted)
    changed = [
        (a, b)
        for a, b in zip(plain, drifted, strict=True)
        if [e.event_id for e in a.events] != [e.event_id for e in b.events]
    ]
    # Only order-manager's order creations change, and those all do.
    assert changed and all(a.session_id.startswith("req-") for a, _ in changed)
    assert all(any(e.service == "order-manager" for e in b.events) for _, b in changed)
    creations = [b for b in drifted if _is_order_create(b)]
    assert len(changed) == len(creations)
    for a, b in changed:
        # The same steps renamed, plus the new order cached after its commit.
        old = [RENAMED.get(e.event_id, e.event_id) for e in a.events]
        new = [e.event_id for e in b.events]
        if "db.tx.commit" in old:
            i = old.index("db.tx.commit") + 1
            old.insert(i, "manager.cache.put")
        assert new == old
        assert b.label == a.label


def test_the_ramp_rolls_out_a_growing_share() -> None:
    drift = _drift(ramp_days=4)
    shares = []
    for k in range(6):
        day = day_sessions(TRAFFIC, DRIFT_DAY + timedelta(days=k), 2_000, drift)
        creations = [s for s in day if _is_order_create(s)]
        new = [s for s in creations if _new_ids([s])]
        shares.append(len(new) / len(creations))
    assert shares[0] == pytest.approx(0.25, abs=0.12)
    assert shares[1] == pytest.approx(0.5, abs=0.12)
    assert shares[3] == shares[4] == shares[5] == 1.0
    assert drift.share(drift.start_ms - 1) == 0.0 and drift.share(drift.start_ms + DAY_MS) == 0.5


def test_a_topics_traffic_drifts_at_its_event_time() -> None:
    drift = _drift()
    start = drift.start_ms - 3_600_000  # an hour before midnight, a session a second
    sessions = list(generate_sessions(random.Random(3), 7_200, start, 1_000.0, drift=drift))
    early = [s for s in sessions if s.events[0].ts < drift.start_ms]
    late = [s for s in sessions if s.events[0].ts >= drift.start_ms]
    assert early and late
    assert not _new_ids(early) and _new_ids(late) == NEW_VERSION_IDS


def test_cli_drift_date_applies_to_daily_files(tmp_path: Path) -> None:
    days = tmp_path / "days"
    argv = ["simulate", "--days-dir", str(days), "--days", "3", "--sessions-per-day", "800"]
    argv += ["--start-date", (DRIFT_DAY - timedelta(days=1)).isoformat()]
    argv += ["--drift-date", DRIFT_DAY.isoformat(), "--anomaly-rate", "0.05"]
    assert main(argv) == 0
    files = sorted(days.glob("preprocessed_logs_*.jsonl"))
    seen = [{e for s in read_sessions(f) for e in s.events} & NEW_VERSION_IDS for f in files]
    assert seen == [set(), NEW_VERSION_IDS, NEW_VERSION_IDS]
    assert all({s.label for s in read_sessions(f)} == {0, 1} for f in files)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--drift-date", "soon", "drift_date must be YYYY-MM-DD"),
        ("--drift-ramp-days", "0", "drift_ramp_days must be >= 1"),
    ],
)
def test_cli_refuses_a_bad_drift(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--days-dir", str(tmp_path), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("logad: error:") and message in err[-1]
