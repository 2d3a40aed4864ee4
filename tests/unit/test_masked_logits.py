"""`masked_logits` runs the last layer at the selected positions only: it must give what the
whole HF model gives there."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.loop import MaskedLM
from trainer.model import (
    PRESETS,
    bert_config,
    build_model,
    flat_selection,
    masked_logits,
    selected_rows,
)

VOCAB_SIZE = 50


def batch(
    lengths: list[int], seq: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ids, attention mask, and a random selection of real (non-[CLS]/[SEP]) positions,
    at least one per row."""
    rng = np.random.default_rng(seed)
    ids = torch.zeros(len(lengths), seq, dtype=torch.long)
    attention = torch.zeros(len(lengths), seq, dtype=torch.long)
    positions = torch.zeros(len(lengths), seq, dtype=torch.bool)
    for r, n in enumerate(lengths):
        ids[r, :n] = torch.from_numpy(rng.integers(5, VOCAB_SIZE, size=n))
        attention[r, :n] = 1
        pick = rng.random(n) < 0.2
        pick[0] = pick[n - 1] = False
        pick[rng.integers(1, n - 1)] = True
        positions[r, :n] = torch.from_numpy(pick)
    return ids, attention, positions


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_masked_logits_equal_the_full_model_at_the_selected_positions(layers: int) -> None:
    torch.manual_seed(layers)
    preset = dataclasses.replace(PRESETS["tiny"], layers=layers)
    model = build_model(bert_config(preset, VOCAB_SIZE))
    model.train(False)
    ids, attention, positions = batch([12, 30, 5, 30, 17], 30, seed=layers)
    with torch.inference_mode():
        full = model(input_ids=ids, attention_mask=attention).logits[positions]
        ours = masked_logits(model, ids, attention, positions)
    assert ours.shape == full.shape
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)


def test_masked_logits_follow_the_model_in_training_mode() -> None:
    # Without dropout the two must agree in train mode too, gradients included.
    preset = dataclasses.replace(PRESETS["tiny"], dropout=0.0)
    torch.manual_seed(0)
    model = build_model(bert_config(preset, VOCAB_SIZE))
    model.train(True)
    ids, attention, positions = batch([9, 20, 14], 20, seed=3)
    full = model(input_ids=ids, attention_mask=attention).logits[positions]
    ours = masked_logits(model, ids, attention, positions)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)
    weight = model.bert.embeddings.word_embeddings.weight
    g_full = torch.autograd.grad(full.sum(), weight, retain_graph=True)
    g_ours = torch.autograd.grad(ours.sum(), weight)
    torch.testing.assert_close(g_ours[0], g_full[0], atol=1e-4, rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=5))
def test_selected_rows_list_each_rows_positions_in_order(rows_in: list[list[bool]]) -> None:
    positions = torch.tensor(rows_in, dtype=torch.bool)
    rows, valid = selected_rows(positions)
    assert rows.shape == valid.shape
    for r, row in enumerate(rows_in):
        want = [i for i, x in enumerate(row) if x]
        assert rows[r][valid[r]].tolist() == want
    # Row-major order of the valid entries is the order `tensor[positions]` uses.
    flat = (rows + torch.arange(len(rows_in))[:, None] * 6)[valid]
    assert flat.tolist() == torch.nonzero(positions.reshape(-1)).flatten().tolist()


def test_no_selected_position_gives_no_logits() -> None:
    model = build_model(bert_config(PRESETS["tiny"], VOCAB_SIZE))
    model.train(False)
    ids, attention, _ = batch([8, 6], 8, seed=0)
    with torch.inference_mode():
        out = masked_logits(model, ids, attention, torch.zeros_like(ids, dtype=torch.bool))
    assert out.shape == (0, VOCAB_SIZE)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.booleans(), min_size=7, max_size=7), min_size=1, max_size=5))
def test_flat_selection_matches_selected_rows(rows_in: list[list[bool]]) -> None:
    positions = torch.tensor(rows_in, dtype=torch.bool)
    rows, valid = selected_rows(positions)
    flat_idx = torch.nonzero(positions.reshape(-1)).view(-1)
    m = int(positions.sum(dim=1).max())
    got_rows, keep = flat_selection(flat_idx, (len(rows_in), 7), m)
    assert torch.equal(got_rows[valid], rows[valid])
    assert keep.tolist() == torch.nonzero(valid.reshape(-1)).view(-1).tolist()


def test_training_head_equals_the_whole_encoder_in_loss_and_gradients() -> None:
    # The trainer's MaskedLM prunes the last layer to the masked positions; without dropout
    # it must compute the same logits and the same gradient for every parameter.
    preset = dataclasses.replace(PRESETS["tiny"], dropout=0.0)
    torch.manual_seed(5)
    model = build_model(bert_config(preset, VOCAB_SIZE))
    model.train(True)
    ids, attention, positions = batch([16, 9, 25, 4], 25, seed=5)
    flat_idx = torch.nonzero(positions.reshape(-1)).view(-1)
    m = int(positions.sum(dim=1).max())
    grads = []
    for whole in (True, False):
        model.zero_grad(set_to_none=True)
        logits = MaskedLM(model, whole_encoder=whole)(ids, attention, flat_idx, m)
        (logits.square().mean() + logits[:, 7].sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        if whole:
            want = logits.detach()
        else:
            torch.testing.assert_close(logits.detach(), want, atol=1e-5, rtol=1e-5)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-5, rtol=1e-4, msg=name)
