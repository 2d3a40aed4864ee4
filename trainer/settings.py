"""`TrainSettings`: every knob of `logad train`, with the production defaults.

Built by `schemas.runtime.settings.build_settings` (defaults < config file < LOGAD_* env < flags).
The data selection (files, dates), the output directory and the warm-start bundle are
per-invocation arguments, not settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schemas.bundle import MAX_TIME_BUCKETS
from schemas.runtime.secret import Secret
from schemas.signing import check_bundle_key
from schemas.vocab import DEFAULT_MAX_SIZE, SPECIALS
from schemas.windows import MAX_TOKENS
from trainer.window_filter import WindowFilterSettings


def default_token_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "logad" / "tokens"


@dataclass(frozen=True)
class TrainSettings:
    """Training

    The model, optimizer, data and calibration knobs of `logad train`."""

    preset: Literal["base", "small", "tiny"] = "base"
    """Model shape: 'base' (production, BERT-base) or 'small'/'tiny' (CPU, demo, tests)."""
    time_buckets: int = 0
    """Time-aware scoring: the model sees the time between a session's consecutive events
    as one of this many log2 buckets (BERT's token type; docs/scoring.md), so a session
    can score high on latency alone. Needs days with per-event gaps (`gaps_ms`); the
    bundle records it and every scorer feeds the windows' gaps. 0: off, a time-blind
    model; else 2 to 64 (16 tells gaps apart up to ~16 s)."""
    epochs: int = 3
    """Passes over the training windows (min_steps and max_steps may end a run after more
    or fewer)."""
    min_steps: int = 0
    """Train at least this many optimizer steps, passing over the windows again as often as
    needed (0: `epochs` passes decide)."""
    max_steps: int = 0
    """Train at most this many optimizer steps, ending mid-pass if need be (0: no cap). The
    warm-up and cosine schedule span the steps actually taken."""
    lr: float = 2e-5
    """Peak AdamW learning rate (reached after warm-up, then cosine-annealed to 0)."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay; never applied to biases or LayerNorm weights."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    adam_eps: float = 1e-8
    """AdamW epsilon."""
    warmup_steps: int = 0
    """Linear warm-up steps before the cosine decay (0: none)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    mask_prob: float = 0.15
    """Share of event tokens selected for prediction."""
    mask_token_frac: float = 0.8
    """Of the selected tokens, the share replaced by [MASK]."""
    random_token_frac: float = 0.1
    """Of the selected tokens, the share replaced by a random event token (the rest kept)."""
    tokens_per_batch: int = 65_536
    """Padded tokens per batch per rank (batch rows x padded length); the global batch is this
    times the number of ranks."""
    bucket_width: int = 1
    """Windows are bucketed by length rounded up to this, and a batch pads to its bucket's
    length (1: to the exact longest window, the least padding; 8: fewer distinct shapes)."""
    val_fraction: float = 0.1
    """Share of sessions (chosen by a hash of session_id) held out for validation and
    calibration; never trained on. The threshold is a high quantile of these windows'
    scores, so they must be many: p99.9 needs over 1,000 to be more than the maximum."""
    val_covers_events: bool = False
    """An event that only validation sessions hold has its first window trained on instead,
    so every event of the training data is in the vocab (not [UNK] when it recurs). Off by
    default: a rare event seen once in normal data is then learned, not novel (on raw HDFS
    that hides one anomalous event; docs/quality.md)."""
    seed: int = 0
    """Seed for model init, shuffling, masking and dropout."""
    checkpoint_every_steps: int = 1000
    """Write a checkpoint every N optimizer steps (0: only at the end of each epoch)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in the run directory (older ones are removed)."""
    eval_every_steps: int = 0
    """Run validation every N steps as well as at the end of each epoch (0: epoch ends only)."""
    threshold_quantile: float = 0.999
    """Quantile of the validation scores used as the alert threshold (when no alert_budget
    is given)."""
    threshold_method: Literal["quantile", "pot"] = "quantile"
    """How the threshold comes from the validation scores: 'quantile' (the empirical one;
    with few windows, their maximum) or 'pot' (peaks over threshold: a generalised Pareto
    tail fitted to the highest scores, extrapolated to the budget; trainer/tail_threshold.py,
    falling back to the quantile with too few windows). Either way the bundle records a
    bootstrap interval of the threshold."""
    alert_budget: float | None = None
    """False alerts on normal traffic the threshold aims at, per alert_budget_unit (None:
    1 - threshold_quantile per window, e.g. 1 per 1,000 at p99.9)."""
    alert_budget_unit: Literal["per_1000_windows", "per_hour"] = "per_1000_windows"
    """Unit of alert_budget: per 1,000 windows scored, or per hour of traffic (converted with
    windows_per_hour)."""
    windows_per_hour: float | None = None
    """Windows the traffic yields per hour, for a budget per hour (None: measured from the
    training files' session timestamps, all windows over the span from the first to the
    last)."""
    pot_init_quantile: float = 0.98
    """With threshold_method 'pot': the initial threshold t whose excesses are fitted is this
    quantile of the validation scores (SPOT's 0.98), lowered to leave at least 20 excesses,
    never below the 0.75 quantile."""
    vocab_size: int = DEFAULT_MAX_SIZE
    """Cap on the vocabulary (special tokens included); the most frequent events are kept."""
    num_workers: int = 2
    """DataLoader worker processes preparing batches (0: prepare in the training process)."""
    device: str = "auto"
    """'auto' (cuda if present, else cpu), 'cpu', or 'cuda'."""
    cpu_threads: int = 0
    """Intra-op threads when training on CPU (0: torch's default, one per core); 1 is much
    faster for small models on a busy machine."""
    log_every_steps: int = 10
    """Log a progress line (non-terminal) and a metrics.jsonl record every N steps."""
    token_cache_dir: Path | None = None
    """Where tokenized daily files are cached (default: ~/.cache/logad/tokens)."""
    run_dir: Path | None = None
    """Where checkpoints, metrics.jsonl and loss.png go (default: '<out>.run' beside --out)."""
    score_groups: int = 10
    """Passes per window of the scoring strategy the bundle is calibrated for (and `serve`
    uses): each event is masked once over this many passes. More give each prediction more
    context and cost one forward pass each on long windows (docs/quality.md compares them)."""
    score_known_mixes: bool = True
    """Calibrate the bundle for a strategy that scores a known event mix 0 (`known_mixes`:
    a window whose event counts equal a training window's; docs/scoring.md)."""
    score_known_pairs: bool | None = None
    """With score_known_mixes: true, a known mix scores 0 only when each pair of its
    consecutive events also occurred in training (`known_pairs`), so a swapped step is still
    scored; false, any order of a known mix scores 0 (blind to order-only anomalies). Unset
    (the default): chosen from the training windows, false where the source interleaves
    (at least half the windows of a recurring mix come in more than one order), true where
    it does not (trainer/known_mixes.py, `order_varies`). Ignored when score_known_mixes is
    false."""
    score_count_ceilings: bool = True
    """Calibrate the bundle for a strategy that scores an occurrence of an event beyond its
    count ceiling like an unknown event (`count_ceilings`: see score_ceiling_support; events
    whose count a validation window exceeded get no ceiling; docs/scoring.md)."""
    score_ceiling_support: int = 3
    """Training windows that must hold a count of an event (or more) for it to be within
    the event's ceiling; an event fewer windows held has ceiling 0, so any occurrence of it
    scores like an unknown event. Recorded in every bundle, used by `count_ceilings`. More
    than one, so that an anomaly nobody flagged in the training data does not make its
    count normal (docs/quality.md compares values)."""
    score_known_ends: bool = True
    """Calibrate the bundle for a strategy that scores the session-end marker like an
    unknown event when no training window ended right after the event before it
    (`known_ends`: a session that stops where none stopped before; docs/scoring.md).
    Applies only with end_marker."""
    score_tokens_per_batch: int = 16_384
    """Token budget per scoring batch when calibrating on the validation slice."""
    end_marker: bool = True
    """Append the session-end event to each window that ends its session (fewer than 510
    events; trainer/end_marker.py), so the model learns where sessions end and flags ones
    that stop early. The bundle's vocab then holds it, and the scorer marks windows alike."""
    prefix_cut_fraction: float = 0.1
    """Share of session-ending training windows cut to a random prefix without the end
    marker (trainer/prefix_cuts.py), so the model judges whether a session may end where
    it does, and windows cut mid-session score as normal."""
    prune_last_layer: bool = True
    """Compute the last encoder layer only at the masked positions (keys and values still
    from every position): the same loss and gradients as the whole encoder, for less
    compute. False runs every position through it, as earlier versions did (with dropout,
    the random draws then match theirs)."""
    pack_tokens: int = 0
    """Pack each batch's windows into rows of up to this many tokens, attention kept inside
    each window (trainer/packing.py): fewer, longer rows, the same loss and gradients
    (0 = one window per row). Needs prune_last_layer."""
    templates: Path | None = None
    """The template set (templates.json of `logad parse`) the bundle carries, so that serve
    can map raw log lines to the event ids trained on (default: templates.json in a --data
    directory; with --init-from, the parent bundle's). It must extend the parent's."""
    complete_only: bool = False
    """Read only days marked complete (a .done marker) from directories; files named
    explicitly are always read."""
    bundle_key: Secret | None = None
    """Sign the bundle with this HMAC-SHA256 key, and verify the --init-from bundle's
    signature (schemas/signing.py): file:PATH, env:NAME, or the value in LOGAD_BUNDLE_KEY
    (unset: the bundle is not signed)."""
    window_filter: WindowFilterSettings = field(default=WindowFilterSettings())

    def __post_init__(self) -> None:
        check_bundle_key(self.bundle_key)
        _positive(self, "epochs", "tokens_per_batch", "bucket_width", "vocab_size")
        _positive(self, "log_every_steps", "keep_checkpoints", "score_tokens_per_batch")
        _positive(self, "score_groups")
        _positive(self, "score_ceiling_support")
        _non_negative(self, "warmup_steps", "checkpoint_every_steps", "eval_every_steps")
        _non_negative(self, "min_steps", "max_steps")
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"min_steps {self.min_steps} exceeds max_steps {self.max_steps}")
        _non_negative(self, "num_workers", "seed", "cpu_threads")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0")
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1 and self.adam_eps > 0):
            raise ValueError("adam betas must be in [0, 1) and adam_eps > 0")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        fracs = (self.mask_token_frac, self.random_token_frac)
        if min(fracs) < 0 or sum(fracs) > 1:
            raise ValueError("mask_token_frac and random_token_frac must be >= 0, sum <= 1")
        if not 0 <= self.prefix_cut_fraction <= 1:
            raise ValueError(
                f"prefix_cut_fraction must be in [0, 1], got {self.prefix_cut_fraction}"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 < self.threshold_quantile < 1:
            raise ValueError(f"threshold_quantile must be in (0, 1), got {self.threshold_quantile}")
        if self.alert_budget is not None and not self.alert_budget > 0:
            raise ValueError(f"alert_budget must be > 0, got {self.alert_budget}")
        if self.alert_budget_unit == "per_1000_windows" and (self.alert_budget or 0) >= 1000:
            raise ValueError("alert_budget per 1,000 windows must be < 1000")
        if self.windows_per_hour is not None and not self.windows_per_hour > 0:
            raise ValueError(f"windows_per_hour must be > 0, got {self.windows_per_hour}")
        if not 0.5 <= self.pot_init_quantile < 1:
            raise ValueError(f"pot_init_quantile must be in [0.5, 1), got {self.pot_init_quantile}")
        if self.vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size must exceed {len(SPECIALS)}")
        if self.pack_tokens and not MAX_TOKENS <= self.pack_tokens <= self.tokens_per_batch:
            raise ValueError(
                f"pack_tokens must be 0 or in [{MAX_TOKENS}, tokens_per_batch], "
                f"got {self.pack_tokens}"
            )
        if self.pack_tokens and not self.prune_last_layer:
            raise ValueError("pack_tokens needs prune_last_layer")
        if self.tokens_per_batch < MAX_TOKENS:
            raise ValueError(f"tokens_per_batch must be >= {MAX_TOKENS} (one full window)")
        if self.time_buckets and not 2 <= self.time_buckets <= MAX_TIME_BUCKETS:
            raise ValueError(
                f"time_buckets must be 0 or in [2, {MAX_TIME_BUCKETS}], got {self.time_buckets}"
            )
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def cache_dir(self) -> Path:
        return self.token_cache_dir or default_token_cache_dir()


def _positive(s: TrainSettings, *names: str) -> None:
    for n in names:
        if getattr(s, n) <= 0:
            raise ValueError(f"{n} must be > 0, got {getattr(s, n)}")


def _non_negative(s: TrainSettings, *names: str) -> None:
    for n in names:
        if getattr(s, n) < 0:
            raise ValueError(f"{n} must be >= 0, got {getattr(s, n)}")
