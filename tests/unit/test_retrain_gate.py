"""The retrain gate's pure parts: which days count, the binomial bound on false alerts,
the four criteria (all evaluated, every failure named), operator verdicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.feedback import Feedback
from stream.jobs.retrain_gate import (
    DayCount,
    DayPlan,
    Figures,
    GateRules,
    Minimums,
    Skip,
    decide,
    figures,
    is_watched,
    plan_days,
    verdict_of,
    wilson_upper,
)

MIN = Minimums(sessions=500, holdout_windows=200)


def _day(d: int, sessions: int, normal: int = 1000) -> DayCount:
    return DayCount(date(2026, 1, d), Path(f"/a/{d}.jsonl"), sessions, normal + 5, normal)


def test_the_newest_day_that_counts_is_held_out_and_stubs_are_left_out() -> None:
    days = [_day(1, 206), _day(2, 2000), _day(3, 300), _day(4, 2000), _day(5, 2000), _day(6, 40)]
    plan = plan_days(days, 7, MIN)
    assert isinstance(plan, DayPlan)
    assert plan.holdout == date(2026, 1, 5) and plan.holdout_file == Path("/a/5.jsonl")
    assert plan.train_days == (date(2026, 1, 2), date(2026, 1, 4))
    assert plan.train_files == (Path("/a/2.jsonl"), Path("/a/4.jsonl"))
    # The stub before the first training day is not in the plan's range; the others are.
    assert plan.left_out == (date(2026, 1, 3), date(2026, 1, 6))
    one = plan_days(days, 1, MIN)
    assert isinstance(one, DayPlan) and one.train_days == (date(2026, 1, 4),)


def test_too_little_data_is_a_skip_with_a_reason() -> None:
    stub = plan_days([_day(1, 206), _day(2, 2000)], 7, MIN)
    assert isinstance(stub, Skip)
    assert "at least 500 sessions" in stub.reason and "2026-01-01 (206)" in stub.reason
    assert isinstance(plan_days([], 7, MIN), Skip)
    few = plan_days([_day(1, 2000), _day(2, 2000, normal=21)], 7, MIN)
    assert isinstance(few, Skip)
    assert "2026-01-02 has 21 normal windows, fewer than 200" in few.reason


def test_wilson_upper_bound() -> None:
    # With no false alert the bound has a closed form: z^2 / (n + z^2).
    z2 = 1.6448536269514722**2
    assert wilson_upper(0, 2868, 0.95) == pytest.approx(z2 / (2868 + z2))
    assert wilson_upper(1, 2868, 0.5) == 1 / 2868  # confidence 0.5: the rate itself
    assert wilson_upper(0, 0, 0.95) == 1.0
    assert wilson_upper(3, 3, 0.95) == 1.0
    with pytest.raises(ValueError):
        wilson_upper(4, 3, 0.95)
    with pytest.raises(ValueError):
        wilson_upper(1, 3, 1.0)


@given(
    n=st.integers(1, 100_000),
    k_frac=st.floats(0, 1),
    c1=st.floats(0.5, 0.999),
    c2=st.floats(0.5, 0.999),
)
def test_the_bound_is_at_least_the_rate_and_grows_with_confidence(
    n: int, k_frac: float, c1: float, c2: float
) -> None:
    k = round(k_frac * n)
    lo, hi = sorted((c1, c2))
    assert k / n <= wilson_upper(k, n, lo) <= wilson_upper(k, n, hi) + 1e-12 <= 1 + 1e-12


def _figs(fa: int, n: int = 2868, **kw: object) -> Figures:
    return Figures("v", 1.0, n + 10, n, fa, fa / n, False, **kw)  # type: ignore[arg-type]


@given(
    n=st.integers(1, 50_000),
    k_frac=st.floats(0, 1),
    conf=st.floats(0.5, 0.999),
    watched=st.integers(0, 50),
    loss=st.none() | st.floats(0.01, 20),
)
def test_identical_figures_always_pass(
    n: int, k_frac: float, conf: float, watched: int, loss: float | None
) -> None:
    f = _figs(round(k_frac * n), n, watched=watched, kept=watched // 2, val_loss=loss)
    d = decide(f, f, GateRules(confidence=conf))
    assert d.promote and all(c.passed is not False for c in d.criteria)


def test_noise_on_a_rare_false_alert_does_not_refuse() -> None:
    """The operator's case: 2 false alerts against 1 out of 2,868 normal windows."""
    d = decide(_figs(2), _figs(1), GateRules())
    [rate] = [c for c in d.criteria if c.name == "false_alert_rate"]
    assert d.promote and rate.passed and rate.limit is not None
    assert 2 / 2868 < rate.limit < 6 / 2868
    assert "2 of 2868 normal windows vs current 1 of 2868" in rate.note
    assert not decide(_figs(10), _figs(1), GateRules()).promote  # a real difference
    # The old rule (no noise allowed) is confidence 0.5: then 2 vs 1 is refused.
    assert not decide(_figs(2), _figs(1), GateRules(confidence=0.5)).promote
    assert decide(_figs(2), _figs(1), GateRules(confidence=0.5, margin=0.001)).promote


def test_unlabelled_a_candidate_that_trades_alerts_one_for_one_passes() -> None:
    """Unlabelled, the current model's rate is about 0 by construction (normal means it did
    not alert): a candidate that quiets the stream's alerts may flag as many new windows."""
    cur = _figs(0, 1444)
    over = _figs(3, 1444, quieted=8)
    [rate] = [c for c in decide(over, cur, GateRules()).criteria if c.name == "false_alert_rate"]
    assert rate.limit is not None and rate.value is not None and rate.value > rate.limit
    assert rate.passed and "it flags 3 more of them and quiets 8 more" in rate.note
    assert decide(_figs(3, 1444, quieted=3), cur, GateRules()).promote
    assert not decide(_figs(3, 1444, quieted=2), cur, GateRules()).promote
    # What the current model quiets too is no trade.
    assert not decide(_figs(3, 1444, quieted=8), _figs(0, 1444, quieted=6), GateRules()).promote
    # With labels the false alerts are known, and no trade is allowed.
    labelled = replace(over, labelled=True)
    assert not decide(labelled, replace(cur, labelled=True), GateRules()).promote


def test_figures_count_the_stream_alerts_a_model_quiets() -> None:
    f = figures("v", 1.0, [0.5, 2.0, 0.5, 0.2], [None] * 4, [True, True, False, None])
    assert (f.quieted, f.false_alerts, f.normal_windows) == (1, 0, 2)


def test_a_window_operators_confirmed_is_neither_normal_nor_a_trade() -> None:
    scores, labels = [0.5, 2.0, 2.0, 0.2], [None] * 4
    alerted = [True, True, False, None]
    plain = figures("v", 1.0, scores, labels, alerted)
    assert (plain.quieted, plain.false_alerts, plain.normal_windows) == (1, 1, 2)
    sure = figures("v", 1.0, scores, labels, alerted, confirmed=[True, False, True, False])
    assert (sure.quieted, sure.false_alerts, sure.normal_windows) == (0, 0, 1)
    with pytest.raises(ValueError, match="confirmed"):
        figures("v", 1.0, scores, labels, alerted, confirmed=[True])


def test_every_criterion_is_evaluated_and_every_failure_named() -> None:
    cand = replace(_figs(40, watched=20, kept=10, val_loss=2.0), labelled=True, f1=0.5)
    cur = replace(_figs(1, watched=20, kept=20, val_loss=1.0), labelled=True, f1=0.8)
    d = decide(cand, cur, GateRules())
    assert not d.promote
    assert [(c.name, c.passed) for c in d.criteria] == [
        ("false_alert_rate", False),
        ("alerted_kept", False),
        ("val_loss", False),
        ("f1", False),
    ]
    head = d.reason.split(":")[0]
    assert head == "rejected (false-alert rate and alerted kept and val loss and F1 worse)"
    kept = d.criteria[1]
    assert (kept.value, kept.current, kept.limit) == (0.5, 1.0, 0.9)
    loss = d.criteria[2]
    assert (loss.value, loss.current, loss.limit) == (2.0, 1.0, pytest.approx(1.05))


def test_limits_of_kept_and_loss() -> None:
    rules = GateRules(kept_fraction=0.9, loss_tolerance=0.05)
    cur = _figs(1, watched=20, kept=20, val_loss=1.0)
    ok = decide(_figs(1, watched=20, kept=18, val_loss=1.05), cur, rules)
    assert ok.promote, ok.reason
    assert not decide(_figs(1, watched=20, kept=17, val_loss=1.0), cur, rules).promote
    assert not decide(_figs(1, watched=20, kept=20, val_loss=1.06), cur, rules).promote


def test_what_cannot_be_compared_says_so() -> None:
    d = decide(_figs(1), _figs(1), GateRules())
    notes = {c.name: (c.passed, c.note) for c in d.criteria}
    assert notes["alerted_kept"] == (
        None,
        "not compared: no window alerted on or confirmed anomalous",
    )
    assert notes["val_loss"] == (None, "not compared: no loss measured")
    assert notes["f1"] == (None, "not compared: no labels")
    zero = replace(_figs(1), labelled=True, f1=0.0)
    d = decide(zero, zero, GateRules())
    assert "F1 not compared: both F1 are 0" in d.reason and "0.0000 is no worse" not in d.reason
    with pytest.raises(ValueError, match="different watched windows"):
        decide(_figs(1, watched=3), _figs(1, watched=4), GateRules())


def test_figures_loss_is_over_normal_windows_and_kept_over_watched() -> None:
    f = figures(
        "v",
        1.0,
        [0.5, 2.0, 0.5],
        [None] * 3,
        [False, True, False],
        nll=[(3.0, 3), (100.0, 1), (1.0, 1)],
        watched_scores=[2.0, 0.5, 1.5],
    )
    assert f.val_loss == pytest.approx(4.0 / 4)  # the alerted window is not normal
    assert (f.watched, f.kept, f.labelled, f.false_alerts) == (3, 2, False, 0)


def test_operator_verdicts() -> None:
    items = [
        Feedback("anomalous", start_ms=1000, end_ms=2000),
        Feedback("normal", session_id="s1"),
        Feedback("anomalous", session_id="s2"),
        Feedback("normal", session_id="s2"),  # a later line overrides
    ]
    assert verdict_of("s1", (1500, 1600), items) == "normal"  # named beats a span
    assert verdict_of("s2", (None, None), items) == "normal"
    assert verdict_of("s3", (500, 1500), items) == "anomalous"  # its end is in the span
    assert verdict_of("s4", (2000, 2500), items) is None
    assert is_watched(True, None) and not is_watched(False, None) and not is_watched(None, None)
    assert is_watched(False, "anomalous") and not is_watched(True, "normal")
