"""Soak of the closed loop (`make bench-soak`): days of simulated traffic with incidents and
a drift, each scored by the serving model into the archive, with the nightly retrain between
days. Does the loop recover its false-alert rate after the drift, without losing recall?

1. Seed: `--seed-days` simulated days before day 1. A `tiny` model is trained with
   `logad train` on their normal sessions (a curated start) and promoted into a registry
   with `logad promote`; then `logad replay --archive-dir` scores the seed days, anomalies
   and all, into the archive, as serve would have.
2. Each simulated day: `logad simulate`'s traffic (stream/devtools/simulate/, labelled
   anomalies at `--anomaly-rate`; from `--drift-day` a new order-manager version with new
   event ids rolls out over `--drift-ramp-days`) is scored by the registry's current model
   with `logad replay --days-dir ... --archive-dir archive`: serve's sessionizer, scorer and
   archive, deterministic and without a broker. The archive gets no labels (nobody labels
   production traffic) unless `--labelled-archive`. The day's recall and false alerts per
   1,000 normal sessions (a session alerts when any of its windows does) come from the
   simulator's labels.
3. Each night: `logad retrain --archive-dir archive --registry registry` with the cron
   line's flags (plus `--retrain-args`); the outcome (promoted, refused, skipped, or failed
   with its one-line error) and reason are read from the registry's decision records.

Verdict: the pre-drift level is the mean false-alert rate, and the pooled recall, of the
days before the drift. The rollout is complete on day DRIFT_DAY + RAMP - 1; two nights later
(the deadline day) and on every day after, the false-alert rate must be at most the
pre-drift level + `--fa-tolerance`, and the pooled recall of the days from the drift on at
least the pre-drift recall - `--recall-tolerance`.

Writes bench/results/soak_loop.json and the plot beside it (soak_loop.png); the work
directory (`--out`, default bench/out/soak) holds the days, archive, registry and scores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine import results_dir, shown_path, summary_of, write_result  # noqa: E402
from schemas.daily_files import write_complete_day  # noqa: E402
from schemas.registry import is_registry, read_pointer  # noqa: E402
from schemas.registry_history import decision_action, read_decisions  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.scores import Score  # noqa: E402
from schemas.sessions import Session  # noqa: E402
from stream.devtools.simulate.drift import NEW_VERSION_IDS  # noqa: E402
from stream.devtools.simulate.outputs import day_sessions  # noqa: E402
from stream.devtools.simulate.settings import DriftSettings, TrafficSettings  # noqa: E402
from stream.devtools.simulate.templates import ANOMALY_KINDS  # noqa: E402
from stream.devtools.simulate.traffic import SimSession  # noqa: E402

WORK = ROOT / "bench" / "out" / "soak"
NAME = "soak_loop"
FIRST_SEED_DAY = "2025-03-01"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--days", type=int, default=9, help="simulated days served, after the seed")
    p.add_argument(
        "--drift-day", type=int, default=4, help="served day (1-based) the drift starts on"
    )
    p.add_argument("--drift-ramp-days", type=int, default=2, help="days the rollout takes")
    p.add_argument("--seed-days", type=int, default=3, help="days before day 1 (initial model)")
    p.add_argument("--sessions-per-day", type=int, default=1_500, help="sessions a day")
    p.add_argument(
        "--anomaly-rate", type=float, default=0.04, help="share of sessions with an incident"
    )
    p.add_argument("--start-date", default=FIRST_SEED_DAY, help="first seed day, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=0, help="traffic and training seed")
    p.add_argument("--out", type=Path, default=WORK, help="work directory (emptied first)")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results JSON, the plot beside it (default: bench/results/soak_loop.json)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    p.add_argument("--train-epochs", type=int, default=20, help="initial model's epochs")
    p.add_argument("--train-lr", type=float, default=2e-3, help="initial model's peak lr")
    p.add_argument("--train-tokens-per-batch", type=int, default=4096, help="initial model's batch")
    p.add_argument("--last-days", type=int, default=7, help="retrain's --last-days")
    p.add_argument(
        "--retrain-args",
        default="--tokens-per-batch 16384",
        help='more `logad retrain` flags, one string (e.g. "--epochs 3 --margin 0.01"); the '
        "default, a quarter of the trainer's batch, makes a night's minimum steps affordable "
        "on a CPU",
    )
    p.add_argument(
        "--labelled-archive",
        action="store_true",
        help="archive the simulator's labels too (the gate then compares F1)",
    )
    p.add_argument(
        "--fa-tolerance", type=float, default=2.0, help="false alerts per 1,000 over pre-drift"
    )
    p.add_argument(
        "--recall-tolerance", type=float, default=0.05, help="recall below pre-drift allowed"
    )
    return p


def check(a: argparse.Namespace) -> None:
    """One line for a bad combination, before any work."""
    if a.days < 1 or a.seed_days < 2 or a.sessions_per_day < 50:
        raise SystemExit("soak_loop: need --days >= 1, --seed-days >= 2, --sessions-per-day >= 50")
    if not 1 < a.drift_day <= a.days:
        raise SystemExit("soak_loop: --drift-day must be after day 1 and at most --days")
    if a.drift_ramp_days < 1 or not 0 < a.anomaly_rate < 1:
        raise SystemExit("soak_loop: need --drift-ramp-days >= 1 and 0 < --anomaly-rate < 1")
    try:
        date.fromisoformat(a.start_date)
    except ValueError:
        raise SystemExit(f"soak_loop: --start-date is YYYY-MM-DD, not {a.start_date!r}") from None


# ---- the logad commands, in this process (torch is imported once)


def logad(argv: Sequence[str]) -> tuple[int, str]:
    """Run a logad command; its exit code and its last error line (empty when none)."""
    from stream.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(["--log-level", "error", *argv])
    text = buf.getvalue()
    sys.stderr.write(text)
    errors = [line for line in text.splitlines() if line.startswith("logad: error:")]
    return rc, errors[-1].removeprefix("logad: error: ") if errors else ""


def must(argv: Sequence[str]) -> None:
    rc, error = logad(argv)
    if rc != 0:
        raise SystemExit(f"soak_loop: logad {argv[0]} failed (exit {rc}): {error}")


# ---- traffic


def unlabelled(s: Session) -> Session:
    return Session(s.session_id, s.events, s.start_ts, s.end_ts, None)


def is_drifted(s: SimSession) -> bool:
    return any(e.event_id in NEW_VERSION_IDS for e in s.events)


# ---- the pure parts: a day's figures and the verdict


def day_figures(scores: Iterable[Score], sessions: Sequence[SimSession]) -> dict[str, Any]:
    """Recall (overall and per kind) and false alerts per 1,000 normal sessions (overall and
    among the drifted ones); a session alerts when any of its windows does."""
    alerted = set()
    scored = set()
    for s in scores:
        scored.add(s.session_id)
        if s.anomalous:
            alerted.add(s.session_id)
    normal = [s for s in sessions if s.anomaly is None]
    drifted = [s for s in normal if is_drifted(s)]
    anomalous = [s for s in sessions if s.anomaly is not None]
    caught = [s for s in anomalous if s.session_id in alerted]
    fa = sum(s.session_id in alerted for s in normal)
    fa_drifted = sum(s.session_id in alerted for s in drifted)
    kinds = Counter(s.anomaly for s in anomalous)
    caught_kinds = Counter(s.anomaly for s in caught)
    return {
        "sessions": len(sessions),
        "not_scored": sum(s.session_id not in scored for s in sessions),
        "normal": len(normal),
        "anomalous": len(anomalous),
        "caught": len(caught),
        "recall": round(len(caught) / len(anomalous), 4) if anomalous else None,
        "false_alerts": fa,
        "fa_per_1000": round(1000 * fa / len(normal), 3) if normal else None,
        "drifted_normal": len(drifted),
        "drifted_false_alerts": fa_drifted,
        "recall_by_kind": {k: f"{caught_kinds[k]}/{kinds[k]}" for k in ANOMALY_KINDS if kinds[k]},
    }


def deadline_day(drift_day: int, ramp_days: int) -> int:
    """The first day served by a model retrained two nights after the rollout completed."""
    return drift_day + ramp_days - 1 + 2


def verdict(
    rows: Sequence[Mapping[str, Any]],
    drift_day: int,
    ramp_days: int,
    fa_tolerance: float,
    recall_tolerance: float,
) -> dict[str, Any]:
    """The target: after the drift the false-alert rate is back within the tolerance of its
    pre-drift level by the deadline day and stays there, and recall holds."""
    pre = [r for r in rows if r["day"] < drift_day]
    post = [r for r in rows if r["day"] >= drift_day]
    pre_fa = sum(r["fa_per_1000"] for r in pre) / len(pre)
    bound = pre_fa + fa_tolerance

    def pooled(rs: Sequence[Mapping[str, Any]]) -> float | None:
        n = sum(r["anomalous"] for r in rs)
        return sum(r["caught"] for r in rs) / n if n else None

    pre_recall, post_recall = pooled(pre), pooled(post)
    deadline = deadline_day(drift_day, ramp_days)
    checked = [r for r in rows if r["day"] >= deadline]
    within = [r["fa_per_1000"] <= bound for r in post]
    # The first day from which every later day is within the bound.
    recovered_on = None
    for i in range(len(post)):
        if all(within[i:]):
            recovered_on = post[i]["day"]
            break
    fa_ok = bool(checked) and all(r["fa_per_1000"] <= bound for r in checked)
    recall_ok = (
        pre_recall is not None
        and post_recall is not None
        and post_recall >= pre_recall - recall_tolerance
    )
    peak = max(post, key=lambda r: r["fa_per_1000"]) if post else None
    return {
        "pre_drift_fa_per_1000": round(pre_fa, 3),
        "fa_bound_per_1000": round(bound, 3),
        "peak_fa_per_1000": peak["fa_per_1000"] if peak else None,
        "peak_day": peak["day"] if peak else None,
        "deadline_day": deadline,
        "days_checked": [r["day"] for r in checked],
        "fa_recovered_by_deadline": fa_ok,
        "fa_within_bound_from_day": recovered_on,
        "pre_drift_recall": round(pre_recall, 4) if pre_recall is not None else None,
        "post_drift_recall": round(post_recall, 4) if post_recall is not None else None,
        "recall_held": recall_ok,
        "measurable": bool(checked),
        "target_met": fa_ok and recall_ok,
    }


# ---- the loop


def night(registry: Path, archive: Path, a: argparse.Namespace) -> dict[str, Any]:
    """One nightly `logad retrain`, and what its decision record says."""
    before = len(read_decisions(registry))
    argv = ["retrain", "--archive-dir", str(archive), "--registry", str(registry)]
    argv += ["--last-days", str(a.last_days), "--nproc", "1", "--device", "cpu"]
    argv += ["--cpu-threads", str(a.threads), *shlex.split(a.retrain_args)]
    t0 = time.perf_counter()
    rc, error = logad(argv)
    seconds = round(time.perf_counter() - t0, 1)
    new = read_decisions(registry)[before:]
    if not new:
        return {"outcome": "failed" if rc else "no record", "reason": error, "rc": rc, "s": seconds}
    rec = new[-1]
    cand, cur = rec.get("candidate") or {}, rec.get("current") or {}
    return {
        "outcome": decision_action(rec),
        "reason": str(rec.get("reason", "")),
        "rc": rc,
        "s": seconds,
        "candidate": cand.get("version"),
        "candidate_far": cand.get("false_alert_rate"),
        "current_far": cur.get("false_alert_rate"),
        "train_days": rec.get("train_days"),
        "holdout_day": rec.get("holdout_day"),
        "labelled": rec.get("labelled"),
    }


def serve_day(
    registry: Path, served_dir: Path, archive: Path, scores: Path, first: date, last: date
) -> list[Score]:
    """Score days with the registry's current model into the archive, as serve would."""
    argv = ["replay", "--model", str(registry), "--days-dir", str(served_dir)]
    argv += ["--from-date", first.isoformat(), "--to-date", last.isoformat()]
    argv += ["--archive-dir", str(archive), "--out", str(scores), "--device", "cpu"]
    must(argv)
    return [Score.decode(line) for line in scores.read_bytes().splitlines()]


def seed(a: argparse.Namespace, work: Path, traffic: TrafficSettings) -> dict[str, Any]:
    """Seed days, the initial model (trained on their normal sessions) in the registry, and
    the seed days scored into the archive."""
    first = date.fromisoformat(a.start_date)
    days = [first + timedelta(days=i) for i in range(a.seed_days)]
    for day in days:
        sessions = day_sessions(traffic, day, a.sessions_per_day)
        write_complete_day(
            work / "seed-normal", day, (s.to_session() for s in sessions if not s.label)
        )
        write_complete_day(work / "served", day, (_archived(s, a) for s in sessions))
    t0 = time.perf_counter()
    model = work / "initial-model"
    argv = ["train", "--data", str(work / "seed-normal"), "--out", str(model)]
    argv += ["--preset", a.preset, "--epochs", str(a.train_epochs), "--lr", str(a.train_lr)]
    argv += ["--tokens-per-batch", str(a.train_tokens_per_batch), "--seed", str(a.seed)]
    argv += ["--device", "cpu"]
    argv += ["--cpu-threads", str(a.threads), "--num-workers", "0"]
    argv += ["--checkpoint-every-steps", "0", "--token-cache-dir", str(work / "token-cache")]
    must(argv)
    train_s = time.perf_counter() - t0
    must(["promote", str(model), "--registry", str(work / "registry"), "--move"])
    version = read_pointer(work / "registry").version
    serve_day(
        work / "registry", work / "served", work / "archive", work / "seed-scores.jsonl",
        days[0], days[-1],
    )  # fmt: skip
    out(f"seed: {len(days)} days, initial model {version} trained in {train_s:.0f} s")
    return {
        "days": [d.isoformat() for d in days],
        "initial_model": version,
        "train_s": round(train_s, 1),
    }


def _archived(s: SimSession, a: argparse.Namespace) -> Session:
    return s.to_session() if a.labelled_archive else unlabelled(s.to_session())


def run(a: argparse.Namespace) -> dict[str, Any]:
    work: Path = a.out
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "scores").mkdir()
    traffic = TrafficSettings(anomaly_rate=a.anomaly_rate, seed=a.seed)
    day1 = date.fromisoformat(a.start_date) + timedelta(days=a.seed_days)
    drift_date = day1 + timedelta(days=a.drift_day - 1)
    drift = DriftSettings(drift_date.isoformat(), a.drift_ramp_days).drift()
    t_start = time.perf_counter()
    seeded = seed(a, work, traffic)
    registry, archive = work / "registry", work / "archive"
    rows: list[dict[str, Any]] = []
    for i in range(1, a.days + 1):
        day = day1 + timedelta(days=i - 1)
        sessions = day_sessions(traffic, day, a.sessions_per_day, drift)
        write_complete_day(work / "served", day, (_archived(s, a) for s in sessions))
        serving = read_pointer(registry).version if is_registry(registry) else None
        t0 = time.perf_counter()
        scores = serve_day(
            registry, work / "served", archive, work / "scores" / f"{day}.jsonl", day, day
        )
        serve_s = round(time.perf_counter() - t0, 1)
        figures = day_figures(scores, sessions)
        nightly = night(registry, archive, a)
        row = {
            "day": i,
            "date": day.isoformat(),
            "drift_share": drift.share(_midnight_ms(day)) if drift else 0.0,
            "serving_model": serving,
            "threshold": scores[0].threshold if scores else None,
            "windows": len(scores),
            **figures,
            "serve_s": serve_s,
            "night": nightly,
        }
        rows.append(row)
        out(
            f"day {i} {day}: drift {row['drift_share']:.2f}, recall {figures['recall']}, "
            f"FA/1000 {figures['fa_per_1000']} ({figures['drifted_false_alerts']} of "
            f"{figures['drifted_normal']} drifted normal sessions alerted); night: "
            f"{nightly['outcome']} ({nightly['s']} s) {nightly['reason'][:160]}"
        )
    v = verdict(rows, a.drift_day, a.drift_ramp_days, a.fa_tolerance, a.recall_tolerance)
    nights = Counter(r["night"]["outcome"] for r in rows)
    return {
        "bench": NAME,
        "config": {
            "days": a.days,
            "drift_day": a.drift_day,
            "drift_date": drift_date.isoformat(),
            "drift_ramp_days": a.drift_ramp_days,
            "drift": "order-manager's new version: " + ", ".join(sorted(NEW_VERSION_IDS)),
            "seed_days": a.seed_days,
            "sessions_per_day": a.sessions_per_day,
            "anomaly_rate": a.anomaly_rate,
            "seed": a.seed,
            "preset": a.preset,
            "initial_training": {
                "epochs": a.train_epochs,
                "lr": a.train_lr,
                "tokens_per_batch": a.train_tokens_per_batch,
            },
            "retrain": {"last_days": a.last_days, "extra_args": a.retrain_args},
            "labelled_archive": a.labelled_archive,
            "threads": a.threads,
            "fa_tolerance_per_1000": a.fa_tolerance,
            "recall_tolerance": a.recall_tolerance,
            "work_dir": shown_path(work),
        },
        "seed_phase": seeded,
        "rows": rows,
        "nights": dict(nights),
        "verdict": v,
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


# ---- the plot


_MARKS = {"promoted": ("^", "tab:green"), "refused": ("x", "tab:red")}


def plot(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, v, c = result["rows"], result["verdict"], result["config"]
    days = [r["day"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    top.plot(days, [r["recall"] for r in rows], "o-", color="tab:blue", label="recall")
    if v["pre_drift_recall"] is not None:
        floor = v["pre_drift_recall"] - c["recall_tolerance"]
        top.axhline(floor, ls="--", color="tab:blue", alpha=0.5, label="pre-drift - tolerance")
    top.set_ylabel("recall (sessions)")
    top.set_ylim(0, 1.05)
    bottom.plot(days, [r["fa_per_1000"] for r in rows], "o-", color="tab:orange", label="all")
    drifted = [1000 * r["drifted_false_alerts"] / r["normal"] for r in rows]
    bottom.plot(days, drifted, ".:", color="tab:brown", label="of them, drifted sessions")
    bottom.axhline(
        v["fa_bound_per_1000"], ls="--", color="tab:orange", alpha=0.5, label="pre-drift + tol."
    )
    bottom.set_ylabel("false alerts / 1,000 normal")
    bottom.set_xlabel("simulated day (the night after it: ^ promoted, x refused, o other)")
    ymax = max(r["fa_per_1000"] for r in rows) or 1.0
    for r in rows:  # the night after day d sits at d + 0.5
        marker, color = _MARKS.get(r["night"]["outcome"], ("o", "tab:gray"))
        for ax, y in ((top, 1.02), (bottom, ymax * 1.05)):
            ax.plot(r["day"] + 0.5, y, marker, color=color, ms=8, clip_on=False)
    for ax in (top, bottom):
        ax.axvline(c["drift_day"] - 0.5, color="gray", lw=1.5)
        ax.axvline(v["deadline_day"] - 0.5, color="gray", ls=":", lw=1)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is top else "center left", fontsize=8)
    top.text(c["drift_day"] - 0.45, 0.05, "drift", color="gray")
    top.text(v["deadline_day"] - 0.45, 0.05, "deadline", color="gray")
    bottom.set_xticks(days)
    met = "met" if v["target_met"] else "not met"
    fig.suptitle(
        f"closed-loop soak: {c['sessions_per_day']} sessions/day, {c['anomaly_rate']:.0%} "
        f"incidents, drift from day {c['drift_day']} over {c['drift_ramp_days']} day(s); "
        f"target {met}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    check(a)
    import torch

    torch.set_num_threads(a.threads)
    result = run(a)
    path = write_result(NAME, result, path=a.results)
    png = (a.results or results_dir() / f"{NAME}.json").with_suffix(".png")
    plot(result, png)
    out(summary_of(result))
    out(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
