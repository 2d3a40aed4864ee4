"""Raw messages to template ids against a bundle's set: known lines, new templates, the LRU,
and a set carried across a reload without renumbering."""

from __future__ import annotations

import dataclasses

import pytest

from schemas.errors import DecodeError
from schemas.scores import Expected, Score, SurprisingEvent
from schemas.templates import TemplateSet
from trainer.mining import TemplateMiner
from trainer.mining.lineage import carry_forward, extension_error, generalises
from trainer.mining.matcher import (
    NO_TEMPLATES,
    OVER_CAP,
    TemplateMatcher,
    event_id_for,
    with_new_templates,
)

TRAINING_LINES = [
    "Routing GET /api/orders/42 to order-service",
    "Routing POST /api/payments/7 to payment-service",
    "Order 42 created for customer 1001",
    "Order 43 created for customer 1002",
    "Payment authorized in 35 ms",
]


def bundle_set() -> TemplateSet:
    miner = TemplateMiner()
    for i, line in enumerate(TRAINING_LINES, 1):
        miner.mine(line, first_seen=f"train.log:{i}")
    return miner.to_set()


def score_with(*ids: str) -> Score:
    surprising = tuple(
        SurprisingEvent(i, e, 9.0, (Expected("T1", 0.9),)) for i, e in enumerate(ids)
    )
    return Score("w", "s", 0, "v1", 9.0, 1.0, True, len(ids), 0, 1, 2, surprising)


def test_known_lines_get_the_bundle_ids_and_a_new_line_a_new_id() -> None:
    bundle = bundle_set()
    last = bundle.templates[-1].number
    m = TemplateMatcher(bundle)
    routing = m.id_of("Routing GET /api/orders/9 to order-service", 0)
    assert routing in m.known
    assert m.id_of("Order 77 created for customer 5", 0) in m.known
    new = m.id_of("Disk /var/lib/kafka is 97% full, rejecting writes", 1_800_000_000_000)
    assert new == f"T{last + 1}" and new not in m.known
    assert m.new_templates == 1
    assert m.new_template(new) == "Disk /var/lib/kafka is <*> full, rejecting writes"
    assert m.new_template(routing) is None  # the bundle knows it
    assert m.new_template("T999") is None
    # The same line again (from the LRU), and another like it, keep that id.
    assert m.id_of("Disk /var/lib/kafka is 97% full, rejecting writes", 2) == new
    assert m.id_of("Disk /data is 99% full, rejecting writes", 3) == new
    assert m.new_template(new) == "Disk <*> is <*> full, rejecting writes"  # generalised
    entry = m.to_set().templates[-1]
    assert (entry.id, entry.first_seen) == (new, "2027-01-15T08:00:00.000+00:00")


def test_the_lru_is_bounded_and_its_answers_match_the_miner() -> None:
    m = TemplateMatcher(bundle_set(), lru_size=2)
    plain = TemplateMatcher(bundle_set(), lru_size=1)
    lines = [f"Order {n} created for customer {n * 3}" for n in range(10)] + TRAINING_LINES
    for line in lines * 2:
        assert m.id_of(line, 0) == plain.id_of(line, 0)
    assert len(m._lru) == 2
    long_line = "Routing GET /" + "x" * 600 + " to order-service"
    m.id_of(long_line, 0)
    assert long_line not in m._lru


def test_event_id_for_prefers_the_event_id_and_needs_templates_for_a_message() -> None:
    m = TemplateMatcher(bundle_set())
    assert event_id_for("E7", "anything", 0, m) == "E7"
    assert event_id_for("E7", None, 0, None) == "E7"
    assert event_id_for(None, TRAINING_LINES[0], 0, m) == m.id_of(TRAINING_LINES[0], 0)
    with pytest.raises(DecodeError, match=f"^{NO_TEMPLATES}$"):
        event_id_for(None, "Routing GET /x to y", 0, None)


def test_alerts_name_new_templates_only() -> None:
    m = TemplateMatcher(bundle_set())
    known = m.id_of(TRAINING_LINES[0], 0)
    new = m.id_of("Circuit breaker OPEN for inventory-service after 5 failures", 0)
    out = with_new_templates(score_with(known, new, "E.not.mined"), m)
    assert [s.template for s in out.surprising] == [
        None,
        "Circuit breaker OPEN for inventory-service after <*> failures",
        None,
    ]
    plain = score_with(known)
    assert with_new_templates(plain, m) is plain
    assert with_new_templates(score_with(new), None).surprising[0].template is None


def test_a_successor_keeps_the_ids_mined_past_its_bundle() -> None:
    bundle = bundle_set()
    live = TemplateMatcher(bundle)
    lines = ["Cache miss for key user:42", "Retrying call to stock-service (attempt 2)"]
    ids = [live.id_of(line, 0) for line in lines]
    # A reload to a bundle that knows the first new template (it was retrained on it) but
    # not the second (mined after the archive was read): neither id moves.
    retrained = TemplateSet(bundle.params, live.to_set().templates[: len(bundle.templates) + 1])
    nxt = TemplateMatcher(retrained, live.to_set())
    assert [nxt.id_of(line, 0) for line in lines] == ids
    assert ids[0] in nxt.known and nxt.new_template(ids[1]) is not None
    # The same from a restart that reads the archive's set back.
    assert [TemplateMatcher(bundle, live.to_set()).id_of(x, 0) for x in lines] == ids


def test_extension_means_no_id_lost_or_changed() -> None:
    parent = bundle_set()
    assert extension_error(parent, parent) is None
    t = parent.templates
    wider = TemplateSet(
        parent.params, (dataclasses.replace(t[0], template="Routing <*> <*> to <*>"), *t[1:])
    )
    assert generalises(wider.templates[0].template, t[0].template)
    assert extension_error(parent, wider) is None
    renamed = TemplateSet(
        parent.params, (dataclasses.replace(t[0], template="Shutting down"), *t[1:])
    )
    assert extension_error(parent, renamed) == (
        f"{t[0].id} was {t[0].template!r} and is 'Shutting down'"
    )
    assert extension_error(parent, TemplateSet(parent.params, t[1:])) == (
        f"it lacks {t[0].id} ({t[0].template!r})"
    )
    merged, disagree = carry_forward(renamed, wider)
    assert disagree == [t[0].id] and merged.templates[0].template == "Shutting down"
    merged, disagree = carry_forward(parent, wider)
    assert disagree == [] and merged.templates[0].template == "Routing <*> <*> to <*>"


def test_past_max_new_a_line_unlike_every_template_gets_over_cap() -> None:
    m = TemplateMatcher(bundle_set(), max_new=2)
    known = m.id_of("Payment authorized in 12 ms", 0)
    assert known in m.known
    firsts = [m.id_of(f"strange line kind {w} happened", 0) for w in ("aa", "bb")]
    assert firsts[0] not in m.known and firsts[1] not in m.known
    assert m.new_templates == 2
    assert m.id_of("another strange thing never seen", 0) == OVER_CAP
    assert m.id_of("yet another line of its own words", 0) == OVER_CAP
    assert m.new_templates == 2 and m.over_cap == 2
    # Lines that fit a template held still get its id.
    assert m.id_of("Payment authorized in 7 ms", 0) == known
    assert m.id_of("strange line kind aa happened", 0) == firsts[0]
    assert m.new_template(OVER_CAP) is None
    assert OVER_CAP not in {t.id for t in m.to_set().templates}
