"""`logad retrain` end to end, in this process, on a small archive with lone alerts, an
alert burst, a high-scoring window and an operator's feedback file: the decision record
counts what the training filter left out, and the candidate bundle shows that those windows
were not trained on (a training window's own event mix scores 0 under the bundle's
known-mixes rule; any other mix with an event seen once scores far above)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.daily_files import DONE_SUFFIX, daily_file_name, write_sessions
from schemas.runtime.settings import build_settings
from schemas.sessions import Session
from stream.jobs.retrain import RetrainSettings, run_retrain
from trainer.dataset import is_validation
from trainer.scoring.scorer import WindowScorer
from trainer.token_cache import session_hash

DAY1, DAY2 = date(2026, 12, 1), date(2026, 12, 2)
MIN = 60_000
VAL_FRACTION = 0.2
FLOWS = (("a", "b", "c", "d"), ("a", "c", "e"), ("f", "b", "d", "g"))
_ids = itertools.count()


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _sid(prefix: str) -> str:
    """A fresh session id in the training slice of the trainer's hash split (the score
    quantile leaves validation windows in)."""
    while True:
        sid = f"{prefix}-{next(_ids)}"
        if not is_validation(np.array([session_hash(sid)], np.uint64), VAL_FRACTION)[0]:
            return sid


def _window(
    sid: str, events: tuple[str, ...], t: int, *, score: float = 1.0, alerted: bool = False
) -> Session:
    return Session(sid, events, start_ts=t, end_ts=t + 2_000, score=score, alerted=alerted)


def _archive(archive: Path) -> tuple[dict[str, Session], int]:
    """Day 1 (trained on) and day 2 (held out); the named windows of day 1 by role, and its
    window count."""
    t0 = _day_ms(DAY1)
    day1 = [
        _window(f"n{i}", FLOWS[i % 3], t0 + i * 4 * MIN, score=1.0 + (i % 5) / 10)
        for i in range(300)  # one window every 4 minutes, all day
    ]
    named = {
        "lone_alert": _window(_sid("lone"), ("a", "b", "x1", "d"), t0 + 101 * MIN, alerted=True),
        "high": _window(_sid("high"), ("a", "x2", "e"), t0 + 301 * MIN, score=9.0),
        "marked": _window(_sid("marked"), ("f", "x3", "d"), t0 + 501 * MIN),
        "in_span": _window(_sid("span"), ("a", "x4", "c"), t0 + 701 * MIN),
        "acknowledged": _window(_sid("ack"), ("a", "b", "x5", "d"), t0 + 901 * MIN, alerted=True),
        "near_burst": _window(_sid("near"), ("f", "x6", "g"), t0 + 1_103 * MIN),
    }
    burst = [  # six alerts in five minutes, from 18:20
        _window(f"burst{i}", ("a", f"y{i}", "c"), t0 + 1_100 * MIN + i * 40_000, alerted=True)
        for i in range(6)
    ]
    day1 += [*named.values(), *burst]
    t1 = _day_ms(DAY2)
    day2 = [_window(f"h{i}", FLOWS[i % 3], t1 + i * 5 * MIN) for i in range(120)]
    for day, sessions in ((DAY1, day1), (DAY2, day2)):
        path = archive / daily_file_name(day)
        write_sessions(path, sorted(sessions, key=lambda s: s.start_ts or 0))
        path.with_name(path.name + DONE_SUFFIX).touch()
    return named, len(day1)


@pytest.mark.slow
def test_retrain_records_what_it_left_out_and_never_trains_on_it(tmp_path: Path) -> None:
    archive, registry = tmp_path / "archive", tmp_path / "registry"
    archive.mkdir()
    named, windows = _archive(archive)
    t0 = _day_ms(DAY1)
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(
        "\n".join(
            [
                f'{{"verdict": "anomalous", "session_id": "{named["marked"].session_id}"}}',
                # 11:41 to 11:42 UTC holds the in_span window and no other.
                '{"verdict": "anomalous", "start": "2026-12-01T11:41:00Z",'
                ' "end": "2026-12-01T11:42:00Z", "note": "incident 4711"}',
                f'{{"verdict": "normal", "session_id": "{named["acknowledged"].session_id}"}}',
            ]
        )
        + "\n"
    )
    assert named["in_span"].start_ts == t0 + 701 * MIN
    train_config = tmp_path / "train.toml"
    train_config.write_text(
        f"val_fraction = {VAL_FRACTION}\nnum_workers = 0\ncheckpoint_every_steps = 0\n"
        f'token_cache_dir = "{tmp_path / "cache"}"\nthreshold_quantile = 0.9\n'
    )
    s = build_settings(
        RetrainSettings,
        flags={
            "archive_dir": str(archive),
            "registry": str(registry),
            "feedback": str(feedback),
            "exclude_score_quantile": "0.99",
            "dense_guard_minutes": "5",
            "train_config": str(train_config),
            "preset": "tiny",
            "device": "cpu",
            "cpu_threads": "1",
            "lr": "1e-3",
            "tokens_per_batch": "1024",
            # Days of a few hundred sessions: below the cron's minimums, which are not
            # what this test is about.
            "min_sessions": "50",
            "min_holdout_windows": "10",
            "min_steps": "20",
        },
        environ={},
    )
    outcome = run_retrain(s, datetime(2026, 12, 3, 2, tzinfo=UTC))

    record = orjson.loads(outcome.record_path.read_bytes())
    # The burst's bucket (18:20-18:25) is dense: with 5 minutes either side, its six
    # alerts (counted as alerted, the earlier reason), near_burst and the regular windows
    # of 18:16, 18:20, 18:24 and 18:28 go. The 0.99 quantile of the scores is 1.4, the
    # regular windows' highest, so only `high` is above it.
    excluded = record["excluded"]
    assert excluded == {
        "feedback_anomalous": 2,  # marked and in_span
        "alerted": 7,  # lone_alert and the burst's six
        "alert_dense": 5,
        "near_miss": 0,
        "score_quantile": 1,
        "kept_by_feedback": 1,
        "kept_as_recurring": 0,
        "not_vouched": 0,
        "windows": windows,
    }
    assert record["action"] == "promoted" and record["train_days"] == [DAY1.isoformat()]

    bundle = registry / record["candidate"]["version"]
    manifest = orjson.loads((bundle / "manifest.json").read_bytes())
    assert manifest["metrics"]["excluded"] == excluded
    scorer = WindowScorer.from_bundle(bundle, "cpu")
    roles = list(named)
    scores = [r.score for r in scorer.score_events([named[k].events for k in roles])]
    by_role = dict(zip(roles, scores, strict=True))
    # The acknowledged false alarm was trained on; every window the filter left out was not.
    assert by_role.pop("acknowledged") == 0.0
    assert all(v > 0 for v in by_role.values()), by_role
    # The regular flows were trained on.
    assert [r.score for r in scorer.score_events(FLOWS)] == [0.0, 0.0, 0.0]
