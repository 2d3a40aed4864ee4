"""Packed rows (trainer/packing.py): the same loss and gradients as one window per row."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.bundle import WEIGHTS
from schemas.vocab import CLS_ID, PAD_ID, SEP_ID
from tests.train_data import hdfs_day, tiny_settings
from trainer.collate import Batch, pack_batch
from trainer.dataset import DataSelection
from trainer.loop import MaskedLM
from trainer.masking import IGNORE, MaskSpec, mask_tokens
from trainer.model import PRESETS, bert_config, build_model, get_preset
from trainer.packing import pack_rows, segment_mask, segment_positions
from trainer.train import TrainRequest, run_training

VOCAB = 40


def masked_batch(lengths: list[int], seed: int) -> Batch:
    """Windows of `lengths` events ([CLS] events [SEP]), one per row, masked as training
    masks them, as trainer.collate.make_batch builds them."""
    rng = random.Random(seed)
    width = max(lengths) + 2
    ids = torch.full((len(lengths), width), PAD_ID, dtype=torch.int64)
    for i, n in enumerate(lengths):
        ids[i, : n + 2] = torch.tensor(
            [CLS_ID, *(rng.randrange(5, VOCAB) for _ in range(n)), SEP_ID]
        )
    g = torch.Generator().manual_seed(seed)
    masked, labels = mask_tokens(ids, VOCAB, MaskSpec(mask_prob=0.3), g)
    predicted = labels != IGNORE
    flat_idx = torch.nonzero(predicted.view(-1)).view(-1)
    return Batch(
        input_ids=masked,
        flat_idx=flat_idx,
        targets=labels.view(-1)[flat_idx],
        n_masked=int(flat_idx.numel()),
        n_tokens=int((ids != PAD_ID).sum()),
        row_masked=int(predicted.sum(dim=1).max()),
    )


def loss_and_grads(net: MaskedLM, b: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    ids = b.input_ids
    logits = net(ids, ids != PAD_ID, b.flat_idx, b.row_masked, None, b.segments)
    loss = F.cross_entropy(logits, b.targets, reduction="sum") / b.n_masked
    loss.backward()  # type: ignore[no-untyped-call]
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("row_tokens", [64, 160, 512])
def test_packed_rows_give_the_unpacked_loss_and_gradients(row_tokens: int) -> None:
    torch.manual_seed(0)
    net = MaskedLM(build_model(bert_config(get_preset("tiny"), VOCAB)))
    net.eval()  # no dropout: the two passes must see the same function
    lengths = [1, 3, 40, 7, 12, 2, 25, 9, 60, 5, 5, 18]
    plain = masked_batch(lengths, seed=1)
    packed = pack_batch(plain, row_tokens)
    assert packed.input_ids.shape[0] < len(lengths)  # windows really share rows
    assert (packed.n_masked, packed.n_tokens) == (plain.n_masked, plain.n_tokens)
    assert sorted(packed.targets.tolist()) == sorted(plain.targets.tolist())
    loss, grads = loss_and_grads(net, plain)
    packed_loss, packed_grads = loss_and_grads(net, packed)
    torch.testing.assert_close(packed_loss, loss, rtol=1e-5, atol=1e-6)
    assert grads.keys() == packed_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(packed_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_without_the_segment_mask_windows_would_see_each_other() -> None:
    """The check above can fail: packing without the mask changes the loss."""
    torch.manual_seed(0)
    net = MaskedLM(build_model(bert_config(get_preset("tiny"), VOCAB)))
    net.eval()
    plain = masked_batch([10, 12, 9, 14], seed=2)
    packed = pack_batch(plain, 512)
    leaky = Batch(**{**packed.__dict__, "segments": None})
    loss, _ = loss_and_grads(net, plain)
    leaky_loss, _ = loss_and_grads(net, leaky)
    assert abs(float(leaky_loss) - float(loss)) > 1e-4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 100), max_size=40), st.integers(1, 160))
def test_pack_rows_places_every_window_once_within_the_row_budget(
    lengths: list[int], row_tokens: int
) -> None:
    rows = pack_rows(lengths, row_tokens)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert len(row) == 1 or sum(lengths[i] for i in row) <= row_tokens


def test_positions_restart_and_attention_stays_in_each_window() -> None:
    segments = torch.tensor([[0, 0, 0, 1, 1, 2, -1, -1]])
    assert segment_positions(segments).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]
    mask = segment_mask(segments)[0]
    assert mask[3].tolist() == [False, False, False, True, True, False, False, False]
    assert mask[6].tolist() == [False] * 6 + [True, False]  # padding: itself only


@pytest.mark.slow
def test_training_with_packed_rows_ends_with_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`logad train`'s path end to end (run_training), with dropout off so that both runs
    draw nothing at random after the masks: packed rows change no weight."""
    monkeypatch.setitem(PRESETS, "tiny", dataclasses.replace(PRESETS["tiny"], dropout=0.0))
    data = DataSelection((hdfs_day(tmp_path / "data", 130),))
    bundles = {}
    for pack in (0, 1024):
        s = tiny_settings(tmp_path, pack_tokens=pack, epochs=1)
        out = tmp_path / f"pack-{pack}"
        result = run_training(s, TrainRequest(data, out))
        assert result.manifest is not None
        bundles[pack] = safetensors.torch.load_file(str(out / WEIGHTS))
    assert bundles[0].keys() == bundles[1024].keys()
    for name, w in bundles[0].items():
        torch.testing.assert_close(bundles[1024][name], w, rtol=1e-4, atol=1e-5, msg=name)
