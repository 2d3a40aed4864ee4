"""The benchmark's comparison strategies (bench/strategies.py): the max rank of a true event,
LogBERT's miss fraction, the mean and top-n NLL aggregates, and the property that lets the
benchmark choose the product's default: a variant serve can score with gets exactly the
product's scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import BertForMaskedLM

from bench.strategies import (
    VARIANTS,
    BenchStrategy,
    RunResult,
    Variant,
    aggregate,
    logbert_mask,
    score_run,
    window_max_rank,
)
from schemas.vocab import CLS_ID, MASK_ID, SEP_ID, UNK_ID
from tests.train_data import eval_tiny_model
from trainer.known_mixes import KnownMixes, known_mix_keys, known_pair_keys
from trainer.scoring import FIRST_EVENT_ID, ScoringStrategy, score_token_windows
from trainer.scoring.passes import event_rank

CPU = torch.device("cpu")
VOCAB_SIZE = 12
N_EVENT_TOKENS = VOCAB_SIZE - FIRST_EVENT_ID
MAXRANK = BenchStrategy(groups=3, aggregate="maxrank")


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return eval_tiny_model(VOCAB_SIZE)


def run(
    model: BertForMaskedLM,
    windows: list[list[int]],
    s: BenchStrategy,
    budget: int = 4096,
    known: KnownMixes | None = None,
) -> list[RunResult]:
    return score_run(model, windows, s, CPU, max_batch_tokens=budget, known=known)


# ---------------------------------------------------------------------------- max rank


def test_event_rank_counts_strictly_better_events() -> None:
    # Columns 0..4 are specials and never compete; events are columns 5, 6, 7.
    logp = torch.tensor([[9.0, 9, 9, 9, 9, 0.1, 0.7, 0.7], [0, 0, 0, 0, 0, 0.5, 0.2, 0.9]])
    assert event_rank(logp, torch.tensor([6, 6])).tolist() == [0, 2]
    assert event_rank(logp, torch.tensor([5, 7])).tolist() == [2, 0]


def test_window_max_rank_puts_unknown_last_and_ignores_unpredicted() -> None:
    assert window_max_rank(np.array([0, 3, 1]), np.array([5, 6, 7]), 10) == 3.0
    assert window_max_rank(np.array([0, 3, 1]), np.array([5, UNK_ID, 7]), 10) == 10.0
    assert window_max_rank(np.array([0, -1, 1]), np.array([5, 6, 7]), 10) == 1.0
    assert window_max_rank(np.zeros(0, np.int64), np.zeros(0, np.int64), 10) == 0.0


def direct_max_rank(model: BertForMaskedLM, window: list[int], groups: int) -> float:
    """One unbatched pass per mask group over the full LM head: the rank by hand."""
    worst = 0
    for g in range(groups):
        ids = torch.tensor([[CLS_ID, *window, SEP_ID]])
        positions = list(range(g, len(window), groups))
        for p in positions:
            ids[0, p + 1] = MASK_ID
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0].float()
        for p in positions:
            if window[p] == UNK_ID:
                worst = max(worst, N_EVENT_TOKENS)
                continue
            row = logits[p + 1, FIRST_EVENT_ID:]
            worst = max(worst, int((row > logits[p + 1, window[p]]).sum()))
    return float(worst)


def test_max_rank_equals_a_direct_computation(model: BertForMaskedLM) -> None:
    rng = np.random.default_rng(1)
    windows = [rng.integers(5, VOCAB_SIZE, int(n)).tolist() for n in (1, 4, 9, 17)]
    results = run(model, windows, MAXRANK, budget=64)
    assert [r.base for r in results] == [direct_max_rank(model, w, 3) for w in windows]
    assert all(0 <= r.base < N_EVENT_TOKENS for r in results)
    # The NLLs are the product's, from the same passes.
    product = score_token_windows(
        model, windows, ScoringStrategy(groups=3), CPU, max_batch_tokens=64
    )
    for a, b in zip(results, product, strict=True):
        np.testing.assert_array_equal(a.nll, b.nll)


def test_max_rank_ranks_unknown_last_and_is_batch_independent(model: BertForMaskedLM) -> None:
    rng = np.random.default_rng(2)
    windows = [rng.integers(5, VOCAB_SIZE, int(n)).tolist() for n in rng.integers(1, 40, 12)]
    windows += [[UNK_ID, 6], [], [7, 8, UNK_ID]]
    a = run(model, windows, MAXRANK, budget=64)
    b = run(model, windows, MAXRANK, budget=100_000)
    assert [x.base for x in a] == [x.base for x in b]
    assert a[-3].base == a[-1].base == N_EVENT_TOKENS
    assert a[-2].base == 0.0


# ---------------------------------------------------------------------------- NLL aggregates


def test_aggregate_math() -> None:
    nll = np.array([1.0, 4.0, 2.0, np.nan, 3.0], dtype=np.float32)
    assert aggregate(nll, BenchStrategy(aggregate="mean")) == pytest.approx(2.5)
    assert aggregate(nll, BenchStrategy(aggregate="max")) == pytest.approx(4.0)
    assert aggregate(nll, BenchStrategy(aggregate="topn", top_n=2)) == pytest.approx(3.5)
    assert aggregate(nll, BenchStrategy(aggregate="topn", top_n=10)) == pytest.approx(2.5)
    assert aggregate(np.zeros(0, dtype=np.float32), BenchStrategy()) == 0.0
    assert aggregate(np.array([np.nan], dtype=np.float32), BenchStrategy()) == 0.0
    with pytest.raises(ValueError, match="maxrank"):
        aggregate(np.ones(3, np.float32), MAXRANK)


@given(st.lists(st.floats(0, 30, width=32), min_size=1, max_size=50), st.integers(1, 8))
def test_aggregates_are_ordered(values: list[float], n: int) -> None:
    nll = np.array(values, dtype=np.float32)
    mean = aggregate(nll, BenchStrategy(aggregate="mean"))
    top = aggregate(nll, BenchStrategy(aggregate="topn", top_n=n))
    mx = aggregate(nll, BenchStrategy(aggregate="max"))
    assert mean <= top + 1e-5
    assert top <= mx + 1e-5


# ---------------------------------------------------------------------------- logbert


def test_logbert_mask_is_deterministic_and_always_masks_unk() -> None:
    ids = np.random.default_rng(0).integers(5, 40, size=200).astype(np.int64)
    ids[17] = UNK_ID
    s = BenchStrategy(kind="logbert", mask_ratio=0.15)
    m = logbert_mask(ids, s)
    assert np.array_equal(m, logbert_mask(ids.copy(), s))
    assert m[17]
    assert 30 <= m.sum() <= 31  # 15% of 200, plus the [UNK] if not already drawn
    other = logbert_mask(ids, dataclasses.replace(s, seed=1))
    assert not np.array_equal(m, other)
    assert logbert_mask(np.array([9], dtype=np.int64), s).tolist() == [True]


def test_logbert_counts_a_masked_unknown_as_a_miss(model: BertForMaskedLM) -> None:
    window = np.random.default_rng(3).integers(5, VOCAB_SIZE, size=20).tolist()
    window[0] = UNK_ID
    s = BenchStrategy(kind="logbert", top_g=VOCAB_SIZE)  # every known token is in the top g
    [res] = run(model, [window], s)
    predicted = int(np.isfinite(res.nll).sum())
    assert predicted in (3, 4)  # 15% of 20 = 3, plus the [UNK] unless it was drawn
    assert np.isfinite(res.nll[0])
    assert res.base == pytest.approx(1 / predicted)
    assert [r.base for r in run(model, [[], []], s)] == [0.0, 0.0]


def test_count_ceilings_are_for_the_full_kind_only() -> None:
    with pytest.raises(ValueError, match="full"):
        BenchStrategy(kind="logbert", count_ceilings=True)


# ---------------------------------------------------------------------------- the product's rows


def test_a_variant_serve_scores_with_gets_the_products_scores(model: BertForMaskedLM) -> None:
    train = [[5, 6, 7, 8], [6, 5, 7, 8], [5, 5, 6, 7, 8]]
    known = KnownMixes.of(known_mix_keys(train), known_pair_keys(train), [(5, 1), (9, 0)])
    # Known in known steps, known mix in a new order, novel, past a ceiling, [UNK], empty.
    windows = [[6, 5, 7, 8], [5, 7, 6, 8], [5, 6, 7, 7, 8], [5, 5, 9, 8], [5, UNK_ID], []]
    results = run(model, windows, BenchStrategy(groups=3, aggregate="maxrank"), known=known)
    for mixes, pairs, ceilings in [(False, False, False), (True, False, True), (True, True, True),
                                   (True, True, False), (False, False, True)]:  # fmt: skip
        bench = BenchStrategy(
            groups=3, aggregate="max", known_mixes=mixes, known_pairs=pairs, count_ceilings=ceilings
        )
        served = bench.served
        assert served is not None
        product = score_token_windows(
            model, windows, served, CPU, max_batch_tokens=4096, known=known
        )
        v = Variant("v", "full-3", bench, N_EVENT_TOKENS)
        assert [v.window_score(r) for r in results] == [p.score for p in product]
        assert [v.calibration_score(r) for r in results] == [p.score_as_novel for p in product]
    # The rules are the product's for the other aggregates too: past a ceiling ranks last.
    ranks = Variant(
        "r", "full-3", BenchStrategy(groups=3, aggregate="maxrank", count_ceilings=True)
    )
    ranks = dataclasses.replace(ranks, n_event_tokens=N_EVENT_TOKENS)
    assert [ranks.window_score(r) for r in results][3:5] == [N_EVENT_TOKENS, N_EVENT_TOKENS]
    mean = Variant("m", "full-3", BenchStrategy(groups=3, aggregate="mean", count_ceilings=True))
    capped = score_token_windows(model, windows, served, CPU, known=known)[3]
    assert mean.window_score(results[3]) == pytest.approx(float(capped.nll.mean()))


def test_only_served_variants_can_become_a_bundles_strategy() -> None:
    served = [v for v in VARIANTS if v.strategy.served is not None]
    assert {v.strategy.aggregate for v in served} == {"max"}
    for v in VARIANTS:
        recorded = v.strategy.to_dict()
        if v.strategy.served is not None:
            assert ScoringStrategy.from_dict(recorded) == v.strategy.served
        else:
            with pytest.raises(ValueError, match="windows are scored with"):
                ScoringStrategy.from_dict(recorded)
