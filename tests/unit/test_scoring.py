"""Window scoring: the strategy record, mask groups, the max aggregate, batching, [UNK]
handling, and a trained model that scores unseen orders and unknown events above the windows
it learned."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import BertForMaskedLM

from schemas.bundle import CALIBRATION, VOCAB, Calibration, new_version, write_manifest
from schemas.errors import BundleError
from schemas.vocab import CLS_ID, MASK_ID, PAD_ID, SEP_ID, UNK_ID, Vocab
from schemas.windows import Window
from trainer.calibration import calibrate
from trainer.model import PRESETS, bert_config, build_model, save_model
from trainer.scoring import (
    DEFAULT_STRATEGY,
    DEFAULT_UNK_NLL,
    ScoringStrategy,
    WindowScorer,
    mask_groups,
    score_token_windows,
)
from trainer.scoring.rules import most_surprising, window_score

CPU = torch.device("cpu")
VOCAB_SIZE = 40


@pytest.fixture(scope="module")
def random_model(one_thread: None) -> BertForMaskedLM:
    torch.manual_seed(0)
    model = build_model(bert_config(PRESETS["tiny"], VOCAB_SIZE))
    model.train(False)
    return model


def random_windows(lengths: list[int], seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(5, VOCAB_SIZE, size=n).tolist() for n in lengths]


# ---------------------------------------------------------------------------- strategy


def test_strategy_round_trips_through_calibration_json() -> None:
    s = ScoringStrategy(groups=4, known_mixes=True, known_pairs=True, n_surprising=7)
    cal = Calibration({"p50": 0.1}, 0.5, 0.999, 10, s.to_dict())
    assert ScoringStrategy.from_dict(Calibration.from_json(cal.to_json()).strategy) == s
    assert ScoringStrategy.from_dict(DEFAULT_STRATEGY.to_dict()) == DEFAULT_STRATEGY
    assert ScoringStrategy.from_dict({}) == ScoringStrategy()
    # Known mixes keep the key bundles have always been written with.
    assert s.to_dict()["known_counts"] is True and "known_mixes" not in s.to_dict()


# What `logad train` recorded before the strategy held only what serve scores with.
OLDER_BUNDLE = {
    "kind": "full",
    "groups": 10,
    "aggregate": "max",
    "top_n": 3,
    "mask_ratio": 0.15,
    "top_g": 6,
    "r": None,
    "n_surprising": 5,
    "top_k_expected": 3,
    "unk_nll": DEFAULT_UNK_NLL,
    "seed": 0,
    "known_counts": True,
    "known_pairs": True,
    "count_ceilings": True,
}


def test_an_older_bundles_strategy_reads_when_it_is_the_one_scored_now() -> None:
    assert ScoringStrategy.from_dict(OLDER_BUNDLE) == DEFAULT_STRATEGY
    # A serve that predates this record reads a new bundle's kind and aggregate right.
    assert {"kind": "full", "aggregate": "max"}.items() <= DEFAULT_STRATEGY.to_dict().items()


@pytest.mark.parametrize(
    "key, value",
    [("kind", "logbert"), ("aggregate", "mean"), ("aggregate", "maxrank"), ("top_n", 5),
     ("mask_ratio", 0.2), ("r", 0.5), ("seed", 1), ("top_g", True)],
)  # fmt: skip
def test_an_older_bundles_other_strategy_is_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{key}={value!r}: windows are scored with"):
        ScoringStrategy.from_dict({**OLDER_BUNDLE, key: value})


@pytest.mark.parametrize(
    "bad",
    [
        {"groups": 0},
        {"groups": True},
        {"n_surprising": -1},
        {"top_k_expected": -1},
        {"unk_nll": math.inf},
        {"unk_nll": 0.0},
        {"known_pairs": True},
    ],
)
def test_strategy_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScoringStrategy.from_dict(bad)


def test_strategy_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="grups"):
        ScoringStrategy.from_dict({"grups": 6})


# ---------------------------------------------------------------------------- pure helpers


@given(st.integers(0, 600), st.integers(1, 12))
def test_mask_groups_cover_each_position_exactly_once(n: int, k: int) -> None:
    groups = mask_groups(n, k)
    flat = [p for g in groups for p in g]
    assert sorted(flat) == list(range(n))
    assert len(groups) == min(n, k)
    assert all(g for g in groups)
    for g, members in enumerate(groups):
        assert all(p % k == g for p in members)
    assert mask_groups(n, k) == groups


def test_mask_groups_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        mask_groups(5, 0)


def test_window_score_is_the_largest_predicted_nll() -> None:
    nll = np.array([1.0, 4.0, 2.0, np.nan, 3.0], dtype=np.float32)
    assert window_score(nll) == pytest.approx(4.0)
    assert window_score(np.zeros(0, dtype=np.float32)) == 0.0
    assert window_score(np.array([np.nan], dtype=np.float32)) == 0.0


def test_most_surprising_orders_by_nll_then_position() -> None:
    nll = np.array([1.0, 5.0, np.nan, 5.0, 2.0], dtype=np.float32)
    assert most_surprising(nll, 3).tolist() == [1, 3, 4]
    assert most_surprising(nll, 10).tolist() == [1, 3, 4, 0]


# ---------------------------------------------------------------------------- batched scoring


def test_batched_equals_unbatched_in_input_order(random_model: BertForMaskedLM) -> None:
    windows = random_windows([0, 1, 3, 17, 120, 6, 45, 7, 250])
    windows[3][4] = UNK_ID
    strategy = ScoringStrategy()
    batched = score_token_windows(random_model, windows, strategy, CPU)
    alone = [
        score_token_windows(random_model, [w], strategy, CPU, max_batch_tokens=1)[0]
        for w in windows
    ]
    reverse = score_token_windows(random_model, windows[::-1], strategy, CPU)[::-1]
    for b, a, r, w in zip(batched, alone, reverse, windows, strict=True):
        assert b.nll.dtype == np.float32
        assert b.nll.shape == (len(w),)
        assert b.score == pytest.approx(a.score, abs=1e-5)
        assert b.score == pytest.approx(r.score, abs=1e-5)
        np.testing.assert_allclose(b.nll, a.nll, atol=1e-5, equal_nan=True)
        assert [s.position for s in b.surprising] == [s.position for s in a.surprising]


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.integers(0, 80), min_size=1, max_size=6),
    st.sampled_from([64, 300, 5000]),
)
def test_any_batch_budget_gives_the_same_scores(
    random_model: BertForMaskedLM, lengths: list[int], budget: int
) -> None:
    windows = random_windows(lengths, seed=len(lengths))
    s = ScoringStrategy(groups=4)
    ref = score_token_windows(random_model, windows, s, CPU, max_batch_tokens=1 << 20)
    got = score_token_windows(random_model, windows, s, CPU, max_batch_tokens=budget)
    for a, b in zip(ref, got, strict=True):
        np.testing.assert_allclose(a.nll, b.nll, atol=1e-5)


def test_full_strategy_predicts_every_event_and_matches_a_manual_pass(
    random_model: BertForMaskedLM,
) -> None:
    window = random_windows([13])[0]
    s = ScoringStrategy(groups=5, n_surprising=13)
    [res] = score_token_windows(random_model, [window], s, CPU)
    assert np.isfinite(res.nll).all()
    assert res.score == res.score_as_novel == float(res.nll.max())
    # Event 7 is in group 7 % 5 = 2: mask positions 2, 7, 12 and read the full head.
    ids = torch.tensor([[CLS_ID, *window, SEP_ID]])
    for p in (2, 7, 12):
        ids[0, p + 1] = MASK_ID
    with torch.inference_mode():
        logp = torch.log_softmax(random_model(input_ids=ids).logits[0, 8].float(), dim=-1)
    assert res.nll[7] == pytest.approx(-float(logp[window[7]]), abs=1e-5)
    assert len(res.surprising) == 13
    assert [s.nll for s in res.surprising] == sorted(res.nll.tolist(), reverse=True)


def test_an_unknown_event_scores_unk_nll(random_model: BertForMaskedLM) -> None:
    window = random_windows([10])[0]
    window[4] = UNK_ID
    [res] = score_token_windows(random_model, [window], ScoringStrategy(), CPU)
    assert res.nll[4] == pytest.approx(DEFAULT_UNK_NLL)
    assert res.score == pytest.approx(DEFAULT_UNK_NLL)
    top = res.surprising[0]
    assert (top.position, top.token_id) == (4, UNK_ID)
    # What the model expected there is still reported, and never a special token.
    assert len(top.expected) == 3
    assert all(t >= 5 for t, _ in top.expected)
    probs = [p for _, p in top.expected]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 < p <= 1.0 for p in probs)
    # Every event's NLL is capped at unk_nll, so [UNK] is never outranked.
    assert float(res.nll.max()) <= DEFAULT_UNK_NLL + 1e-6


def test_empty_windows_score_zero(random_model: BertForMaskedLM) -> None:
    res = score_token_windows(random_model, [[], []], ScoringStrategy(), CPU)
    assert [(r.score, r.nll.size, r.surprising) for r in res] == [(0.0, 0, [])] * 2
    assert score_token_windows(random_model, [], ScoringStrategy(), CPU) == []


def test_scoring_restores_the_model_mode(random_model: BertForMaskedLM) -> None:
    random_model.train(True)
    try:
        score_token_windows(random_model, random_windows([5]), ScoringStrategy(), CPU)
        assert random_model.training
    finally:
        random_model.train(False)


@pytest.mark.parametrize("bad", [[5, PAD_ID, 6], [MASK_ID], [SEP_ID], [VOCAB_SIZE], [-1]])
def test_non_event_token_ids_are_rejected(random_model: BertForMaskedLM, bad: list[int]) -> None:
    with pytest.raises(ValueError, match="not an event token"):
        score_token_windows(random_model, [bad], ScoringStrategy(), CPU)


def test_too_long_windows_are_rejected(random_model: BertForMaskedLM) -> None:
    with pytest.raises(ValueError, match="over 510"):
        score_token_windows(random_model, [[5] * 511], ScoringStrategy(), CPU)


# ---------------------------------------------------------------------------- a trained model

PATTERNS = [
    ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"],
    ["B1", "B2", "B3", "A3", "A4", "B4"],
    ["A1", "A2", "B1", "B2", "A5", "A6"],
]
NORMAL = [p * r for p in PATTERNS for r in (1, 2, 3)]
SHUFFLED = [PATTERNS[0][i] for i in (3, 0, 6, 1, 7, 2, 5, 4)]
UNKNOWN = [*PATTERNS[0][:3], "never-seen", *PATTERNS[0][4:]]


def train_tiny(vocab: Vocab, steps: int = 200) -> BertForMaskedLM:
    """A minimal MLM loop: 15% of event positions masked, loss on those only."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    preset = dataclasses.replace(PRESETS["tiny"], dropout=0.0)
    model = build_model(bert_config(preset, len(vocab)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    width = max(len(w) for w in NORMAL) + 2
    base = torch.full((len(NORMAL), width), PAD_ID)
    attention = torch.zeros((len(NORMAL), width), dtype=torch.long)
    for i, w in enumerate(NORMAL):
        base[i, : len(w) + 2] = torch.tensor([CLS_ID, *vocab.encode(w), SEP_ID])
        attention[i, : len(w) + 2] = 1
    model.train(True)
    for _ in range(steps):
        rows = torch.randint(len(NORMAL), (16,), generator=gen)
        ids = base[rows].clone()
        masked = (torch.rand(ids.shape, generator=gen) < 0.15) & (ids >= 5)
        labels = torch.where(masked, ids, torch.full_like(ids, -100))
        ids[masked] = MASK_ID
        loss = model(input_ids=ids, attention_mask=attention[rows], labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.train(False)
    return model


@pytest.fixture(scope="module")
def trained(one_thread: None) -> tuple[BertForMaskedLM, Vocab]:
    vocab = Vocab.build(NORMAL)
    return train_tiny(vocab), vocab


@pytest.mark.slow
def test_trained_model_scores_unseen_order_and_unknown_event_above_normal(
    trained: tuple[BertForMaskedLM, Vocab],
) -> None:
    model, vocab = trained
    windows = [vocab.encode(w) for w in [*NORMAL, SHUFFLED, UNKNOWN]]
    scores = [r.score for r in score_token_windows(model, windows, ScoringStrategy(), CPU)]
    normal, shuffled, unknown = max(scores[: len(NORMAL)]), scores[-2], scores[-1]
    assert shuffled > normal
    assert unknown > normal


def write_bundle(
    path: Path, model: BertForMaskedLM, vocab: Vocab, calibration: Calibration
) -> Path:
    path.mkdir()
    save_model(model, path)
    vocab.save(path / VOCAB)
    (path / CALIBRATION).write_bytes(calibration.to_json())
    write_manifest(path, new_version(), None, None, preset="tiny")
    return path


def window(events: list[str], session: str, label: int | None = None) -> Window:
    return Window.build(
        session, 0, tuple(events), 1_000, 2_000, -1, 0, len(events) - 1, label=label
    )


@pytest.mark.slow
def test_scorer_from_bundle_flags_anomalies_and_explains_them(
    trained: tuple[BertForMaskedLM, Vocab], tmp_path: Path
) -> None:
    model, vocab = trained
    strategy = ScoringStrategy(n_surprising=2)
    normal_scores = [
        r.score
        for r in score_token_windows(model, [vocab.encode(w) for w in NORMAL], strategy, CPU)
    ]
    bundle = write_bundle(tmp_path / "b", model, vocab, calibrate(normal_scores, strategy=strategy))
    scorer = WindowScorer.from_bundle(bundle, device="cpu")
    assert scorer.strategy == strategy
    assert scorer.threshold == max(normal_scores)

    # Scored in the same batches as calibration, so the top normal score equals the
    # threshold exactly (batch composition can move a score by ~1e-7).
    normal = scorer.score_windows([window(w, f"n{i}", 0) for i, w in enumerate(NORMAL)], 5_000)
    assert [s.session_id for s in normal] == [f"n{i}" for i in range(len(NORMAL))]
    assert not any(s.anomalous for s in normal)
    windows = [window(SHUFFLED, "shuffled", 1), window(UNKNOWN, "unknown", 1)]
    scores = scorer.score_windows(windows, now_ms=5_000)
    assert [(s.session_id, s.anomalous) for s in scores] == [("shuffled", True), ("unknown", True)]
    unknown = scores[-1]
    assert unknown.model_version == scorer.model_version
    assert (unknown.scored_at, unknown.n_events, unknown.label) == (5_000, 8, 1)
    assert unknown.threshold == scorer.threshold
    top = unknown.surprising[0]
    # The unknown event keeps its own id, and the model names what belonged there.
    assert (top.position, top.event_id) == (3, "never-seen")
    assert top.nll == pytest.approx(DEFAULT_UNK_NLL)
    assert top.expected[0].event_id == "A4"
    assert len(unknown.surprising) == 2

    results = scorer.score_events([UNKNOWN, []])
    assert results[0].score == pytest.approx(unknown.score)
    assert results[1].score == 0.0

    # serve's idle loop lends the model a core: the scoring thread's count changes, the
    # scores do not.
    def with_threads(n: int) -> tuple[int, list[float]]:
        scorer.use_threads(n)
        return torch.get_num_threads(), [s.score for s in scorer.score_windows(windows, 5_000)]

    with ThreadPoolExecutor(1) as pool:
        threads, again = pool.submit(with_threads, 2).result()
    assert threads == 2 and again == pytest.approx([s.score for s in scores])


@pytest.mark.slow
def test_scorer_refuses_a_tampered_or_unlabelled_bundle(
    trained: tuple[BertForMaskedLM, Vocab], tmp_path: Path
) -> None:
    model, vocab = trained
    cal = calibrate([0.1, 0.2, 0.3], strategy=ScoringStrategy())
    tampered = write_bundle(tmp_path / "t", model, vocab, cal)
    (tampered / VOCAB).write_bytes(vocab.extend(["X"]).to_json())
    with pytest.raises(BundleError, match="sha256"):
        WindowScorer.from_bundle(tampered, device="cpu")

    no_strategy = dataclasses.replace(cal, strategy={})
    with pytest.raises(BundleError, match="no scoring strategy"):
        WindowScorer.from_bundle(write_bundle(tmp_path / "n", model, vocab, no_strategy), "cpu")

    bad = dataclasses.replace(cal, strategy={"kind": "full", "groups": 0})
    with pytest.raises(BundleError, match="groups"):
        WindowScorer.from_bundle(write_bundle(tmp_path / "s", model, vocab, bad), "cpu")

    # A bundle calibrated for a strategy serve no longer scores with: one clear error.
    mean = dataclasses.replace(cal, strategy={**cal.strategy, "aggregate": "mean"})
    with pytest.raises(BundleError, match="bad scoring strategy: aggregate='mean'"):
        WindowScorer.from_bundle(write_bundle(tmp_path / "m", model, vocab, mean), "cpu")

    other_vocab = vocab.extend(["X", "Y"])
    with pytest.raises(BundleError, match="vocab size"):
        WindowScorer.from_bundle(write_bundle(tmp_path / "v", model, other_vocab, cal), "cpu")


def test_calibration_json_keeps_the_strategy() -> None:
    cal = calibrate([1.0, 2.0], strategy=ScoringStrategy(groups=3))
    assert orjson.loads(cal.to_json())["strategy"]["groups"] == 3
