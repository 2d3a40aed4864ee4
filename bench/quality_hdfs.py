"""HDFS detection-quality benchmark (`make bench-quality`), on CPU, with a fixed seed.

1. Train the MLM with the real `logad train` on data/hdfs/train.jsonl, with the
   session-end marker (the trainer's `end_marker` setting, trainer/end_marker.py). The
   trainer holds out a validation slice by session hash (normal data only); it is never
   trained on.
2. Score the validation slice and dev_normal / dev_abnormal once per scoring run (full
   coverage with k = 6 and k = 10 groups, LogBERT's one random mask) through the product's
   passes and rules (bench/strategies.py; dev windows are marked by the same rule as in
   serving), and derive every strategy's window score from those results: mean, max, top-3
   mean of the per-event NLL, the max rank of a true event, LogBERT's miss fraction.
3. For each strategy, the threshold is the p99.9 of its scores on the validation slice.
   No dev label chooses anything. F1 and precision are extrapolated to the population
   ratio (552,640 normal blocks, 16,838 anomalous).
4. The DeepLog-style baseline (trainer/deeplog.py) trains on the same split and is
   evaluated in the same harness, with the paper's top-g rule and with a calibrated
   threshold; its FPR on the validation slice is reported too.
5. With --ablation, the same model is trained and scored without the end marker too.
6. Of the strategies the product serves (bench/strategies.py says which), the one with the
   best F1 (then the fewest forward passes) is the default: the bundle in
   bench/out/hdfs/model/ is re-calibrated for it when it is not already the trainer's
   default (trainer.scoring.DEFAULT_STRATEGY). The best of all rows is reported beside it.

Writes bench/results/quality_hdfs.json and, under bench/out/hdfs/, the bundle, the plots
and one report JSON per strategy.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import torch  # noqa: E402

from bench.hdfs_args import add_device_args, hdfs_parser  # noqa: E402
from bench.machine import report_header, shown_path, write_result  # noqa: E402
from bench.strategies import (  # noqa: E402
    ABLATION,
    OLD_RULE,
    RUNS,
    VARIANTS,
    RunResult,
    Variant,
    score_run,
)
from schemas.bundle import CALIBRATION, VOCAB, Calibration, verify_bundle  # noqa: E402
from schemas.errors import ConfigError  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.runtime.logs import configure_logging  # noqa: E402
from schemas.runtime.settings import coerce  # noqa: E402
from schemas.vocab import Vocab  # noqa: E402
from trainer.calibration import calibrate, threshold_from_quantile  # noqa: E402
from trainer.dataset import DataSelection, load_training_data  # noqa: E402
from trainer.deeplog import DeepLogConfig, DeepLogScorer, train_deeplog, window_max_rank  # noqa: E402
from trainer.end_marker import encode_window, uses_end_marker  # noqa: E402
from trainer.eval_plots import write_plots  # noqa: E402
from trainer.evaluate import (  # noqa: E402
    EvalReport,
    ScoredSets,
    WindowRun,
    evaluate_scores,
    format_table,
    read_event_lists,
    run_windows,
    split_sessions,
    throughput,
)
from trainer.export import validation_windows  # noqa: E402
from trainer.known_mixes import KnownMixes  # noqa: E402
from trainer.metrics import Population, curve  # noqa: E402
from trainer.model import device_for, load_model  # noqa: E402
from trainer.recalibrate import validation_slice, write_recalibrated_bundle  # noqa: E402
from trainer.token_cache import TokenCache  # noqa: E402

POPULATION = Population(normals=552_640, abnormals=16_838)
ANCHORS = {
    "DeepLog (paper)": 0.96,
    "LogAnomaly": 0.96,
    "LogBERT (paper, sessions >= 10 events)": 0.82,
    "LAnoBERT (threshold chosen on test data)": 0.97,
}


def train_bundle(
    data: Path,
    out_dir: Path,
    a: argparse.Namespace,
    end_marker: bool,
    time_buckets: int = 0,
    extra: Sequence[str] = (),
) -> float:
    """`logad train`, through the product's own command line. `time_buckets` > 0: a
    time-aware model (the days must carry `gaps_ms`); 0 leaves the knob at its default.
    `extra`: more `logad train` flags."""
    from stream.cli import main as logad

    shutil.rmtree(out_dir, ignore_errors=True)
    shutil.rmtree(out_dir.with_name(out_dir.name + ".run"), ignore_errors=True)
    t0 = time.perf_counter()
    rc = logad(
        [
            "--log-level",
            "warning",
            "train",
            "--data",
            str(data),
            "--out",
            str(out_dir),
            "--preset",
            a.preset,
            "--epochs",
            str(a.epochs),
            "--lr",
            str(a.lr),
            "--warmup-steps",
            str(a.warmup_steps),
            "--tokens-per-batch",
            str(a.tokens_per_batch),
            "--val-fraction",
            str(a.val_fraction),
            "--threshold-quantile",
            str(a.threshold_quantile),
            "--seed",
            str(a.seed),
            "--device",
            a.device,
            "--cpu-threads",
            str(a.threads),
            "--num-workers",
            "0",
            "--checkpoint-every-steps",
            "0",
            "--token-cache-dir",
            str(a.out / "token-cache"),
            "--end-marker",
            str(end_marker).lower(),
            "--prefix-cut-fraction",
            str(a.prefix_cut_fraction if end_marker else 0.0),
            "--prune-last-layer",
            str(a.prune_last_layer).lower(),
            *(["--time-buckets", str(time_buckets)] if time_buckets else []),
            *extra,
        ]
    )
    if rc != 0:
        raise SystemExit(f"logad train failed with exit code {rc}")
    return time.perf_counter() - t0


def run_scorer(
    model: Any,
    vocab: Vocab,
    key: str,
    max_batch_tokens: int,
    device: torch.device,
    known: KnownMixes | None,
) -> Callable[[list[tuple[str, ...]]], Sequence[RunResult]]:
    """Run `key` on event windows, marked as in serving when the vocab holds the end
    marker; each result says whether its window is a known event mix of the bundle's
    training data."""
    end = uses_end_marker(vocab)

    def score(batch: list[tuple[str, ...]]) -> Sequence[RunResult]:
        windows = [encode_window(vocab, events, end) for events in batch]
        return score_run(
            model, windows, RUNS[key], device, max_batch_tokens=max_batch_tokens, known=known
        )

    return score


def oracle_f1(normal: np.ndarray, abnormal: np.ndarray) -> float:
    """Diagnostic only, never used to choose: the best F1 over all thresholds, i.e. what a
    threshold chosen on the test labels would give (as most published HDFS numbers do)."""
    c = curve(normal, abnormal, POPULATION)
    f1 = 2 * c.precision * c.recall / np.maximum(c.precision + c.recall, 1e-12)
    return float(f1.max())


def evaluate_variant(
    v: Variant,
    val: WindowRun[Any],
    dn: WindowRun[Any],
    da: WindowRun[Any],
    q: float,
    lengths: Sequence[int],
) -> tuple[EvalReport, Calibration, ScoredSets]:
    val_scores = np.array([v.window_score(r) for r in val.results])
    cal = dataclasses.replace(
        calibrate([v.calibration_score(r) for r in val.results], q, strategy=v.strategy.rules),
        strategy=v.strategy.to_dict(),
    )
    scored = ScoredSets(
        dn.session_scores(v.window_score), da.session_scores(v.window_score), throughput(dn, da)
    )
    report = evaluate_scores(
        v.name,
        scored,
        cal.threshold,
        f"p{q * 100:g} of {cal.n_windows} validation windows (normal, held out by the trainer)",
        v.strategy.passes_per_window(lengths),
        POPULATION,
        details={
            "strategy": v.strategy.to_dict(),
            "validation_fpr": float((val_scores > cal.threshold).mean()),
            "diagnostic_f1_at_test_chosen_threshold": oracle_f1(scored.normal, scored.abnormal),
        },
    )
    return report, cal, scored


def mlm_section(
    bundle: Path, a: argparse.Namespace, end: bool
) -> tuple[list[tuple[EvalReport, Calibration, ScoredSets]], dict[str, float]]:
    """Score once per run, then evaluate every variant from the shared results."""
    manifest = verify_bundle(bundle)
    vocab = Vocab.load(bundle / VOCAB)
    device = device_for(a.device)
    model = load_model(bundle, device)
    cal = Calibration.from_json((bundle / CALIBRATION).read_bytes())
    known = KnownMixes.of(cal.known_mixes, cal.known_pairs, cal.count_ceilings)
    assert uses_end_marker(vocab) == end
    # The trainer's own slice, tokenized (and marked) as it was for calibration.
    val_tokens = validation_slice(
        [a.data / "train.jsonl"],
        vocab,
        a.val_fraction,
        a.out / "token-cache",
        manifest.metrics.get("val_windows"),
    )
    normal = read_event_lists([a.data / "dev_normal.jsonl"])
    abnormal = read_event_lists([a.data / "dev_abnormal.jsonl"])
    lengths = [min(len(s) + int(end), 510) for s in (*normal, *abnormal)]
    Run = WindowRun[Any]
    runs: dict[str, tuple[Run, Run, Run]] = {}
    seconds: dict[str, float] = {}
    variants = [
        dataclasses.replace(v, n_event_tokens=len(vocab) - vocab.first_event_id)
        for v in (VARIANTS if end else [v for v in VARIANTS if v.name in ABLATION])
    ]
    wanted = {v.run for v in variants}
    for key in sorted(wanted):
        fn = run_scorer(model, vocab, key, a.max_batch_tokens, device, known)
        t0 = time.perf_counter()
        val_results = score_run(
            model,
            cast(Sequence[Sequence[int]], val_tokens),  # int64 arrays serve as sequences
            RUNS[key],
            device,
            max_batch_tokens=a.max_batch_tokens,
            known=known,
        )
        val_split = split_sessions([[]] * len(val_tokens))  # one window per "session"
        runs[key] = (
            WindowRun(val_split, val_results, time.perf_counter() - t0),
            run_windows(fn, normal, desc=f"{key} normal"),
            run_windows(fn, abnormal, desc=f"{key} abnormal"),
        )
        seconds[key] = sum(r.seconds for r in runs[key])
        out(f"  scored {key}: {seconds[key]:.1f} s")
    results = [evaluate_variant(v, *runs[v.run], a.threshold_quantile, lengths) for v in variants]
    return results, seconds


def deeplog_section(
    a: argparse.Namespace,
) -> tuple[list[tuple[EvalReport, ScoredSets]], dict[str, Any]]:
    """DeepLog on the same split of the (unmarked) training file, in the same harness."""
    td = load_training_data(
        DataSelection((a.data / "train.jsonl",)),
        TokenCache(a.out / "token-cache"),
        a.val_fraction,
        10_000,
    )
    st = td.store
    train = [
        np.asarray(st.tokens[int(st.starts[i]) : int(st.starts[i] + st.lengths[i])], np.int64)
        for i in td.train_idx
    ]
    val = validation_windows(td)
    cfg = DeepLogConfig(epochs=a.deeplog_epochs, seed=a.seed)
    t0 = time.perf_counter()
    model = train_deeplog(train, len(td.vocab), cfg)
    train_s = time.perf_counter() - t0
    scorer = DeepLogScorer(model, td.vocab, cfg)
    val_scores = window_max_rank(model, val, cfg)
    normal = read_event_lists([a.data / "dev_normal.jsonl"])
    abnormal = read_event_lists([a.data / "dev_abnormal.jsonl"])
    runs = [
        run_windows(scorer.score_events, s, desc=f"deeplog {n}")
        for n, s in (("normal", normal), ("abnormal", abnormal))
    ]
    scored = ScoredSets(
        runs[0].session_scores(float), runs[1].session_scores(float), throughput(*runs)
    )
    lengths = np.array([len(s) + 1 for s in (*normal, *abnormal)])  # + the end prediction
    calibrated = threshold_from_quantile(val_scores, a.threshold_quantile)
    out_rows: list[tuple[EvalReport, ScoredSets]] = []
    for name, thr, source in (
        (
            f"DeepLog g={cfg.top_g} (paper rule)",
            scorer.paper_threshold,
            f"none needed: an event outside the top {cfg.top_g} flags the session",
        ),
        (
            f"DeepLog p{a.threshold_quantile * 100:g}",
            calibrated,
            f"p{a.threshold_quantile * 100:g} of {len(val)} validation windows",
        ),
    ):
        out_rows.append(
            (
                evaluate_scores(
                    name,
                    scored,
                    thr,
                    source,
                    float(lengths.mean()),
                    POPULATION,
                    details={
                        "validation_fpr": float((val_scores > thr).mean()),
                        "diagnostic_f1_at_test_chosen_threshold": oracle_f1(
                            scored.normal, scored.abnormal
                        ),
                        "config": cfg.to_dict(),
                        "passes_unit": "LSTM predictions over h events, one per event + end",
                    },
                ),
                scored,
            )
        )
    return out_rows, {
        "train_s": round(train_s, 1),
        "val_windows": len(val),
        "train_windows": len(train),
    }


def row(r: EvalReport) -> dict[str, Any]:
    d = r.detection
    return {
        "name": r.name,
        "f1": round(d.f1, 4),
        "precision": round(d.precision, 4),
        "recall": round(d.recall, 4),
        "fpr": round(d.fpr, 5),
        "false_positives": d.false_positives,
        "auroc": round(d.auroc, 4),
        "auprc": round(d.auprc, 4),
        "threshold": d.threshold,
        "forward_passes_per_window": round(r.forward_passes_per_window, 2),
        "windows_per_s": round(r.throughput.windows_per_s, 1),
        "validation_fpr": r.details.get("validation_fpr"),
        "diagnostic_f1_at_test_chosen_threshold": r.details.get(
            "diagnostic_f1_at_test_chosen_threshold"
        ),
    }


def bool_flag(text: str) -> bool:
    """An argparse type for true/false values, parsed as settings parse them."""
    try:
        return bool(coerce(text, bool, "value"))
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    p = hdfs_parser(
        __doc__,
        work=ROOT / "bench" / "out" / "hdfs",
        results=ROOT / "bench" / "results" / "quality_hdfs.json",
        results_help="default: %(default)s",
    )
    p.add_argument("--preset", default="tiny", help="model preset (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default: %(default)s)")
    p.add_argument(
        "--lr", type=float, default=2e-3, help="peak learning rate (default: %(default)s)"
    )
    p.add_argument(
        "--warmup-steps", type=int, default=100, help="warm-up steps (default: %(default)s)"
    )
    p.add_argument(
        "--tokens-per-batch",
        type=int,
        default=4096,
        help="training batch budget (default: %(default)s)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="validation slice, by session hash (default: %(default)s, which holds over 1001 "
        "windows, so that p99.9 is a real quantile)",
    )
    p.add_argument(
        "--threshold-quantile",
        type=float,
        default=0.999,
        help="calibration quantile (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for everything (default: %(default)s)")
    p.add_argument(
        "--prefix-cut-fraction",
        type=float,
        default=0.0,
        help="share of training sessions cut to a prefix without the end marker "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--prune-last-layer",
        type=bool_flag,
        default=True,
        metavar="{true,false}",
        help="train with the last layer at the masked positions only (the trainer's "
        "prune_last_layer; default: true)",
    )
    add_device_args(p, "where the MLM trains and scores; the README's figures are CPU's")
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=16_384,
        help="scoring batch budget (default: %(default)s)",
    )
    p.add_argument(
        "--deeplog-epochs",
        type=int,
        default=10,
        help="DeepLog training epochs (default: %(default)s)",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also train and score the model without the end marker (a second training)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    configure_logging("warning", None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    report_dir = a.out / "report"
    shutil.rmtree(report_dir, ignore_errors=True)

    out(f"[1/5] training ({a.preset}, {a.epochs} epochs, with the end marker) ...")
    trained = a.out / "model.trained"
    train_s = train_bundle(a.data / "train.jsonl", trained, a, end_marker=True)
    out(f"  trained in {train_s:.0f} s")

    out("[2/5] scoring the validation slice and the dev sets once per scoring run ...")
    mlm, score_s = mlm_section(trained, a, end=True)

    out("[3/5] DeepLog baseline ...")
    deeplog, deeplog_info = deeplog_section(a)

    ablation: list[tuple[EvalReport, Calibration, ScoredSets]] = []
    ablation_train_s = None
    if a.ablation:
        out("[4/5] ablation: the same training without the end marker ...")
        plain = a.out / "model.no-end-marker"
        ablation_train_s = train_bundle(a.data / "train.jsonl", plain, a, end_marker=False)
        plain_rows, _ = mlm_section(plain, a, end=False)
        ablation = [
            (dataclasses.replace(r, name=f"{r.name}, no end marker"), c, s)
            for r, c, s in plain_rows
        ]

    out("[5/5] choosing the default and writing the bundle and reports ...")

    def rank_key(t: tuple[EvalReport, Calibration, ScoredSets]) -> tuple[float, float]:
        return (round(t[0].detection.f1, 4), -t[0].forward_passes_per_window)

    # The bundle's default must be a strategy serve scores with; the best row is reported too.
    rows = [t for t in mlm if not t[0].name.endswith(OLD_RULE)]
    best_measured = max(rows, key=rank_key)[0].name
    served = {v.name for v in VARIANTS if v.strategy.served is not None}
    best_report, best_cal, best_scored = max((t for t in rows if t[0].name in served), key=rank_key)
    bundle = a.out / "model"
    shutil.rmtree(bundle, ignore_errors=True)
    old = Calibration.from_json((trained / CALIBRATION).read_bytes())
    if old.strategy == best_cal.strategy and old.threshold == best_cal.threshold:
        shutil.move(trained, bundle)
    else:
        write_recalibrated_bundle(trained, bundle, best_cal)
        shutil.rmtree(trained, ignore_errors=True)
    write_plots(
        report_dir,
        best_scored.normal,
        best_scored.abnormal,
        best_report.detection,
        best_report.name,
        prefix="bundle-",
    )
    dl_report, dl_scored = deeplog[0]
    write_plots(
        report_dir,
        dl_scored.normal,
        dl_scored.abnormal,
        dl_report.detection,
        dl_report.name,
        prefix="deeplog-",
    )
    all_reports = [t[0] for t in mlm] + [t[0] for t in ablation] + [t[0] for t in deeplog]
    for r in all_reports:
        slug = "".join(c if c.isalnum() else "-" for c in r.name).strip("-")
        (report_dir / f"{slug}.json").write_bytes(
            orjson.dumps(r.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )

    total_s = time.perf_counter() - t_start
    results = {
        **report_header("quality_hdfs", key="benchmark"),
        "run_seconds": round(total_s, 1),
        "data": {
            "train": shown_path(a.data / "train.jsonl"),
            "dev_normal": shown_path(a.data / "dev_normal.jsonl"),
            "dev_abnormal": shown_path(a.data / "dev_abnormal.jsonl"),
            "population": dataclasses.asdict(POPULATION),
        },
        "config": {k: (shown_path(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "threshold_rule": (
            f"p{a.threshold_quantile * 100:g} of each strategy's scores on the trainer's "
            "validation slice of train.jsonl (normal sessions, never trained on); no dev "
            "label chooses anything"
        ),
        "session_end_marker": True,
        "training_seconds": round(train_s, 1),
        "ablation_training_seconds": (
            None if ablation_train_s is None else round(ablation_train_s, 1)
        ),
        "scoring_seconds": {k: round(v, 1) for k, v in score_s.items()},
        "best_measured_strategy": best_measured,
        "default_strategy": {"name": best_report.name, **best_cal.strategy},
        "bundle": shown_path(bundle),
        "strategies": [row(t[0]) for t in mlm],
        "ablation": [row(t[0]) for t in ablation],
        "deeplog": {"rows": [row(t[0]) for t in deeplog], **deeplog_info},
        "published_anchors_f1": ANCHORS,
        "note": (
            "diagnostic_f1_at_test_chosen_threshold is the best F1 over all thresholds on the "
            "dev labels: it is never used to choose anything, and is shown only to compare "
            "with published numbers that pick the threshold on the test set"
        ),
    }
    write_result(a.results.stem, results, path=a.results)
    out("")
    out(format_table(all_reports))
    out("")
    out(f"best measured: {best_measured}; bundle default: {best_report.name} ({bundle})")
    out(f"total {total_s / 60:.1f} min")
    out(f"results: {a.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
