"""Which rule scored an event, from the scoring arrays to the Score record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.errors import DecodeError
from schemas.scores import RULE_REASONS, Expected, SurprisingEvent
from schemas.vocab import UNK_ID
from schemas.windows import Window
from tests.unit.untrained_bundle import untrained_bundle
from trainer.scoring.rules import REASONS, event_nll, rule_codes
from trainer.scoring.scorer import WindowScorer
from trainer.scoring.strategy import ScoringStrategy

ALL = ScoringStrategy(count_ceilings=True, known_ends=True, known_mixes=False)


def test_rule_codes_name_the_first_rule_that_applies() -> None:
    ids = np.array([UNK_ID, 5, 6, 7, UNK_ID])
    past = np.array([True, True, False, False, False])
    end = np.array([True, True, True, False, False])
    codes = rule_codes(ids, past, ALL, end)
    # [UNK] first, then the ceiling, then the end; none for the model's own NLL.
    assert [REASONS[c] for c in codes] == [
        "unseen_event",
        "past_count_ceiling",
        "unseen_end",
        None,
        "unseen_event",
    ]
    # A strategy without a rule does not name it.
    off = ScoringStrategy(count_ceilings=False, known_ends=False, known_mixes=False)
    assert [REASONS[c] for c in rule_codes(ids, past, off, end)] == [
        "unseen_event",
        None,
        None,
        None,
        "unseen_event",
    ]


def test_event_nll_caps_the_ruled_events_and_keeps_unpredicted_ones() -> None:
    logp = np.array([-1.0, -2.0, np.nan, -50.0], dtype=np.float32)
    codes = np.array([1, 0, 2, 0], dtype=np.int8)
    nll = event_nll(logp, codes, ALL)
    unk = np.float32(ALL.unk_nll)
    assert nll[0] == unk and nll[1] == pytest.approx(2.0)
    assert np.isnan(nll[2])  # not predicted: no rule makes it a score
    assert nll[3] == unk  # capped


def test_a_surprising_event_round_trips_its_reason() -> None:
    for reason in (*RULE_REASONS, None):
        s = SurprisingEvent(3, "E5", 20.7, (Expected("E1", 0.5),), reason=reason)
        d = s.to_dict()
        assert ("reason" in d) == (reason is not None)
        assert SurprisingEvent.from_dict(orjson.loads(orjson.dumps(d)), "s") == s
    for bad in ("model", 3, ["unseen_event"]):
        raw = {"position": 0, "event_id": "E5", "nll": 1.0, "expected": [], "reason": bad}
        with pytest.raises(DecodeError, match="reason"):
            SurprisingEvent.from_dict(raw, "s")


def test_a_scored_window_says_which_event_training_never_had(tmp_path: Path) -> None:
    bundle = untrained_bundle(tmp_path / "b", "ABCD", [0.1, 0.2, 0.3])
    scorer = WindowScorer.from_bundle(bundle, device="cpu")
    window = Window.build("s", 0, ("A", "NEW", "B"), 1000, 2000, 0, 0, 0)
    (score,) = scorer.score_windows([window], 3000)
    by_id = {s.event_id: s for s in score.surprising}
    assert by_id["NEW"].reason == "unseen_event"
    assert by_id["NEW"].nll == pytest.approx(scorer.strategy.unk_nll)
    assert by_id["A"].reason is None and by_id["B"].reason is None
    # The record carries it to the alerts topic.
    assert orjson.loads(score.encode())["surprising"][0]["reason"] == "unseen_event"
