"""Two gloo ranks, each on half of a global batch, make the same update as one rank on all of
it: the loss is normalized by the global masked-token count, not each rank's own."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import orjson
import pytest
import safetensors.torch
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from transformers import BertForMaskedLM

from schemas.vocab import SPECIALS
from trainer.collate import Batch, make_batch
from trainer.dataset import WindowStore
from trainer.distributed import Dist
from trainer.loop import MaskedLM, train_step
from trainer.masking import MaskSpec
from trainer.model import bert_config, build_model, get_preset

VOCAB = 40
CPU = torch.device("cpu")


def _store() -> WindowStore:
    rng = np.random.default_rng(0)
    lengths = np.full(12, 14, dtype=np.int64)
    tokens = rng.integers(len(SPECIALS), VOCAB, int(lengths.sum())).astype(np.uint16)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return WindowStore(tokens, starts, lengths)


def _halves() -> tuple[Batch, Batch]:
    """Rank 0's and rank 1's batches: unequal rows, so unequal masked-token counts."""
    st = _store()
    a = make_batch(st, np.arange(0, 8), 1, VOCAB, MaskSpec(), torch.Generator().manual_seed(1))
    b = make_batch(st, np.arange(8, 11), 1, VOCAB, MaskSpec(), torch.Generator().manual_seed(2))
    assert a.input_ids.shape[1] == b.input_ids.shape[1] and a.n_masked != b.n_masked
    return a, b


def _joined(a: Batch, b: Batch) -> Batch:
    return Batch(
        torch.cat([a.input_ids, b.input_ids]),
        torch.cat([a.flat_idx, b.flat_idx + a.input_ids.numel()]),
        torch.cat([a.targets, b.targets]),
        a.n_masked + b.n_masked,
        a.n_tokens + b.n_tokens,
        max(a.row_masked, b.row_masked),
    )


def _model() -> BertForMaskedLM:
    torch.manual_seed(0)
    cfg = bert_config(get_preset("tiny"), VOCAB)
    cfg.hidden_dropout_prob = 0.0  # dropout would draw different masks on each side
    cfg.attention_probs_dropout_prob = 0.0
    return build_model(cfg)


def _step(net: torch.nn.Module, model: torch.nn.Module, batch: Batch, d: Dist) -> float:
    # Plain SGD, unclipped: its update is proportional to the gradient, so a wrong loss
    # scale shows (Adam's first step, or a clip that binds, would normalize it away).
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = LambdaLR(opt, lambda _: 1.0)
    return train_step(net, opt, sched, batch, d, grad_clip=0.0).loss


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = _model()
        net = DistributedDataParallel(MaskedLM(model))
        a, b = _halves()
        loss = _step(net, model, a if rank == 0 else b, Dist(rank, 2, rank, CPU))
        if rank == 0:
            # Cloned: the tied embedding/decoder weights must not share storage on disk.
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            safetensors.torch.save_file(state, os.path.join(out, "ddp.safetensors"))
            Path(out, "loss.json").write_bytes(orjson.dumps(loss))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_update_like_one_rank_on_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(  # type: ignore[attr-defined,no-untyped-call]
        _worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True
    )
    ddp_state = safetensors.torch.load_file(str(tmp_path / "ddp.safetensors"))
    ddp_loss = orjson.loads((tmp_path / "loss.json").read_bytes())

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = _halves()
        model = _model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        loss = _step(MaskedLM(model), model, _joined(a, b), Dist(0, 1, 0, CPU))
        # The test can fail: averaging per-rank mean losses gives a different number.
        m_a, m_b = _model(), _model()
        loss_a = _step(MaskedLM(m_a), m_a, a, Dist(0, 1, 0, CPU))
        loss_b = _step(MaskedLM(m_b), m_b, b, Dist(0, 1, 0, CPU))
    finally:
        torch.set_num_threads(threads)
    assert abs(ddp_loss - loss) < 1e-5
    assert abs((loss_a + loss_b) / 2 - loss) > 1e-4
    single = model.state_dict()
    moved = max(float((single[k] - before[k]).abs().max()) for k in single)
    assert moved > 1e-3  # the step did change the weights
    worst = max(float((single[k] - ddp_state[k]).abs().max()) for k in single)
    assert worst < 1e-5
