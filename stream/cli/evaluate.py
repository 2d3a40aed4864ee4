"""`logad evaluate`: detection quality of a model bundle on labelled session files.

    logad evaluate --model BUNDLE --normal FILE... --abnormal FILE...
                   [--report DIR] [--population-normals N --population-abnormals M]
                   [--groups 6 --calibrate-on TRAIN_DATA ...]

The threshold is the bundle's calibrated one. Overriding the scoring strategy (or the
threshold quantile) re-calibrates on the bundle's validation slice, re-derived from its
training data with the trainer's own split: normal data only, never the files evaluated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import structlog

from schemas.errors import ConfigError
from schemas.runtime.console import out
from schemas.runtime.settings import settings_for_log
from stream.cli.command import Subparsers, command_parser
from trainer.evaluate_settings import EvaluateSettings

log = structlog.get_logger(__name__)

REPORT_JSON = "report.json"


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", type=Path, required=True, metavar="BUNDLE", help="the model bundle directory"
    )
    p.add_argument(
        "--normal",
        type=Path,
        nargs="+",
        required=True,
        metavar="FILE",
        help="session files (JSON Lines) of normal sessions, or events files of LogEvent "
        "lines, raw ones (a message, no event_id) included",
    )
    p.add_argument(
        "--abnormal",
        type=Path,
        nargs="+",
        required=True,
        metavar="FILE",
        help="session files (JSON Lines) of anomalous sessions, or events files",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.json and the PNGs (scores.png, roc.png, pr.png) here "
        "(default: print only)",
    )
    p.add_argument(
        "--calibrate-on",
        type=Path,
        nargs="+",
        metavar="DIR_OR_FILE",
        help="the bundle's training data: needed to re-calibrate when the "
        "strategy or threshold quantile is overridden (default: none)",
    )


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "evaluate",
        help="measure detection quality (FPR, recall, precision, F1, AUROC, AUPRC) of a bundle",
        description="Score labelled session files with a model bundle at its calibrated "
        "threshold and report the false-positive rate on the normals, the recall on the "
        "anomalies, precision and F1 (extrapolated to a population ratio when given), AUROC, "
        "AUPRC and the scoring throughput. Sessions over 510 events are split into windows; "
        "a session's score is the max over its windows. No label chooses anything: the "
        "threshold comes from calibration on normal data. An events file's sessions are its "
        "session ids' events in time order; raw events map to template ids with the bundle's "
        "templates, as serve maps them. Settings come from defaults < "
        "--config < LOGAD_* environment < flags.",
        arguments=_arguments,
        settings=EvaluateSettings,
        run=run,
    )


def run(args: argparse.Namespace, s: EvaluateSettings) -> int:
    if s.recalibrates and not args.calibrate_on:
        raise ConfigError(
            "the bundle's threshold belongs to the strategy it was calibrated with: pass "
            "--calibrate-on with the bundle's training data to re-calibrate for the override"
        )
    log.info("evaluate_settings", **settings_for_log(s))
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)  # before the scoring, not after it
    from trainer.evaluate_run import evaluate_bundle  # torch loads here, not for --help

    report, paths = evaluate_bundle(
        s, args.model, args.normal, args.abnormal, args.calibrate_on, args.report
    )
    d = report.detection
    from trainer.evaluate import format_table

    out(format_table([report]))
    where = "at the population ratio" if d.population else "on the files as given"
    out(f"threshold {d.threshold:.6g} ({report.threshold_source}); precision and F1 {where}")
    out(
        f"normals {d.n_normal} (FP {d.false_positives}), anomalies {d.n_abnormal} "
        f"(TP {d.true_positives}); {report.throughput.windows_per_s:.1f} windows/s"
    )
    if args.report:
        (args.report / REPORT_JSON).write_bytes(
            orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
        out(f"report: {args.report / REPORT_JSON}, {', '.join(p.name for p in paths)}")
    return 0
