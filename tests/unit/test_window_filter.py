"""The training-window filter (trainer/window_filter.py): each rule, their order, the
operator's verdicts, and how the trainer applies it to daily files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.daily_files import write_sessions
from schemas.feedback import Feedback
from schemas.sessions import Session
from trainer.dataset import DataSelection, load_training_data, window_columns
from trainer.token_cache import TokenCache
from trainer.window_filter import (
    NO_FILTER,
    REASONS,
    Reason,
    WindowColumns,
    WindowFilterSettings,
    WindowRecord,
    alert_dense_spans,
    filter_windows,
)

T0 = 1_796_000_400_000  # 01:00 UTC, on a 5-minute boundary
MIN = 60_000
OFF = WindowFilterSettings(exclude_alerted=False, exclude_alert_dense=False)


def _w(
    sid: str, minute: float, alerted: bool | None = False, score: float | None = 1.0
) -> WindowRecord:
    t = T0 + int(minute * MIN)
    return WindowRecord(sid, t, t + 1_000, score, alerted)


def _reasons(
    records: list[WindowRecord], s: WindowFilterSettings, fb: Sequence[Feedback] = ()
) -> list[int]:
    return filter_windows(WindowColumns.of(records), s, fb).reasons.tolist()


def test_nothing_is_dropped_with_every_rule_off() -> None:
    records = [_w(f"s{i}", i, alerted=i % 2 == 0, score=float(i)) for i in range(10)]
    result = filter_windows(WindowColumns.of(records), NO_FILTER)
    assert result.keep.all()
    assert result.counts() == dict.fromkeys(REASONS, 0) | {
        "kept_by_feedback": 0,
        "kept_as_recurring": 0,
        "not_vouched": 0,
        "windows": 10,
    }


def test_alerted_windows_are_dropped() -> None:
    records = [_w("a", 0, True), _w("b", 300, False), _w("c", 600, None)]
    assert _reasons(records, WindowFilterSettings(exclude_alert_dense=False)) == [
        Reason.ALERTED,
        Reason.KEPT,
        Reason.KEPT,
    ]


def test_score_quantile_drops_the_top_scores_but_not_validation_or_unscored_windows() -> None:
    records = [_w(f"s{i}", i, score=float(i)) for i in range(100)] + [_w("u", 5, score=None)]
    s = WindowFilterSettings(
        exclude_alerted=False, exclude_alert_dense=False, exclude_score_quantile=0.95
    )
    result = filter_windows(WindowColumns.of(records), s)
    assert result.score_cut == pytest.approx(np.quantile(np.arange(100.0), 0.95))
    dropped = [r.session_id for r, k in zip(records, result.keep, strict=True) if not k]
    assert dropped == ["s95", "s96", "s97", "s98", "s99"]
    held = np.zeros(len(records), dtype=bool)
    held[97] = True  # the validation slice keeps its top scores, for the threshold
    again = filter_windows(WindowColumns.of(records), s, held_out=held)
    assert again.counts()["score_quantile"] == 4 and again.keep[97]
    both = replace(s, score_quantile_validation=True)
    assert (
        filter_windows(WindowColumns.of(records), both, held_out=held).counts()["score_quantile"]
        == 5
    )


def test_ties_at_the_quantile_are_kept() -> None:
    records = [_w(f"s{i}", i, score=0.0) for i in range(99)] + [_w("hi", 99, score=9.0)]
    s = WindowFilterSettings(
        exclude_alerted=False, exclude_alert_dense=False, exclude_score_quantile=0.5
    )
    assert sum(_reasons(records, s)) == Reason.SCORE_QUANTILE  # only "hi"


def _burst_day() -> list[WindowRecord]:
    """A day of one window a minute with an alert every 100 minutes, and a burst of
    alerts from minute 500 to 504."""
    out = [_w(f"n{i}", i, alerted=i % 100 == 0) for i in range(1200)]
    out += [_w(f"b{i}", 500 + i * 0.5, alerted=True) for i in range(10)]
    return out


def test_an_alert_burst_is_dense_and_its_neighbours_go_with_it() -> None:
    records = _burst_day()
    s = WindowFilterSettings(
        exclude_alerted=False,
        dense_bucket_minutes=5,
        dense_guard_minutes=10,
        dense_factor=5,
        dense_min_alerts=3,
    )
    spans = alert_dense_spans(WindowColumns.of(records), s)
    assert spans == ((T0 + 490 * MIN, T0 + 515 * MIN),)
    reasons = _reasons(records, s)
    dense = {r.session_id for r, why in zip(records, reasons, strict=True) if why}
    # The burst's buckets (500-505) and 10 minutes either side.
    assert dense == {f"n{i}" for i in range(490, 515)} | {f"b{i}" for i in range(10)}
    # The lone alerts of the day are no burst; a higher minimum makes the burst none either.
    strict = WindowFilterSettings(exclude_alerted=False, dense_min_alerts=12)  # the bucket holds 11
    assert alert_dense_spans(WindowColumns.of(records), strict) == ()


def test_without_times_or_alerts_no_period_is_dense() -> None:
    records = [WindowRecord(f"s{i}", score=1.0, alerted=True) for i in range(20)]
    records += [_w(f"t{i}", i * 0.1, alerted=None) for i in range(20)]
    s = WindowFilterSettings(exclude_alerted=False)
    assert alert_dense_spans(WindowColumns.of(records), s) == ()
    assert _reasons(records, s) == [0] * 40


def test_feedback_drops_marked_sessions_and_spans_and_keeps_acknowledged_ones() -> None:
    records = [
        _w("marked", 0),
        _w("in-span", 100),
        _w("ack", 200, alerted=True),
        _w("ack-in-span", 100.5, alerted=True),
        _w("plain-alert", 300, alerted=True),
        _w("other", 400),
    ]
    fb = [
        Feedback("anomalous", session_id="marked"),
        Feedback("anomalous", start_ms=T0 + 99 * MIN, end_ms=T0 + 102 * MIN),
        Feedback("normal", session_id="ack"),
        Feedback("normal", session_id="ack-in-span"),  # the session's verdict beats the span's
        # A normal span narrowed to a service keeps nothing: the archive has no services.
        Feedback("normal", start_ms=T0 + 299 * MIN, end_ms=T0 + 301 * MIN, service="gw"),
    ]
    s = WindowFilterSettings(exclude_alert_dense=False)
    result = filter_windows(WindowColumns.of(records), s, fb)
    assert result.reasons.tolist() == [
        Reason.FEEDBACK_ANOMALOUS,
        Reason.FEEDBACK_ANOMALOUS,
        Reason.KEPT,
        Reason.KEPT,
        Reason.ALERTED,
        Reason.KEPT,
    ]
    c = result.counts()
    assert (c["feedback_anomalous"], c["alerted"], c["kept_by_feedback"]) == (2, 1, 2)


def test_a_later_verdict_on_a_session_overrides_an_earlier_one() -> None:
    records = [_w("x", 0, alerted=True)]
    fb = [Feedback("normal", session_id="x"), Feedback("anomalous", session_id="x")]
    assert _reasons(records, OFF, fb) == [Reason.FEEDBACK_ANOMALOUS]
    assert _reasons(records, WindowFilterSettings(), fb[::-1]) == [Reason.KEPT]


def test_a_window_counts_under_the_first_reason_in_order() -> None:
    records = _burst_day()
    records[505] = _w("n505", 505, alerted=True, score=99.0)  # alerted, dense and high
    s = WindowFilterSettings(exclude_score_quantile=0.99)
    fb = [Feedback("anomalous", session_id="b3")]
    result = filter_windows(WindowColumns.of(records), s, fb)
    why = dict(zip((r.session_id for r in records), result.reasons.tolist(), strict=True))
    assert why["b3"] == Reason.FEEDBACK_ANOMALOUS
    assert why["n505"] == Reason.ALERTED and why["b4"] == Reason.ALERTED
    assert why["n495"] == Reason.ALERT_DENSE
    c = result.counts()
    assert sum(c[r] for r in REASONS) == c["windows"] - int(result.keep.sum())


def test_settings_refuse_bad_values() -> None:
    for bad in (
        {"exclude_score_quantile": 1.0},
        {"exclude_score_quantile": -0.1},
        {"dense_bucket_minutes": 0},
        {"dense_guard_minutes": -1},
        {"dense_factor": 0.5},
        {"dense_min_alerts": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WindowFilterSettings(**bad)  # type: ignore[arg-type]


_records = st.lists(
    st.builds(
        WindowRecord,
        session_id=st.sampled_from([f"s{i}" for i in range(12)]),
        start_ts=st.one_of(st.none(), st.integers(T0, T0 + 3 * 3_600_000)),
        end_ts=st.none(),
        score=st.one_of(st.none(), st.floats(0, 20)),
        alerted=st.one_of(st.none(), st.booleans()),
    ),
    max_size=60,
)
_feedback = st.lists(
    st.one_of(
        st.builds(
            Feedback,
            verdict=st.sampled_from(["anomalous", "normal"]),
            session_id=st.sampled_from([f"s{i}" for i in range(12)]),
        ),
        st.integers(T0, T0 + 3 * 3_600_000).flatmap(
            lambda a: st.builds(
                Feedback,
                verdict=st.sampled_from(["anomalous", "normal"]),
                start_ms=st.just(a),
                end_ms=st.integers(a + 1, a + 3_600_000),
            )
        ),
    ),
    max_size=5,
)
_settings = st.builds(
    WindowFilterSettings,
    exclude_alerted=st.booleans(),
    exclude_score_quantile=st.sampled_from([0.0, 0.5, 0.9]),
    score_quantile_validation=st.booleans(),
    exclude_alert_dense=st.booleans(),
    dense_bucket_minutes=st.sampled_from([1.0, 5.0]),
    dense_factor=st.sampled_from([1.0, 2.0]),
    dense_min_alerts=st.integers(1, 3),
    dense_guard_minutes=st.sampled_from([0.0, 5.0]),
)


@settings(max_examples=200, deadline=None)
@given(_records, _feedback, _settings)
def test_acknowledged_sessions_are_never_dropped_and_the_counts_add_up(
    records: list[WindowRecord], fb: list[Feedback], s: WindowFilterSettings
) -> None:
    result = filter_windows(WindowColumns.of(records), s, fb)
    last = {f.session_id: f.verdict for f in fb if f.session_id is not None}
    for r, keep in zip(records, result.keep, strict=True):
        if last.get(r.session_id) == "normal":
            assert keep
        if last.get(r.session_id) == "anomalous":
            assert not keep
    c = result.counts()
    assert c["windows"] == len(records)
    assert sum(c[r] for r in REASONS) == len(records) - int(result.keep.sum())
    # Turning every rule off drops only what the operator marked.
    bare = filter_windows(WindowColumns.of(records), NO_FILTER, fb)
    assert set(np.flatnonzero(~bare.keep)) <= set(np.flatnonzero(~result.keep))


def _day(path: Path, sessions: list[Session]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_sessions(path, sessions)
    return path


def test_window_columns_give_each_cut_piece_its_lines_fields(tmp_path: Path) -> None:
    p = _day(
        tmp_path / "preprocessed_logs_2026-12-01.jsonl",
        [
            Session("a", ("x",) * 3, start_ts=T0, end_ts=T0 + 5, score=2.0, alerted=True),
            Session("b", ("x",) * 600, alerted=False),
            Session("c", ("x",) * 2),
        ],
    )
    cols = window_columns(p, 4)
    assert cols.session_ids == ("a", "b", "b", "c")
    assert cols.alerted.tolist() == [1, 0, 0, -1]
    assert cols.start_ts.tolist() == [T0, -1, -1, -1]
    assert np.isnan(cols.score[1:]).all() and cols.score[0] == 2.0


def test_the_trainer_leaves_filtered_windows_out_of_both_slices(tmp_path: Path) -> None:
    sessions = [
        Session(
            f"s{i}",
            ("a", "b", "c"),
            start_ts=T0 + i * MIN,
            end_ts=T0 + i * MIN + 10,
            score=float(i % 7),
            alerted=i % 10 == 0,
        )
        for i in range(200)
    ]
    path = _day(tmp_path / "preprocessed_logs_2026-12-01.jsonl", sessions)
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text(
        '{"verdict": "normal", "session_id": "s20"}\n'
        '{"verdict": "anomalous", "session_id": "s21"}\n'
    )
    s = WindowFilterSettings(exclude_alert_dense=False, feedback=feedback)
    sel = DataSelection((path,))
    data = load_training_data(sel, TokenCache(tmp_path / "cache"), 0.3, 100, window_filter=s)
    used = {int(i) for i in np.concatenate([data.train_idx, data.val_idx])}
    dropped = {i for i in range(200) if (i % 10 == 0 and i != 20) or i == 21}
    assert used == set(range(200)) - dropped
    assert data.excluded == {
        "feedback_anomalous": 1,
        "alerted": 19,
        "alert_dense": 0,
        "near_miss": 0,
        "score_quantile": 0,
        "kept_by_feedback": 1,
        "kept_as_recurring": 0,
        "not_vouched": 0,
        "windows": 200,
    }
    # Plain session files (no score, no alerts) train whole under the same filter.
    plain = _day(
        tmp_path / "preprocessed_logs_2026-12-02.jsonl",
        [Session(f"p{i}", ("a", "b")) for i in range(50)],
    )
    whole = load_training_data(
        DataSelection((plain,)),
        TokenCache(tmp_path / "cache"),
        0.3,
        100,
        window_filter=WindowFilterSettings(exclude_score_quantile=0.9),
    )
    assert len(whole.train_idx) + len(whole.val_idx) == 50
    assert whole.excluded is not None and whole.excluded["windows"] == 50


def test_near_misses_go_from_both_slices_unless_the_rule_is_off() -> None:
    t0 = T0
    records = [
        WindowRecord("far", t0, t0, 2.0, False, threshold=7.0),
        WindowRecord("near", t0, t0, 6.5, False, threshold=7.0),  # >= 0.9 x 7.0
        WindowRecord("over", t0, t0, 9.0, True, ("x",), 7.0),
        WindowRecord("no-threshold", t0, t0, 6.9, False),
    ]
    s = WindowFilterSettings(exclude_alert_dense=False, near_miss_max_share=1.0)
    held = np.ones(len(records), dtype=bool)  # all validation: the rule spares none
    reasons = filter_windows(WindowColumns.of(records), s, held_out=held).reasons.tolist()
    assert reasons == [Reason.KEPT, Reason.NEAR_MISS, Reason.ALERTED, Reason.KEPT]
    off = replace(s, exclude_near_miss=0.0)
    assert filter_windows(WindowColumns.of(records), off).reasons.tolist()[1] == Reason.KEPT
    looser = replace(s, exclude_near_miss=0.95)
    assert filter_windows(WindowColumns.of(records), looser).reasons.tolist()[1] == Reason.KEPT
    with pytest.raises(ValueError, match="exclude_near_miss"):
        WindowFilterSettings(exclude_near_miss=1.5)


def test_windows_scored_near_their_threshold_train_but_vouch_for_nothing() -> None:
    records = [
        WindowRecord("low", T0, T0, 1.0, False, threshold=7.0),
        WindowRecord("high", T0, T0, 4.0, False, threshold=7.0),  # >= 0.5 x 7.0
        WindowRecord("plain", T0, T0),  # no archived score: vouches as before
    ]
    s = WindowFilterSettings(exclude_alert_dense=False, unvouched_max_share=1.0)
    result = filter_windows(WindowColumns.of(records), s)
    assert result.keep.all()
    assert result.vouched is not None and result.vouched.tolist() == [True, False, True]
    assert result.counts()["not_vouched"] == 1
    off = filter_windows(WindowColumns.of(records), replace(s, known_max_score_ratio=0.0))
    assert off.vouched is None and off.counts()["not_vouched"] == 0


def test_the_trainer_records_as_known_only_the_windows_that_vouch(tmp_path: Path) -> None:
    sessions = [
        Session(f"s{i}", ("a", "b"), T0 + i * MIN, T0 + i * MIN, score=float(i % 8), threshold=8.0)
        for i in range(100)
    ]
    path = _day(tmp_path / "preprocessed_logs_2026-12-01.jsonl", sessions)
    data = load_training_data(
        DataSelection((path,)), TokenCache(tmp_path / "cache"), 0.2, 100,
        window_filter=WindowFilterSettings(unvouched_max_share=1.0, near_miss_max_share=0.0),
    )  # fmt: skip
    known = set(data.known_idx().tolist())
    assert known and known < set(data.train_idx.tolist())
    assert all(i % 8 < 4 for i in known)  # scores 4..7 are >= 0.5 x 8
    assert all(i in known for i in data.train_idx.tolist() if i % 8 < 4)


def test_a_poor_serving_model_cannot_make_most_windows_near_misses() -> None:
    # Every window within 0.9 of its threshold: only the closest 1% go, then 5% do not vouch.
    records = [
        WindowRecord(f"s{i}", T0, T0, 6.3 + i * 0.006, False, threshold=7.0) for i in range(100)
    ]
    result = filter_windows(WindowColumns.of(records), WindowFilterSettings())
    assert result.reasons.tolist() == [0] * 99 + [Reason.NEAR_MISS]
    assert result.vouched is not None
    # 99 is left out, so of those kept the next closest five vouch for nothing.
    assert np.flatnonzero(~result.vouched).tolist() == [94, 95, 96, 97, 98]
    assert result.counts()["not_vouched"] == 5


def test_alerted_windows_take_no_room_from_the_near_misses() -> None:
    records = [WindowRecord(f"a{i}", T0, T0, 14.0, True, ("x",), 7.0) for i in range(5)]
    records += [
        WindowRecord(f"n{i}", T0, T0, 6.5 + 0.1 * i, False, threshold=7.0) for i in range(3)
    ]
    records += [WindowRecord(f"q{i}", T0, T0, 1.0, False, threshold=7.0) for i in range(192)]
    s = WindowFilterSettings(exclude_alert_dense=False, near_miss_max_share=0.01)  # 2 of 200
    result = filter_windows(WindowColumns.of(records), s)
    near = [
        r.session_id
        for r, why in zip(records, result.reasons, strict=True)
        if why == Reason.NEAR_MISS
    ]
    assert near == ["n1", "n2"]  # the two closest to the threshold; n0 stays
    assert result.counts()["alerted"] == 5
