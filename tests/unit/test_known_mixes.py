"""Known event mixes: a strategy with `known_mixes` scores a window whose event counts
equal a training window's 0, whatever their order (with `known_pairs`, only when each step
of its order was seen too); the keys travel in calibration.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, Calibration, verify_bundle
from schemas.errors import BundleError
from schemas.vocab import UNK_ID, Vocab
from tests.train_data import eval_tiny_model
from trainer.calibration import calibrate, calibration_scores, threshold_from_quantile
from trainer.export import export_bundle
from trainer.known_mixes import (
    ORDER_NOISE_SHARE,
    KnownMixes,
    known_mix_keys,
    known_pair_keys,
    mix_key,
    order_varies,
    pairs_of,
    reordered_share,
)
from trainer.recalibrate import strategy_scores, write_recalibrated_bundle
from trainer.scoring import ScoringStrategy, WindowScorer, score_token_windows

CPU = torch.device("cpu")
VOCAB_SIZE = 12
MAX = ScoringStrategy(groups=3)
MAX_KNOWN = ScoringStrategy(groups=3, known_mixes=True)
MAX_KNOWN_STEPS = ScoringStrategy(groups=3, known_mixes=True, known_pairs=True)


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return eval_tiny_model(VOCAB_SIZE)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(5, 11), min_size=0, max_size=30), st.randoms())
def test_mix_key_ignores_order_and_sees_counts(ids: list[int], rnd: object) -> None:
    shuffled = list(ids)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert mix_key(shuffled) == mix_key(ids)
    assert mix_key([*ids, 5]) != mix_key(ids)
    key = mix_key(ids)
    assert key is not None
    assert dict(zip(key[::2], key[1::2], strict=True)) == {i: ids.count(i) for i in set(ids)}


def test_a_window_with_an_unknown_event_is_never_known() -> None:
    assert mix_key([5, UNK_ID, 6]) is None
    assert known_mix_keys([[5, UNK_ID], [5, 6]]) == ((5, 1, 6, 1),)


def test_pairs_are_consecutive_tokens_most_frequent_first() -> None:
    assert pairs_of([5, 6, 5, 6]) == {(5, 6), (6, 5)}
    assert pairs_of([5]) == set()
    assert known_pair_keys([[5, 6], [7, 8, 5, 6], [5, 6, 7]]) == ((5, 6), (6, 7), (7, 8), (8, 5))
    assert known_pair_keys([[5, 6], [7, 8, 5, 6]], limit=1) == ((5, 6),)
    assert KnownMixes.of([], [(5, 6)]) is None


def test_known_pairs_refines_known_mixes() -> None:
    with pytest.raises(ValueError, match="known_pairs"):
        ScoringStrategy(known_pairs=True)


def test_reordered_share_counts_windows_of_recurring_mixes_seen_in_several_orders() -> None:
    sequential = [[5, 6, 7]] * 8 + [[5, 7]] * 2 + [[9]]  # one order per mix; 9 never recurs
    assert reordered_share(sequential) == 0.0 and not order_varies(sequential)
    # Interleaved: the mix {5, 6, 7} in two orders; the lone [9] and an [UNK] window count not.
    interleaved = [[5, 6, 7]] * 3 + [[6, 5, 7]] * 3 + [[5, 7]] * 2 + [[9], [UNK_ID, 5]]
    assert reordered_share(interleaved) == 6 / 8
    assert order_varies(interleaved)
    assert reordered_share([]) == 0.0
    # The cut is a share: exactly ORDER_NOISE_SHARE varies.
    half = [[11, 12], [12, 11], [13, 14], [13, 14]]
    assert reordered_share(half) == ORDER_NOISE_SHARE and order_varies(half)


def test_known_mix_keys_most_frequent_first_and_capped() -> None:
    windows = [[7, 8], [5], [8, 7], [6], [5], [7, 8]]
    assert known_mix_keys(windows) == ((7, 1, 8, 1), (5, 1), (6, 1))
    assert known_mix_keys(windows, limit=1) == ((7, 1, 8, 1),)
    with pytest.raises(ValueError):
        known_mix_keys(windows, limit=-1)


def test_known_mix_scores_zero_in_any_order(model: BertForMaskedLM) -> None:
    seen, reordered, other = [5, 6, 6, 7, 8], [6, 8, 5, 7, 6], [5, 6, 7, 7, 8]
    known = KnownMixes.of(known_mix_keys([seen]), known_pair_keys([seen]))
    windows = [seen, reordered, other]
    plain = score_token_windows(model, windows, MAX, CPU)
    with_known = score_token_windows(model, windows, MAX_KNOWN, CPU, known=known)
    assert [r.known for r in with_known] == [True, True, False]
    assert [r.known for r in plain] == [False, False, False]  # not looked up without `known`
    assert with_known[0].score == with_known[1].score == 0.0 < plain[1].score
    assert with_known[2].score == plain[2].score > 0.0
    # The explanation is the model's, whatever the score.
    assert [s.position for s in with_known[1].surprising] == [
        s.position for s in plain[1].surprising
    ]
    # Without the strategy flag the mixes are only reported.
    assert score_token_windows(model, windows, MAX, CPU, known=known)[1].score == plain[1].score
    with pytest.raises(ValueError, match="event mixes"):
        score_token_windows(model, windows, MAX_KNOWN, CPU)


def test_known_pairs_still_scores_a_known_mix_in_an_unseen_order(model: BertForMaskedLM) -> None:
    # Training saw 5 6 7 8 and 6 5 7 8: the pairs 5-6, 6-5, 6-7, 5-7 and 7-8.
    train = [[5, 6, 7, 8], [6, 5, 7, 8]]
    known = KnownMixes.of(known_mix_keys(train), known_pair_keys(train))
    interleaved, swapped = [6, 5, 7, 8], [5, 7, 6, 8]  # swapped has 7-6 and 6-8, never seen
    plain = score_token_windows(model, [interleaved, swapped], MAX, CPU)
    got = score_token_windows(model, [interleaved, swapped], MAX_KNOWN_STEPS, CPU, known=known)
    assert [(r.known, r.known_in_order) for r in got] == [(True, True), (True, False)]
    assert got[0].score == 0.0 and got[1].score == plain[1].score > 0.0
    mixes_only = score_token_windows(model, [swapped], MAX_KNOWN, CPU, known=known)
    assert mixes_only[0].score == 0.0


def test_thresholds_are_calibrated_on_scores_as_if_every_mix_were_novel(
    model: BertForMaskedLM,
) -> None:
    seen, reordered, other = [5, 6, 6, 7, 8], [6, 8, 5, 7, 6], [5, 6, 7, 7, 8]
    windows = [seen, reordered, other, [5, 5, 5]]
    # 5 has ceiling 1, yet [5, 5, 5] is a known mix: as novel it is past its ceiling.
    train = [seen, [5, 5, 5], [5], [5], [5]]
    known = KnownMixes.of(known_mix_keys(train), known_pair_keys(train), [(5, 1)])
    both = ScoringStrategy(groups=3, known_mixes=True, count_ceilings=True)
    plain = score_token_windows(model, windows, MAX, CPU)
    capped = score_token_windows(
        model, windows, dataclasses.replace(MAX, count_ceilings=True), CPU, known=known
    )
    got = score_token_windows(model, windows, both, CPU, known=known)
    assert [r.score for r in got] == [0.0, 0.0, plain[2].score, 0.0]
    as_novel = [r.score_as_novel for r in got]
    assert as_novel == [r.score for r in capped]
    assert as_novel[:3] == [r.score for r in plain[:3]]
    assert as_novel[3] == pytest.approx(both.unk_nll)
    assert plain[3].score < as_novel[3]
    assert calibration_scores(got).tolist() == as_novel
    # recalibrate takes the same scores; the exemption alone would have made this 0.
    scores = strategy_scores(model, windows, both, CPU, known=known)
    assert scores.tolist() == as_novel
    threshold = calibrate(scores, 0.5, strategy=both, known=known).threshold
    assert threshold == threshold_from_quantile(as_novel, 0.5) > 0.0
    # Without known mixes in the strategy, nothing differs.
    assert [r.score_as_novel for r in capped] == [r.score for r in capped]


def test_windows_the_rule_scores_zero_can_skip_the_model(model: BertForMaskedLM) -> None:
    train = [[5, 6, 7, 8], [6, 5, 7, 8], [5, 5, 6, 7, 8]]  # 5's ceiling: 1 (given below)
    known = KnownMixes.of(known_mix_keys(train), known_pair_keys(train), [(5, 1)])
    windows = [[6, 5, 7, 8], [5, 7, 6, 8], [5, 6, 7, 7, 8]]  # known steps, known mix, novel
    full = score_token_windows(model, windows, MAX_KNOWN_STEPS, CPU, known=known)
    got = score_token_windows(
        model, windows, MAX_KNOWN_STEPS, CPU, known=known, explain_known_mixes=False
    )
    assert [r.score for r in got] == [r.score for r in full] == [0.0, full[1].score, full[2].score]
    assert np.isnan(got[0].nll).all() and got[0].surprising == []
    assert np.isnan(got[0].score_as_novel) and (got[0].known, got[0].known_in_order) == (True, True)
    assert full[0].surprising and not np.isnan(full[0].nll).any()
    for a, b in zip(got[1:], full[1:], strict=True):  # scored by the model, as without skipping
        np.testing.assert_array_equal(a.nll, b.nll)
        assert a.surprising == b.surprising and a.score_as_novel == b.score_as_novel

    # Only exempt windows: the model is never called.
    def refuse(*_: object) -> None:
        raise AssertionError("the model ran")

    hook = model.bert.embeddings.register_forward_pre_hook(refuse)
    try:
        only = score_token_windows(
            model,
            [[6, 5, 7, 8], [5, 5, 6, 7, 8]],
            MAX_KNOWN,
            CPU,
            known=known,
            explain_known_mixes=False,
        )
        with pytest.raises(AssertionError, match="the model ran"):
            score_token_windows(
                model, windows[2:], MAX_KNOWN, CPU, known=known, explain_known_mixes=False
            )
    finally:
        hook.remove()
    assert [r.score for r in only] == [0.0, 0.0] and only[1].past_ceiling == (1,)
    # The scorer skips unless told to explain known mixes.
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    for explain in (False, True):
        scorer = WindowScorer(
            model, vocab, MAX_KNOWN, 1.0, "v1", CPU, known=known, explain_known_mixes=explain
        )
        (r,) = scorer.score_events([["E1", "E0", "E2", "E3"]], ended=[False])
        assert r.score == 0.0 and bool(r.surprising) == explain


def test_calibration_round_trips_known_mixes() -> None:
    known = KnownMixes.of([(5, 2, 7, 1), (6, 1)], [(5, 7), (7, 5)])
    cal = calibrate([1.0, 2.0], 0.5, strategy=MAX_KNOWN, known=known)
    back = Calibration.from_json(cal.to_json())
    assert back == cal and back.known_mixes == ((5, 2, 7, 1), (6, 1))
    assert back.known_pairs == ((5, 7), (7, 5))
    old_file = b'{"quantiles": {}, "threshold": 1, "threshold_quantile": 0.5, "n_windows": 2}'
    assert Calibration.from_json(old_file).known_mixes == ()
    assert Calibration.from_json(old_file).known_pairs == ()
    for key, bad in (
        ("known_counts", "[[5, 2, 7]]"),
        ("known_counts", "[[5, -2]]"),
        ("known_counts", "[[5, true]]"),
        ("known_counts", "[5]"),
        ("known_pairs", "[[5, 6, 7]]"),
        ("known_pairs", "[[5, -6]]"),
        ("known_pairs", "[5]"),
    ):
        blob = old_file[:-1] + f', "{key}": {bad}}}'.encode()
        with pytest.raises(BundleError, match=key):
            Calibration.from_json(blob)


def test_scorer_refuses_a_known_mixes_strategy_without_mixes(model: BertForMaskedLM) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    with pytest.raises(BundleError, match="known event mixes"):
        WindowScorer(model, vocab, MAX_KNOWN, 1.0, "v1", CPU)
    known = KnownMixes.of([(5, 1, 6, 1)])
    scorer = WindowScorer(model, vocab, MAX_KNOWN, 1.0, "v1", CPU, known=known)
    a, b = scorer.score_events([["E0", "E1"], ["E0", "E2"]], ended=[False, False])
    assert (a.known, a.score) == (True, 0.0) and not b.known and b.score > 0.0


def test_recalibrated_bundle_keeps_the_known_mixes(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    src = tmp_path / "src"
    keys, pairs = ((5, 1, 6, 1),), ((6, 5),)
    export_bundle(
        src, model, vocab,
        calibrate([1.0, 2.0], 0.5, strategy=MAX, known=KnownMixes.of(keys, pairs)),
        data_from=None, data_to=None, preset="tiny", parent_version=None, metrics={},
    )  # fmt: skip
    write_recalibrated_bundle(src, tmp_path / "dst", calibrate([3.0], 0.5, strategy=MAX_KNOWN))
    cal = Calibration.from_json((tmp_path / "dst" / CALIBRATION).read_bytes())
    # calibration.json keeps the key bundles have always been written with.
    assert cal.known_mixes == keys and cal.strategy["known_counts"] is True
    assert cal.known_pairs == pairs
    served = WindowScorer.from_bundle(tmp_path / "dst", device="cpu")
    assert served.known == KnownMixes.of(keys, pairs)
    assert np.isclose(served.score_events([["E1", "E0"]], ended=[False])[0].score, 0.0)


def test_recalibrated_bundle_is_a_verified_child(model: BertForMaskedLM, tmp_path: Path) -> None:
    vocab = Vocab.build([[f"E{i}" for i in range(7)]])
    src = tmp_path / "src"
    m = export_bundle(
        src, model, vocab, calibrate([1.0, 2.0], 0.5, strategy=MAX),
        data_from=None, data_to=None, preset="tiny", parent_version=None,
        metrics={"val_windows": 2},
    )  # fmt: skip
    new_cal = calibrate([3.0, 4.0, 5.0], 0.5, strategy=dataclasses.replace(MAX, groups=5))
    dst = tmp_path / "dst"
    child = write_recalibrated_bundle(src, dst, new_cal)
    assert verify_bundle(dst).version == child.version != m.version
    assert child.parent_version == m.version and child.metrics["val_windows"] == 2
    cal = Calibration.from_json((dst / CALIBRATION).read_bytes())
    assert cal.strategy["groups"] == 5 and cal.threshold == 4.0
    assert (dst / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    with pytest.raises(BundleError):
        write_recalibrated_bundle(src, dst, new_cal)
