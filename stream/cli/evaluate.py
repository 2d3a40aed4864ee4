"""`logad evaluate`: detection quality of a model bundle on labelled session files, or per
incident against a list of incidents.

    logad evaluate --model BUNDLE --normal FILE... --abnormal FILE...
                   [--report DIR] [--population-normals N --population-abnormals M]
                   [--groups 6 --calibrate-on TRAIN_DATA ...]
    logad evaluate --incidents FILE --model BUNDLE --sessions FILE... [--report DIR]
    logad evaluate --incidents FILE --scores SCORES.jsonl... [--report DIR]

The threshold is the bundle's calibrated one. Overriding the scoring strategy (or the
threshold quantile) re-calibrates on the bundle's validation slice, re-derived from its
training data with the trainer's own split: normal data only, never the files evaluated.
With --incidents the unit is the incident (trainer/incidents.py), session labels are
ignored, and --scores takes verdicts already made (`logad replay --out`, serve's archive).
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
        "--model",
        type=Path,
        metavar="BUNDLE",
        help="the model bundle directory (required, except with --incidents --scores)",
    )
    p.add_argument(
        "--normal",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="session files (JSON Lines) of normal sessions, or events files of LogEvent "
        "lines, raw ones (a message, no event_id) included",
    )
    p.add_argument(
        "--abnormal",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="session files (JSON Lines) of anomalous sessions, or events files",
    )
    p.add_argument(
        "--incidents",
        type=Path,
        metavar="FILE",
        help="evaluate per incident: FILE lists them (JSON Lines or an array of {start, end, "
        "service?, type?, id?}, times ISO-8601 with a zone or epoch ms; or a Nezha fault list, "
        "each injection lasting fault_window_s). Reports incidents detected, time to first "
        "alert and false alerts per hour and per 1,000 sessions outside every incident, per "
        "incident type; session labels are ignored (default: evaluate per session label)",
    )
    p.add_argument(
        "--sessions",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="with --incidents: session files with start_ts/end_ts, or events files (whose "
        "service fields let incidents match on their service), scored with --model",
    )
    p.add_argument(
        "--scores",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="with --incidents, instead of --model: verdicts already made, as Score lines "
        "(`logad replay --out`) or archive daily files with score and alerted",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.json and the PNGs (scores.png, roc.png, pr.png; with --incidents "
        "incident_timeline.png, incidents_by_type.png) here (default: print only)",
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
        help="measure detection quality (FPR, recall, precision, F1, AUROC, AUPRC) of a bundle, "
        "or incidents detected and false alerts per hour (--incidents)",
        description="Score labelled session files with a model bundle at its calibrated "
        "threshold and report the false-positive rate on the normals, the recall on the "
        "anomalies, precision and F1 (extrapolated to a population ratio when given), AUROC, "
        "AUPRC and the scoring throughput. Sessions over 510 events are split into windows; "
        "a session's score is the max over its windows. No label chooses anything: the "
        "threshold comes from calibration on normal data. An events file's sessions are its "
        "session ids' events in time order; raw events map to template ids with the bundle's "
        "templates, as serve maps them. With --incidents the unit is the incident: one is "
        "detected when an alerted session overlapping its time (on its service, where both "
        "are known) alerted at or after its start. Settings come from defaults < "
        "--config < LOGAD_* environment < flags.",
        arguments=_arguments,
        settings=EvaluateSettings,
        run=run,
    )


def _check(args: argparse.Namespace, s: EvaluateSettings) -> None:
    """One clear line for each combination of inputs that cannot work."""
    if args.incidents is None:
        if args.sessions or args.scores:
            raise ConfigError("--sessions and --scores go with --incidents")
        if args.model is None or not args.normal or not args.abnormal:
            raise ConfigError("give --model, --normal and --abnormal (or --incidents)")
    elif args.scores:
        if args.model is not None or args.sessions or args.normal or args.abnormal:
            raise ConfigError("--scores holds verdicts already made: give no --model or files")
    elif args.model is None or not (args.sessions or args.normal or args.abnormal):
        raise ConfigError("--incidents needs --scores, or --model and --sessions")
    if s.recalibrates and not args.calibrate_on:
        raise ConfigError(
            "the bundle's threshold belongs to the strategy it was calibrated with: pass "
            "--calibrate-on with the bundle's training data to re-calibrate for the override"
        )


def run(args: argparse.Namespace, s: EvaluateSettings) -> int:
    _check(args, s)
    log.info("evaluate_settings", **settings_for_log(s))
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)  # before the scoring, not after it
    if args.incidents is not None:
        return _run_incidents(args, s)
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
        _write_json(args.report / REPORT_JSON, report.to_dict())
        out(f"report: {args.report / REPORT_JSON}, {', '.join(p.name for p in paths)}")
    return 0


def _run_incidents(args: argparse.Namespace, s: EvaluateSettings) -> int:
    from trainer.evaluate_run import evaluate_incidents  # torch loads here
    from trainer.incidents import format_incident_table

    report, details, paths = evaluate_incidents(
        s,
        args.incidents,
        bundle=args.model,
        session_files=[*args.sessions, *args.normal, *args.abnormal],
        scores_files=args.scores,
        calibrate_on=args.calibrate_on,
        report_dir=args.report,
    )
    out(format_incident_table(report))
    matched = sum(o.by_service for o in report.outcomes)
    out(
        f"{report.sessions} sessions ({report.sessions_with_services} with services); "
        f"{matched} of {len(report.outcomes)} incidents matched on their service, the rest by "
        f"time only; threshold: {details['threshold_source']}"
    )
    if args.report:
        _write_json(args.report / REPORT_JSON, {**report.to_dict(), **details})
        out(f"report: {args.report / REPORT_JSON}, {', '.join(p.name for p in paths)}")
    return 0


def _write_json(path: Path, obj: object) -> None:
    path.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
