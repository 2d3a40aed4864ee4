"""The training-window filter of the nightly retrain (trainer/window_filter.py): how many
labelled anomalies each filter lets into training, and what the candidate then detects.

    .venv/bin/python -m bench.window_filter

1. Traffic as `logad simulate --days-dir ... --anomaly-rate R` writes it (the same
   `simulate_day`): `--seed-days` days of normal traffic, `--live-days` days at
   `--anomaly-rate` plus one incident a day (`--burst-sessions` sessions over
   `--burst-minutes`, `--burst-rate` of them anomalous, of the kinds in BURST_KINDS), and
   one held-out day at `--anomaly-rate` without an incident.
2. A first `tiny` model (M0, the serving model) trained on the seed days scores every live
   window through `WindowScorer` (what serve runs): the live days become an archive, each
   window with its score and `alerted` (score above M0's threshold), as `logad serve
   --archive-dir` writes it, labels kept for this bench only.
3. For each filter (VARIANTS: none; alerted; alerted + dense; alerted + score quantile 0.9
   on training windows, alone and with dense; the same with the quantile on validation
   windows too; and an `oracle` that drops exactly the labelled anomalies), the real
   `load_training_data` says which windows train (anomalous ones there have leaked), then a
   candidate is trained warm-started from M0 on the archive (what `logad retrain` does)
   with the real trainer, and scored on the held-out day at its own threshold: recall (also
   per anomaly kind), precision, F1, false-alert rate (share of normal windows flagged),
   and whether the retrain gate (stream/jobs/retrain_gate.py, margin 0) would promote it.
4. Everything again for each of `--seeds` (traffic and training seeds); the summary is the
   mean over seeds.

CPU, one thread, small step counts: a few minutes. Writes
bench/results/window_filter.json (or --out) and its entry in bench/results/index.json.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import torch

from bench.machine import report_header, write_result
from schemas.daily_files import read_sessions, write_complete_day
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.sessions import Session
from schemas.windows import MAX_EVENTS, split_points
from stream.devtools.simulate import SimSession, generate_sessions, simulate_day
from stream.jobs.retrain_gate import Figures, GateRules, decide, figures
from trainer.dataset import DataSelection, load_training_data
from trainer.scoring.scorer import WindowScorer
from trainer.settings import TrainSettings
from trainer.token_cache import TokenCache
from trainer.train import TrainRequest, run_training
from trainer.window_filter import NO_FILTER, REASONS, WindowFilterSettings

BURST_KINDS = ("db_timeout", "truncated", "out_of_order")
"""An incident: a database in trouble times requests out, cuts them short, reorders steps."""
DAY_MS = 86_400_000
FIRST_DAY = date(2026, 11, 1)

_ALERTED = replace(NO_FILTER, exclude_alerted=True)
_DENSE = replace(_ALERTED, exclude_alert_dense=True)
VARIANTS: dict[str, WindowFilterSettings] = {
    "none": NO_FILTER,
    "alerted": _ALERTED,
    "alerted+dense": _DENSE,
    "alerted+dense+near0.9": replace(_DENSE, exclude_near_miss=0.9),
    "default": WindowFilterSettings(),
    "alerted+q0.95": replace(_ALERTED, exclude_score_quantile=0.95),
    "alerted+q0.9": replace(_ALERTED, exclude_score_quantile=0.9),
    "alerted+q0.9+dense": replace(_DENSE, exclude_score_quantile=0.9),
    "alerted+q0.9v+dense": replace(
        _DENSE, exclude_score_quantile=0.9, score_quantile_validation=True
    ),
    "oracle": NO_FILTER,
}
"""The filters compared (qQ: the score quantile Q on training windows; qQv: on validation
windows too; near0.9: near misses at 0.9 of the threshold; `default`: every setting at its
default, so also the cap on near misses, the windows that vouch for no known mix or pair,
and recurring alerts adopted); the dense rule has its default knobs. `oracle` trains on the
archive without its labelled anomalies: what a perfect filter would keep, the recall to hope
for."""
ORACLE = "oracle"
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "alerted+q0.95"]


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def day_traffic(day: date, a: argparse.Namespace, rate: float, burst: bool) -> list[SimSession]:
    """One simulated day (as `logad simulate` writes it), with an incident when `burst`."""
    rng = random.Random(f"{a.seed}:{day.isoformat()}")
    sessions = simulate_day(rng, _day_ms(day), a.sessions_per_day, rate)
    if burst:
        start = _day_ms(day) + rng.randrange(2 * 3_600_000, 22 * 3_600_000)
        gap = a.burst_minutes * 60_000 / a.burst_sessions
        sessions += generate_sessions(rng, a.burst_sessions, start, gap, a.burst_rate, BURST_KINDS)
    return sorted(sessions, key=lambda s: s.events[0].ts)


def windows_of(sessions: Sequence[Session]) -> list[Session]:
    """Each session cut as the stream cuts it (the simulator's rarely need cutting)."""
    return [
        replace(s, events=s.events[i:j])
        for s in sessions
        for i, j in split_points(len(s.events), MAX_EVENTS)
    ]


def archive_day(scorer: WindowScorer, sessions: Sequence[Session]) -> list[Session]:
    """What serve's archive holds for these windows: each with its score, threshold and
    alert."""
    results = scorer.score_events([s.events for s in sessions])
    return [
        replace(s, score=r.score, alerted=r.score > scorer.threshold, threshold=scorer.threshold)
        for s, r in zip(sessions, results, strict=True)
    ]


def train_settings(a: argparse.Namespace, cache: Path, **overrides: Any) -> TrainSettings:
    values: dict[str, Any] = {
        "preset": "tiny",
        "device": "cpu",
        "cpu_threads": 1,
        "num_workers": 0,
        "tokens_per_batch": a.tokens_per_batch,
        "val_fraction": 0.2,
        "checkpoint_every_steps": 0,
        "log_every_steps": 1000,
        "token_cache_dir": cache,
        "seed": a.seed,
        "window_filter": NO_FILTER,
    }
    return TrainSettings(**(values | overrides))


@dataclass(frozen=True)
class HeldOut:
    windows: list[Session]
    kinds: list[str | None]
    """Each window's anomaly kind (None: normal)."""


def held_out(sims: Sequence[SimSession]) -> HeldOut:
    windows, kinds = [], []
    for sim in sims:
        cut = windows_of([sim.to_session()])
        windows += cut
        kinds += [sim.anomaly] * len(cut)
    return HeldOut(windows, kinds)


def evaluate(bundle: Path, held: HeldOut) -> tuple[Figures, dict[str, float]]:
    """A bundle's figures on the held-out day at its own threshold, and its recall per
    anomaly kind."""
    scorer = WindowScorer.from_bundle(bundle, "cpu", max_batch_tokens=16_384)
    scores = [r.score for r in scorer.score_events([s.events for s in held.windows])]
    labels = [s.label for s in held.windows]
    fig = figures(scorer.model_version, scorer.threshold, scores, labels, [None] * len(labels))
    by_kind: dict[str, list[bool]] = {}
    for kind, score in zip(held.kinds, scores, strict=True):
        if kind is not None:
            by_kind.setdefault(kind, []).append(score > scorer.threshold)
    return fig, {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}


def _shown(f: Figures) -> dict[str, Any]:
    d = asdict(f)
    for k in ("threshold", "false_alert_rate", "precision", "recall", "f1"):
        if isinstance(d[k], float):
            d[k] = round(d[k], 4)
    return d


@dataclass(frozen=True)
class Leaks:
    train: int
    validation: int
    train_by_kind: dict[str, int]


def leaks(
    archive: Path, cache: Path, s: TrainSettings, kind_of: dict[str, str]
) -> tuple[Leaks, dict[str, int] | None]:
    """Labelled anomalies among the windows `load_training_data` keeps, per slice, and the
    training slice's by anomaly kind (`kind_of`: session id -> kind)."""
    data = load_training_data(
        DataSelection((archive,)),
        TokenCache(cache, end_marker=s.end_marker),
        s.val_fraction,
        s.vocab_size,
        window_filter=s.window_filter,
    )
    windows = [
        ln
        for path in sorted(archive.glob("preprocessed_logs_*.jsonl"))
        for ln in read_sessions(path)
        for _ in split_points(len(ln.events), MAX_EVENTS)
    ]
    trained = [windows[i] for i in data.train_idx.tolist() if windows[i].label == 1]
    by_kind: dict[str, int] = {}
    for w in trained:
        kind = kind_of[w.session_id]
        by_kind[kind] = by_kind.get(kind, 0) + 1
    validation = sum(windows[i].label == 1 for i in data.val_idx.tolist())
    return Leaks(len(trained), validation, dict(sorted(by_kind.items()))), data.excluded


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.window_filter", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seed-days", type=int, default=3)
    p.add_argument("--live-days", type=int, default=3)
    p.add_argument("--sessions-per-day", type=int, default=2_000)
    p.add_argument("--anomaly-rate", type=float, default=0.05)
    p.add_argument("--burst-sessions", type=int, default=80)
    p.add_argument("--burst-minutes", type=float, default=20.0)
    p.add_argument("--burst-rate", type=float, default=0.6)
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="traffic and training seeds"
    )
    p.add_argument("--tokens-per-batch", type=int, default=2_048)
    p.add_argument("--m0-epochs", type=int, default=10)
    p.add_argument("--m0-lr", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=3, help="candidate epochs over the archive")
    p.add_argument("--lr", type=float, default=1e-3, help="candidate peak learning rate")
    p.add_argument(
        "--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS), metavar="NAME"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result file (default: bench/results/window_filter.json)",
    )
    return p


def run_seed(a: argparse.Namespace, seed: int, tmp: Path) -> dict[str, Any]:
    """One traffic seed: M0, its archive, and a candidate per filter."""
    a = argparse.Namespace(**(vars(a) | {"seed": seed}))
    days = [FIRST_DAY + timedelta(days=i) for i in range(a.seed_days + a.live_days + 1)]
    seed_days, live_days, held_day = days[: a.seed_days], days[a.seed_days : -1], days[-1]
    cache = tmp / "cache"
    for d in seed_days:
        write_complete_day(tmp / "seed", d, [s.to_session() for s in day_traffic(d, a, 0.0, False)])
    t = time.perf_counter()
    m0 = tmp / "m0"
    run_training(
        train_settings(a, cache, epochs=a.m0_epochs, lr=a.m0_lr, warmup_steps=20),
        TrainRequest(DataSelection((tmp / "seed",)), m0),
    )
    m0_train_s = time.perf_counter() - t
    scorer = WindowScorer.from_bundle(m0, "cpu", max_batch_tokens=16_384)
    archive = tmp / "archive"
    live: dict[str, Any] = {"windows": 0, "anomalous": 0, "alerted": 0, "alerted_anomalous": 0}
    kind_of: dict[str, str] = {}
    for d in live_days:
        sims = day_traffic(d, a, a.anomaly_rate, True)
        kind_of |= {s.session_id: s.anomaly for s in sims if s.anomaly is not None}
        day = archive_day(scorer, windows_of([s.to_session() for s in sims]))
        write_complete_day(archive, d, day)
        write_complete_day(tmp / "clean", d, [s for s in day if s.label != 1])
        live["windows"] += len(day)
        live["anomalous"] += sum(s.label == 1 for s in day)
        live["alerted"] += sum(bool(s.alerted) for s in day)
        live["alerted_anomalous"] += sum(bool(s.alerted) and s.label == 1 for s in day)
    held = held_out(day_traffic(held_day, a, a.anomaly_rate, False))
    current, current_kinds = evaluate(m0, held)
    say(
        f"seed {seed}: M0 on the held-out day: recall {current.recall:.4f}, F1 {current.f1:.4f}, "
        f"false-alert rate {current.false_alert_rate:.4f}; by kind {current_kinds}"
    )
    rows = []
    for name in a.variants:
        s = train_settings(
            a, cache, epochs=a.epochs, lr=a.lr, warmup_steps=10, window_filter=VARIANTS[name]
        )
        source = tmp / "clean" if name == ORACLE else archive
        leaked, excluded = leaks(source, cache, s, kind_of)
        t = time.perf_counter()
        out = tmp / f"cand-{name}"
        outcome = run_training(s, TrainRequest(DataSelection((source,)), out, init_from=m0))
        train_s = time.perf_counter() - t
        fig, kinds = evaluate(out, held)
        gate = decide(fig, current, GateRules())
        rows.append(
            {
                "filter": name,
                "excluded": excluded,
                "anomalies_in_training": leaked.train,
                "anomalies_in_training_by_kind": leaked.train_by_kind,
                "anomalies_in_validation": leaked.validation,
                "candidate": _shown(fig) | {"recall_by_kind": kinds},
                "gate_promotes": gate.promote,
                "gate_reason": gate.reason,
                "steps": outcome.manifest.metrics.get("steps") if outcome.manifest else None,
                "train_s": round(train_s, 1),
            }
        )
        say(
            f"  {name:22s} leaked {leaked.train:4d} (+{leaked.validation} in validation) of "
            f"{live['anomalous']}; recall {fig.recall:.4f} F1 {fig.f1:.4f} "
            f"false-alert rate {fig.false_alert_rate:.4f}; gate "
            f"{'promotes' if gate.promote else 'refuses'}; recall by kind {kinds}; leaked by "
            f"kind {leaked.train_by_kind}"
        )
    return {
        "seed": seed,
        "days": {
            "seed": [d.isoformat() for d in seed_days],
            "live": [d.isoformat() for d in live_days],
            "held_out": held_day.isoformat(),
        },
        "live_archive": live,
        "held_out_windows": len(held.windows),
        "held_out_anomalous": sum(k is not None for k in held.kinds),
        "m0": _shown(current) | {"recall_by_kind": current_kinds, "train_s": round(m0_train_s, 1)},
        "variants": rows,
    }


def _mean(values: Sequence[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return round(sum(vs) / len(vs), 4) if vs else None


def _kinds(figs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    kinds = sorted({k for f in figs for k in f["recall_by_kind"]})
    return {k: _mean([f["recall_by_kind"].get(k) for f in figs]) for k in kinds}


def summarize(runs: Sequence[dict[str, Any]], variants: Sequence[str]) -> list[dict[str, Any]]:
    """Per filter, the mean over seeds (M0 first, as the row to hold)."""
    out = [
        {
            "filter": "M0 (serving model)",
            **{
                k: _mean([r["m0"][k] for r in runs])
                for k in ("recall", "precision", "f1", "false_alert_rate")
            },
            "recall_by_kind": _kinds([r["m0"] for r in runs]),
        }
    ]
    for name in variants:
        rows = [next(v for v in r["variants"] if v["filter"] == name) for r in runs]
        out.append(
            {
                "filter": name,
                "anomalies_in_training": _mean([v["anomalies_in_training"] for v in rows]),
                "anomalies_in_validation": _mean([v["anomalies_in_validation"] for v in rows]),
                "windows_excluded": _mean(
                    [sum(n for k, n in (v["excluded"] or {}).items() if k in REASONS) for v in rows]
                ),
                **{
                    k: _mean([v["candidate"][k] for v in rows])
                    for k in ("recall", "precision", "f1", "false_alert_rate")
                },
                "recall_by_kind": _kinds([v["candidate"] for v in rows]),
                "promoted": sum(bool(v["gate_promotes"]) for v in rows),
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    configure_logging("warning", None)
    torch.set_num_threads(1)
    started = time.perf_counter()
    runs = []
    for seed in a.seeds:
        with tempfile.TemporaryDirectory(prefix="bench-window-filter-") as tmp:
            runs.append(run_seed(a, seed, Path(tmp)))
    summary = summarize(runs, a.variants)
    anomalous = _mean([r["live_archive"]["anomalous"] for r in runs])
    say(f"mean over seeds {a.seeds} ({anomalous} anomalous windows in each archive):")
    for row in summary:
        say(
            f"  {row['filter']:22s} recall {row['recall']} F1 {row['f1']} false-alert rate "
            f"{row['false_alert_rate']} leaked {row.get('anomalies_in_training', '-')}"
            f" (+{row.get('anomalies_in_validation', '-')})"
        )
    result = report_header("window_filter") | {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "filters": {name: asdict(VARIANTS[name]) for name in a.variants},
        "summary": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = write_result("window_filter", result, path=a.out)
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
