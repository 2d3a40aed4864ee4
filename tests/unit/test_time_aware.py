"""Time-aware scoring: gap buckets from the daily files through the token cache, the
batches and the bundle to the scorer; a model trained on fast sessions scores the same
events arriving slowly higher, and a time-blind one does not look at the gaps."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from schemas.bundle import MANIFEST, BundleManifest
from schemas.daily_files import daily_file_name, write_sessions
from schemas.errors import BundleError, ConfigError
from schemas.events import LogEvent
from schemas.sessions import Session
from schemas.vocab import CLS_ID, PAD_ID, SEP_ID
from schemas.windows import MAX_EVENTS, Window
from stream.cli import main
from tests.train_data import tiny_settings
from tests.unit.untrained_bundle import untrained_bundle
from trainer.collate import make_batch
from trainer.dataset import DataSelection, WindowStore, load_training_data, pad_windows
from trainer.end_marker import END_EVENT
from trainer.evaluate import read_event_lists, split_sessions
from trainer.loop import MaskedLM
from trainer.masking import MaskSpec
from trainer.model import (
    bert_config,
    build_model,
    get_preset,
    grow_time_buckets,
    time_buckets_of,
)
from trainer.prefix_cuts import CutSpec
from trainer.scoring import ScoringStrategy, WindowScorer, score_token_windows
from trainer.settings import TrainSettings
from trainer.time_gaps import TimedEvents, gap_bucket, gaps_of
from trainer.token_cache import TokenCache, encode_sessions
from trainer.train import TrainRequest, run_training

# ---- the token cache and the batches


def test_the_cache_keeps_gap_levels_beside_the_codes(tmp_path: Path) -> None:
    timed = Session("a", ("A", "B", "C"), gaps_ms=(0, 3, 70))
    untimed = Session("b", ("A", "B"))
    ft = encode_sessions([timed, untimed], end_marker=True, time_gaps=True)
    assert ft.levels is not None
    # Per window: the first event, the marker and an untimed session have no gap.
    assert ft.levels.tolist() == [0, 3, 7, 0, 0, 0, 0]
    assert ft.events[ft.codes[3]] == END_EVENT
    assert encode_sessions([timed]).levels is None  # a time-blind run stores none

    # A session over MAX_EVENTS: each window's first event starts without a gap.
    n = MAX_EVENTS + 3
    long = Session("c", tuple(f"E{i % 7}" for i in range(n)), gaps_ms=(0, *[1] * (n - 1)))
    ft = encode_sessions([long], time_gaps=True)
    assert ft.levels is not None
    assert ft.levels[0] == 0 and ft.levels[MAX_EVENTS] == 0
    assert set(ft.levels[1:MAX_EVENTS].tolist()) == {2}

    day = tmp_path / daily_file_name(date(2026, 1, 1))
    write_sessions(day, [timed, untimed])
    cache = TokenCache(tmp_path / "cache", time_gaps=True)
    first, again = cache.load(day), TokenCache(tmp_path / "cache", time_gaps=True).load(day)
    assert first.levels is not None and again.levels is not None
    assert again.levels.tolist() == first.levels.tolist() == [0, 3, 7, 0, 0]
    # The time-blind entry is another one, with no levels.
    assert TokenCache(tmp_path / "cache").load(day).levels is None


def _store() -> WindowStore:
    tokens = np.array([5, 6, 7, 8, 5, 6], dtype=np.uint16)
    levels = np.array([0, 2, 9, 1, 0, 4], dtype=np.uint8)
    return WindowStore(tokens, np.array([0, 4]), np.array([4, 2]), levels)


def test_batches_carry_the_buckets_beside_the_ids() -> None:
    store = _store()
    g = torch.Generator().manual_seed(0)
    b = make_batch(store, np.array([0, 1]), 1, 10, MaskSpec(mask_prob=0.5), g, time_buckets=8)
    assert b.token_type_ids is not None
    ids = torch.from_numpy(pad_windows(store, np.array([0, 1]), 1))
    assert ids[1].tolist() == [CLS_ID, 5, 6, SEP_ID, PAD_ID, PAD_ID]
    # [CLS], [SEP] and padding 0; level 9 capped at bucket 7; masked events keep theirs.
    assert b.token_type_ids.tolist() == [[0, 0, 2, 7, 1, 0], [0, 0, 4, 0, 0, 0]]
    assert b.token_type_ids.shape == b.input_ids.shape
    blind = make_batch(store, np.array([0, 1]), 1, 10, MaskSpec(), torch.Generator())
    assert blind.token_type_ids is None


def test_a_prefix_cut_gives_its_new_sep_no_gap() -> None:
    end = 9
    tokens = np.array([5, 6, 7, 8, end], dtype=np.uint16)
    store = WindowStore(tokens, np.array([0]), np.array([5]), np.array([0, 2, 3, 4, 0], np.uint8))
    cuts = CutSpec(1.0, end)  # every marked row cut
    b = make_batch(
        store, np.array([0]), 1, 10, MaskSpec(mask_prob=0.01), torch.Generator(), cuts, 8
    )
    assert b.token_type_ids is not None
    types = b.token_type_ids[0].tolist()
    sep = b.input_ids[0].tolist().index(SEP_ID)
    assert sep < 5 and types[sep:] == [0] * (len(types) - sep)
    assert types[1:sep] == [0, 2, 3, 4][: sep - 1]


# ---- the bundle's record


def test_the_manifest_records_time_buckets_only_when_on() -> None:
    m = BundleManifest("v1", "now", None, None, {"a": "0"})
    assert "time_buckets" not in orjson.loads(m.to_json())
    assert BundleManifest.from_json(m.to_json()).time_buckets == 0
    timed = BundleManifest("v1", "now", None, None, {"a": "0"}, time_buckets=16)
    assert orjson.loads(timed.to_json())["time_buckets"] == 16
    assert BundleManifest.from_json(timed.to_json()) == timed
    bad = {**orjson.loads(m.to_json()), "time_buckets": 1}
    with pytest.raises(BundleError, match="time_buckets must be 0 or in"):
        BundleManifest.from_json(orjson.dumps(bad))
    with pytest.raises(ValueError, match="time_buckets"):
        TrainSettings(time_buckets=1)


# ---- end to end: train, bundle, score

PATTERNS = [
    ("A1", "A2", "A3", "A4", "A5", "A6"),
    ("B1", "B2", "A3", "B3", "B4"),
    ("C1", "C2", "C3", "C4", "C5", "C6", "C7"),
]


def _fast_day(dst: Path, n: int) -> Path:
    """Sessions whose events always follow each other within 10 ms."""
    rng = np.random.default_rng(0)
    sessions = []
    for i in range(n):
        events = PATTERNS[i % len(PATTERNS)]
        gaps = (0, *rng.integers(1, 11, size=len(events) - 1).tolist())
        sessions.append(
            Session(f"s{i}", events, start_ts=1_000 * i, end_ts=1_000 * i + sum(gaps), gaps_ms=gaps)
        )
    dst.mkdir(parents=True, exist_ok=True)
    path = dst / daily_file_name(date(2026, 1, 1))
    write_sessions(path, sessions)
    return path


def _window(events: tuple[str, ...], gap: int) -> Window:
    gaps = (0, *[gap] * (len(events) - 1))
    return Window.build("x", 0, events, 0, gap * len(events), -1, 0, 1, gaps_ms=gaps)


def _session(sid: str, events: tuple[str, ...], gap: int) -> Session:
    gaps = (0, *[gap] * (len(events) - 1))
    return Session(sid, events, 0, gap * len(events), label=0, gaps_ms=gaps)


def _train(tmp: Path, name: str, day: Path, steps: int, **overrides: object) -> Path:
    s = tiny_settings(
        tmp,
        epochs=1,
        min_steps=steps,
        lr=3e-3,
        tokens_per_batch=1024,
        val_fraction=0.2,
        score_known_mixes=False,  # the mixes are all known: the rule would score 0
        **overrides,
    )
    out = tmp / name
    outcome = run_training(s, TrainRequest(DataSelection((day,)), out))
    assert outcome.manifest is not None
    return out


@pytest.mark.slow
def test_a_time_aware_model_scores_a_slow_session_above_the_same_fast_one(
    tmp_path: Path, one_thread: None
) -> None:
    day = _fast_day(tmp_path / "days", 240)
    data = load_training_data(
        DataSelection((day,)), TokenCache(tmp_path / "c", end_marker=True, time_gaps=True), 0.2, 50
    )
    assert data.store.levels is not None and int(data.store.levels.max()) == gap_bucket(10, 64)

    timed = _train(tmp_path, "timed", day, 150, time_buckets=16)
    manifest = BundleManifest.from_json((timed / MANIFEST).read_bytes())
    assert manifest.time_buckets == 16
    scorer = WindowScorer.from_bundle(timed, device="cpu")
    assert scorer.time_buckets == 16
    for events in PATTERNS:
        fast, slow = scorer.score_windows([_window(events, 10), _window(events, 60_000)], 0)
        # Several times the fast one's score and the threshold (seeds 0-2: 4.6x to 13x).
        assert slow.score > 3 * max(fast.score, scorer.threshold), (events, fast, slow)
        assert slow.anomalous
    # The known-mix rule looks at event ids only: it exempts the slow known mix too.
    exempting = WindowScorer(
        scorer.model,
        scorer.vocab,
        dataclasses.replace(scorer.strategy, known_mixes=True, known_pairs=True),
        scorer.threshold,
        scorer.model_version,
        scorer.device,
        known=scorer.known,
        time_buckets=16,
    )
    assert exempting.score_windows([_window(PATTERNS[0], 60_000)], 0)[0].score == 0.0
    # A window with no times is scored with every gap unknown (bucket 0).
    untimed = Window.build("y", 0, PATTERNS[0], 0, 0, -1, 0, 1)
    assert untimed.gaps_ms is None and len(scorer.score_windows([untimed], 0)) == 1

    # `logad evaluate` reads the session files' gaps: the slow copies are told apart.
    fast_file, slow_file = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    write_sessions(fast_file, [_session(f"f{i}", e, 10) for i, e in enumerate(PATTERNS)])
    write_sessions(slow_file, [_session(f"s{i}", e, 60_000) for i, e in enumerate(PATTERNS)])
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(timed), "--normal", str(fast_file)]
    argv += ["--abnormal", str(slow_file), "--report", str(report), "--device", "cpu"]
    assert main(["--log-level", "warning", *argv]) == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert (r["recall"], r["auroc"]) == (1.0, 1.0)
    # Re-calibrated for another strategy: the validation slice is scored with its gaps
    # (without them every gap is unknown, and the threshold lands far above the slow ones).
    argv += ["--groups", "3", "--calibrate-on", str(day), "--val-fraction", "0.2"]
    argv += ["--token-cache-dir", str(tmp_path / "token-cache")]
    assert main(["--log-level", "warning", *argv]) == 0
    r = orjson.loads((report / "report.json").read_bytes())
    assert "re-calibrated" in r["threshold_source"] and r["strategy"]["groups"] == 3
    assert r["recall"] == 1.0 and r["threshold"] < 3 * scorer.threshold

    blind = WindowScorer.from_bundle(_train(tmp_path, "blind", day, 10), device="cpu")
    assert blind.time_buckets == 0
    fast, slow = blind.score_windows([_window(PATTERNS[0], 10), _window(PATTERNS[0], 60_000)], 0)
    assert slow.score == fast.score


def test_a_bundle_whose_manifest_disagrees_with_its_model_is_refused(tmp_path: Path) -> None:

    bundle = untrained_bundle(tmp_path / "b", ["A", "B"], [0.1, 0.2])
    raw = orjson.loads((bundle / MANIFEST).read_bytes())
    (bundle / MANIFEST).write_bytes(orjson.dumps({**raw, "time_buckets": 8}))
    with pytest.raises(BundleError, match="8 time buckets"):
        WindowScorer.from_bundle(bundle, device="cpu")


def test_the_pruned_head_and_scoring_see_the_token_types() -> None:
    # The last-layer pruning must feed the gap buckets as the whole encoder does, and the
    # buckets must change what the model says.
    torch.manual_seed(1)
    model = build_model(bert_config(get_preset("tiny"), 12, time_buckets=8))
    model.train(False)
    ids = torch.tensor([[CLS_ID, 5, 6, 7, 8, SEP_ID]])
    types = torch.tensor([[0, 0, 3, 3, 7, 0]])
    flat_idx = torch.tensor([2, 4])
    with torch.no_grad():
        whole = MaskedLM(model, whole_encoder=True)(ids, ids != 0, flat_idx, 2, types)
        pruned = MaskedLM(model)(ids, ids != 0, flat_idx, 2, types)
        blind = MaskedLM(model)(ids, ids != 0, flat_idx, 2)
    torch.testing.assert_close(pruned, whole, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pruned, blind)
    # Bucket 0 everywhere is what a time-blind call feeds.
    zero = score_token_windows(model, [[5, 6, 7, 8]], ScoringStrategy(), torch.device("cpu"))
    typed = score_token_windows(
        model, [[5, 6, 7, 8]], ScoringStrategy(), torch.device("cpu"), token_types=[[0] * 4]
    )
    np.testing.assert_allclose(zero[0].nll, typed[0].nll, rtol=1e-6)
    with pytest.raises(ValueError, match="token type outside"):
        score_token_windows(
            model, [[5, 6]], ScoringStrategy(), torch.device("cpu"), token_types=[[0, 8]]
        )


def test_evaluate_reads_sessions_with_their_gaps(tmp_path: Path) -> None:
    day = tmp_path / "s.jsonl"
    n = MAX_EVENTS + 2
    write_sessions(
        day,
        [Session("t", ("A",) * n, gaps_ms=(0, *range(1, n))), Session("u", ("A", "B"))],
    )
    timed, untimed = read_event_lists([day])
    assert isinstance(timed, TimedEvents) and gaps_of(untimed) is None
    w0, w1, w2 = split_sessions([timed, untimed]).windows
    assert gaps_of(w0) == (0, *range(1, MAX_EVENTS)) and len(w0) == MAX_EVENTS
    assert gaps_of(w1) == (0, MAX_EVENTS + 1) and w1 == ("A", "A")
    assert gaps_of(w2) is None
    events = tmp_path / "e.jsonl"
    lines = [(1_000, "s", "B"), (990, "s", "A"), (1_300, "s", "C")]
    events.write_bytes(
        b"".join(LogEvent(ts=t, service="x", session_id=sid, event_id=e).encode() + b"\n"
                 for t, sid, e in lines)
    )  # fmt: skip
    [seq] = read_event_lists([events])
    assert seq == ("A", "B", "C") and gaps_of(seq) == (0, 10, 300)
    with pytest.raises(ValueError, match="gaps for"):
        TimedEvents(("A",), (0, 1))


def test_a_time_blind_model_grown_to_time_buckets_scores_as_before() -> None:
    # A nightly retrain that turns time on warm-starts from a time-blind bundle.
    torch.manual_seed(2)
    model = build_model(bert_config(get_preset("tiny"), 12))
    model.train(False)
    windows = [[5, 6, 7, 8, 9]]
    before = score_token_windows(model, windows, ScoringStrategy(), torch.device("cpu"))
    grown = grow_time_buckets(model, 8)
    assert time_buckets_of(grown) == 8
    after = score_token_windows(
        grown, windows, ScoringStrategy(), torch.device("cpu"), token_types=[[0, 3, 7, 1, 2]]
    )
    np.testing.assert_allclose(after[0].nll, before[0].nll, rtol=1e-5)
    with pytest.raises(ConfigError, match="already has 8"):
        grow_time_buckets(grown, 4)


def test_resuming_or_warm_starting_with_other_time_buckets_is_refused(tmp_path: Path) -> None:
    day = _fast_day(tmp_path / "days", 30)
    first = _train(tmp_path, "first", day, 1, time_buckets=8)
    s = tiny_settings(tmp_path, epochs=1, val_fraction=0.2, time_buckets=4)
    with pytest.raises(ConfigError, match="time_buckets is 4 but the model"):
        run_training(s, TrainRequest(DataSelection((day,)), tmp_path / "second", first))
