"""The model: HF transformers `BertForMaskedLM` over event ids, and its presets.

Only this module and the ones that train or score touch torch. Weights are stored as
safetensors; nothing here ever unpickles.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import safetensors.torch
import torch
from transformers import BertConfig, BertForMaskedLM
from transformers.utils import logging as hf_logging

from schemas.bundle import CONFIG, WEIGHTS
from schemas.errors import BundleError, ConfigError
from schemas.vocab import PAD_ID
from schemas.windows import MAX_TOKENS
from trainer.packing import segment_mask, segment_positions

# transformers prints through a stderr handler of its own, plain text even under
# --log-json: its records go to the root logger instead, which logad renders.
hf_logging.disable_default_handler()
hf_logging.enable_propagation()

PresetName = Literal["base", "small", "tiny"]


@dataclass(frozen=True)
class ModelPreset:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int = MAX_TOKENS
    vocab_size: int = 10_000
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")


PRESETS: dict[str, ModelPreset] = {
    # Production: BERT-base shape over a 10k event vocabulary.
    "base": ModelPreset(hidden=768, layers=12, heads=12, intermediate=3072),
    # CPU-sized, for the demo and tests.
    "small": ModelPreset(hidden=256, layers=4, heads=4, intermediate=1024),
    "tiny": ModelPreset(hidden=64, layers=2, heads=2, intermediate=256),
}


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})") from None


def bert_config(preset: ModelPreset, vocab_size: int, time_buckets: int = 0) -> BertConfig:
    """A BertConfig sized to the actual vocab (never bigger than the preset's cap). With
    `time_buckets` N > 0, BERT's token-type embedding carries each token's time-gap bucket
    (trainer/time_gaps.py): N types instead of the one a time-blind model has."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=preset.hidden,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        intermediate_size=preset.intermediate,
        max_position_embeddings=preset.max_positions,
        hidden_dropout_prob=preset.dropout,
        attention_probs_dropout_prob=preset.dropout,
        type_vocab_size=time_buckets or 1,
        pad_token_id=PAD_ID,
    )


def time_buckets_of(model: BertForMaskedLM) -> int:
    """The model's time buckets (`bert_config`): 0 for a time-blind model."""
    n = int(model.config.type_vocab_size)
    return n if n > 1 else 0


def grow_time_buckets(model: BertForMaskedLM, time_buckets: int) -> BertForMaskedLM:
    """Give a time-blind model `time_buckets` token types, each starting as its one type:
    it then scores as before until training teaches it the gaps."""
    old = model.bert.embeddings.token_type_embeddings
    if old.num_embeddings != 1:
        raise ConfigError(f"the model already has {old.num_embeddings} token types")
    new = torch.nn.Embedding(time_buckets, old.embedding_dim, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight.expand(time_buckets, -1))
    model.bert.embeddings.token_type_embeddings = new
    model.config.type_vocab_size = time_buckets
    return model


def build_model(config: BertConfig, device: torch.device | str = "cpu") -> BertForMaskedLM:
    # SDPA everywhere: on GPU it dispatches to flash/efficient kernels, on CPU it is exact.
    config._attn_implementation = "sdpa"
    model = BertForMaskedLM(config)
    if int(config.type_vocab_size) > 1:
        ramp_time_buckets(model)
    torch.nn.Module.to(model, device)  # the base method: in place, and typed
    return model


RAMP_STEP = 1.0
"""How far apart neighbouring time buckets start, in units of a freshly initialised
embedding row's norm (initializer_range * sqrt(hidden))."""


def ramp_time_buckets(model: BertForMaskedLM, step: float = RAMP_STEP) -> None:
    """Start the time-bucket embeddings on a line: bucket b at b steps along one random
    direction, 0 (no gap known) at the origin. Training moves only the buckets its data
    holds; the others keep their place on the line, so a gap far longer than any seen
    lands far from every trained bucket and disturbs the model's predictions in
    proportion, instead of looking like a random bucket of the same size as a seen one."""
    emb = model.bert.embeddings.token_type_embeddings
    n, hidden = emb.weight.shape
    direction = torch.randn(hidden)
    direction /= direction.norm()
    unit = float(model.config.initializer_range) * hidden**0.5
    with torch.no_grad():
        emb.weight.copy_(torch.arange(n, dtype=torch.float32)[:, None] * (step * unit) * direction)


def masked_logits(
    model: BertForMaskedLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits at the selected positions only: `positions` is a bool mask shaped like input_ids.
    `token_type_ids`: a time-aware model's gap buckets (None: all 0).

    Returns (n_selected, vocab), in row-major order of `positions`. Nothing reads the last
    layer's output anywhere else, so that layer computes its queries, attention output and
    feed-forward only at the selected positions (its keys and values still come from every
    position), and the LM head runs only there. Scoring selects one position in k, so this
    skips most of the last layer (bench/score_throughput.py measures the gain). The layers
    are HF's modules, run by `_layer` as `BertLayer` runs them.
    """
    rows, valid = selected_rows(positions)
    keep = valid.view(-1).nonzero()[:, 0]
    return gathered_logits(model, input_ids, attention_mask, rows, keep, token_type_ids)


def gathered_logits(
    model: BertForMaskedLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    keep: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    segments: torch.Tensor | None = None,
) -> torch.Tensor:
    """`masked_logits` with the selection given as `rows` (batch, m), the positions each
    row's last layer computes, and `keep`, the flat indices into (batch * m) whose logits
    are returned, in that order (`selected_rows`, `flat_selection`). `segments`: packed rows
    (trainer/packing.py), each position's window within its row; attention then stays
    inside each window and positions restart at each window's first token."""
    bert = model.bert
    if segments is None:
        hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        keys = attention_mask.bool()[:, None, None, :]  # (batch, 1, 1, seq): True = attend
        last_keys = keys
    else:
        positions = segment_positions(segments)
        hidden = bert.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=positions
        )
        keys = segment_mask(segments)[:, None]  # (batch, 1, seq, seq)
        seq = segments.shape[1]
        last_keys = keys.gather(2, rows[:, None, :, None].expand(-1, 1, -1, seq))
    *body, last = bert.encoder.layer
    for layer in body:
        hidden = _layer(layer, hidden, hidden, keys)
    queries = hidden.gather(1, rows.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    out = _layer(last, queries, hidden, last_keys)
    logits: torch.Tensor = model.cls(out.reshape(-1, out.shape[-1]).index_select(0, keep))
    return logits


def selected_rows(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the selected positions in order, left-aligned and padded with 0 to the
    largest count, and which entries are real: (batch, m) indices and (batch, m) bools."""
    counts = positions.sum(dim=1)
    m = int(counts.max()) if positions.numel() else 0
    # A stable sort of "not selected" brings each row's selected positions first, in order.
    rows = torch.argsort((~positions).to(torch.int8), dim=1, stable=True)[:, :m]
    valid = torch.arange(m, device=positions.device)[None, :] < counts[:, None]
    return rows, valid


def flat_selection(
    flat_idx: torch.Tensor, shape: tuple[int, int], m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`gathered_logits`' (rows, keep) from ascending flat indices into a (batch, seq)
    tensor, at most `m` of them in any row. Everything stays on flat_idx's device, with no
    host sync: training knows m from the CPU collate step."""
    batch, seq = shape
    row = torch.div(flat_idx, seq, rounding_mode="floor")
    first = torch.searchsorted(row, torch.arange(batch, device=flat_idx.device))
    j = torch.arange(flat_idx.numel(), device=flat_idx.device) - first[row]
    rows = torch.zeros(batch, m, dtype=flat_idx.dtype, device=flat_idx.device)
    rows[row, j] = flat_idx - row * seq
    return rows, row * m + j


def _layer(layer: Any, queries: torch.Tensor, context: torch.Tensor, keys: torch.Tensor) -> Any:
    """One `BertLayer` whose queries are `queries` (batch, m, hidden) and whose keys and
    values come from `context` (batch, seq, hidden), masked by `keys`. With queries =
    context, this is `BertLayer.forward` (eval or train; SDPA attention)."""
    att = layer.attention.self
    b, m, h = queries.shape
    s = context.shape[1]
    heads, size = att.num_attention_heads, att.attention_head_size
    q = att.query(queries).view(b, m, heads, size).transpose(1, 2)
    k = att.key(context).view(b, s, heads, size).transpose(1, 2)
    v = att.value(context).view(b, s, heads, size).transpose(1, 2)
    o = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=keys, dropout_p=att.dropout.p if att.training else 0.0, scale=att.scaling
    )
    a = layer.attention.output(o.transpose(1, 2).reshape(b, m, h), queries)
    return layer.output(layer.intermediate(a), a)


def device_for(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@contextlib.contextmanager
def autocast_for(device: torch.device) -> Iterator[None]:
    """bf16 autocast on GPU; plain fp32 on CPU."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def unwrap(model: torch.nn.Module) -> BertForMaskedLM:
    """The BertForMaskedLM under DDP and/or torch.compile wrappers."""
    inner: Any = model
    while True:
        if hasattr(inner, "module"):
            inner = inner.module
        elif hasattr(inner, "_orig_mod"):
            inner = inner._orig_mod
        else:
            break
    assert isinstance(inner, BertForMaskedLM)
    return inner


def save_model(model: torch.nn.Module, out_dir: Path) -> None:
    """Write config.json and model.safetensors (tied weights stored once)."""
    m = unwrap(model)
    (out_dir / CONFIG).write_text(m.config.to_json_string())
    # safetensors' save_model stores tied tensors (decoder = word embeddings) once.
    safetensors.torch.save_model(m, str(out_dir / WEIGHTS), metadata={"format": "pt"})


def load_model(bundle_dir: Path, device: torch.device | str = "cpu") -> BertForMaskedLM:
    """Load config.json + model.safetensors. Never reads a pickle file."""
    try:
        cfg = BertConfig.from_dict(orjson.loads((bundle_dir / CONFIG).read_bytes()))
        model = build_model(cfg, "cpu")
        safetensors.torch.load_model(model, str(bundle_dir / WEIGHTS), strict=True)
    except (OSError, orjson.JSONDecodeError, ValueError, TypeError, RuntimeError) as e:
        raise BundleError(f"cannot load model from {bundle_dir}: {e}") from None
    torch.nn.Module.to(model, device)
    torch.nn.Module.eval(model)
    return model


def preset_dict(preset: ModelPreset) -> dict[str, object]:
    return dataclasses.asdict(preset)
