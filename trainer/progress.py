"""Training progress: a tqdm bar on a terminal, structlog lines otherwise, and metrics.jsonl.

Only rank 0 creates one of these; the other ranks report nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson
import structlog
from tqdm import tqdm

from trainer.loop import EvalMetrics, Hooks, StepMetrics, TrainState

log = structlog.get_logger(__name__)


class MetricsLog:
    """Appends one JSON object per line; a resumed run keeps appending."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("ab") as fh:
            fh.write(orjson.dumps(record) + b"\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.append(orjson.loads(line))
    return out


class Progress(Hooks):
    """Reports steps and evaluations; aggregates over `log_every` steps."""

    def __init__(
        self,
        metrics: MetricsLog,
        total_steps: int,
        steps_per_epoch: int,
        start: TrainState,
        log_every: int,
        tty: bool | None = None,
        clock: Any = time.perf_counter,
    ) -> None:
        self.metrics = metrics
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.log_every = log_every
        self.clock = clock
        self._t0 = clock()
        self._reset()
        use_bar = sys.stderr.isatty() if tty is None else tty
        self.bar: tqdm[Any] | None = (
            tqdm(total=total_steps, initial=start.global_step, unit="step", dynamic_ncols=True)
            if use_bar
            else None
        )

    def _reset(self) -> None:
        self._loss = 0.0
        self._steps = 0
        self._tokens = 0
        self._padded = 0
        self._t0 = self.clock()

    def on_step(self, state: TrainState, m: StepMetrics) -> None:
        self._loss += m.loss
        self._steps += 1
        self._tokens += m.tokens
        self._padded += m.padded_tokens
        if self.bar is not None:
            self.bar.update(1)
        epoch_end = state.step_in_epoch == self.steps_per_epoch
        if state.global_step % self.log_every and not epoch_end:
            return
        elapsed = max(self.clock() - self._t0, 1e-9)
        tps = self._tokens / elapsed
        remaining = self.total_steps - state.global_step
        record = {
            "kind": "train",
            "step": state.global_step,
            "epoch": state.epoch + state.step_in_epoch / max(1, self.steps_per_epoch),
            "loss": self._loss / self._steps,
            "lr": m.lr,
            "grad_norm": None if m.grad_norm is None else float(m.grad_norm),
            "tokens_per_s": tps,
            "eta_s": remaining * elapsed / self._steps,
        }
        self.metrics.write(record)
        if self.bar is not None:
            self.bar.set_postfix(
                epoch=f"{record['epoch']:.2f}", loss=f"{record['loss']:.4f}", tok_s=f"{tps:,.0f}"
            )
        else:
            log.info(
                "train_progress",
                **{k: v for k, v in record.items() if k != "kind"},
                total_steps=self.total_steps,
            )
        self._reset()

    def on_eval(self, state: TrainState, m: EvalMetrics) -> None:
        record = {
            "kind": "val",
            "step": state.global_step,
            "epoch": state.epoch + state.step_in_epoch / max(1, self.steps_per_epoch),
            "loss": m.loss,
            "accuracy": m.accuracy,
            "masked_tokens": m.masked_tokens,
        }
        self.metrics.write(record)
        if self.bar is not None:
            self.bar.write(
                f"validation at step {state.global_step}: loss {m.loss:.4f}, "
                f"accuracy {m.accuracy:.3f}"
            )
        else:
            log.info("validation", **{k: v for k, v in record.items() if k != "kind"})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
