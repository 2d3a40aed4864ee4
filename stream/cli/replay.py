"""`logad replay`: score historical days, an events file or a Kafka time range with the same
sessionizer and scorer as `logad serve`, into a JSONL file or a non-live topic
(the job is stream/jobs/replay_run.py)."""

from __future__ import annotations

import argparse
from datetime import date, datetime
from pathlib import Path

import structlog

from schemas.runtime.console import out
from schemas.runtime.settings import settings_for_log
from stream.cli.command import Subparsers, command_parser
from stream.jobs.replay import ReplaySettings
from stream.jobs.replay_run import ReplayOutcome, ReplayRequest, run_replay
from stream.serve.kafka_logs import kafka_log_filter

log = structlog.get_logger(__name__)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _time_ms(text: str) -> int:
    """Epoch ms, or an ISO-8601 time with a zone."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (epoch ms or ISO-8601): {text!r}") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time zone (e.g. Z): {text!r}")
    return int(t.timestamp() * 1000)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="bundle or registry directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--days-dir", type=Path, metavar="DIR", help="directory of daily files")
    src.add_argument("--events", type=Path, metavar="FILE", help="LogEvent JSONL (.gz ok)")
    src.add_argument("--topic", metavar="T", help="Kafka topic of LogEvent messages")
    p.add_argument("--from-date", type=_date, metavar="D", help="first day (default: oldest)")
    p.add_argument("--to-date", type=_date, metavar="D", help="last day (default: newest)")
    p.add_argument(
        "--from-time", type=_time_ms, metavar="T", help="start, epoch ms or ISO (see --time-field)"
    )
    p.add_argument("--to-time", type=_time_ms, metavar="T", help="end (exclusive), epoch ms or ISO")
    p.add_argument(
        "--time-field",
        choices=("broker", "event"),
        help="the clock --from-time/--to-time read: broker (a topic's produce timestamps; "
        "reads only that offset range) or event (each event's own ts; a topic is read whole) "
        "(default: broker for --topic, event for --events)",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write Score lines here")
    p.add_argument("--out-topic", metavar="T", help="produce Scores to this (non-live) topic")
    p.add_argument(
        "--archive-dir",
        type=Path,
        metavar="DIR",
        help="also append every scored window to this archive as serve --archive-dir does, "
        "and mark the days the input completes (.done) for logad retrain",
    )
    p.add_argument(
        "--force", action="store_true", help="allow --out-topic logad.scores (default: off)"
    )
    p.add_argument("--labels", type=Path, nargs="+", metavar="FILE", help="labelled session files")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the evaluation as JSON")


def register(subparsers: Subparsers) -> None:
    command_parser(
        subparsers,
        "replay",
        help="score historical data with the same sessionizer and scorer as serve",
        description="Replay daily files (--days-dir), an events file (--events) or a Kafka "
        "topic between two times (--bootstrap --topic --from-time --to-time, by the broker's "
        "produce timestamps unless --time-field event; read with no consumer group, so no "
        "committed offset moves) through the stream's sessionizer and "
        "a model's scorer. Scores go to --out (JSONL, sorted, byte-identical for the same "
        "input and model) or --out-topic, and with --archive-dir into an archive as serve "
        "writes it (a day is marked complete once the input's event time is past its end "
        "plus serve's grace, or its daily file read was complete). With --labels, prints a "
        "per-session evaluation. "
        "HDFS blocks need a --gap-ms of hours. A replay that reads no usable event exits 2.",
        arguments=_arguments,
        settings=ReplaySettings,
        run=run,
    )


def request(args: argparse.Namespace) -> ReplayRequest:
    return ReplayRequest(
        model=args.model,
        days_dir=args.days_dir,
        events=args.events,
        topic=args.topic,
        from_date=args.from_date,
        to_date=args.to_date,
        from_time=args.from_time,
        to_time=args.to_time,
        out=args.out,
        out_topic=args.out_topic,
        force=args.force,
        labels=tuple(args.labels or ()),
        report=args.report,
        archive_dir=args.archive_dir,
        time_field=args.time_field,
    )


def run(args: argparse.Namespace, settings: ReplaySettings) -> int:
    log.info("replay_settings", **settings_for_log(settings))
    req = request(args)
    with kafka_log_filter():  # a broker outage is a few lines, not aiokafka's thousands
        outcome = run_replay(settings, req)
    n = len(outcome.scores)
    if req.out is not None:
        out(f"{n} scores from {outcome.events} events written to {req.out}")
    if req.out_topic is not None:
        out(f"{n} scores produced to {req.out_topic}")
    if req.archive_dir is not None:
        days = ", ".join(d.isoformat() for d in outcome.days_complete) or "none"
        out(f"{n} windows archived in {req.archive_dir}; days marked complete: {days}")
    _print_evaluation(outcome)
    return 0


def _print_evaluation(outcome: ReplayOutcome) -> None:
    ev = outcome.evaluation
    if ev is None:
        return
    d = ev.detection
    out(
        f"sessions: {ev.sessions_scored} scored of {ev.sessions_labelled} labelled "
        f"({ev.missing} not seen in the replay); threshold {d['threshold']:.4f}"
    )
    out(f"  FPR       {d['fpr']:.5f}  ({d['false_positives']}/{d['n_normal']})")
    out(f"  recall    {d['recall']:.5f}  ({d['true_positives']}/{d['n_abnormal']})")
    out(f"  precision {d['precision']:.5f}  F1 {d['f1']:.5f}")
    out(f"  AUROC     {d['auroc']:.5f}  AUPRC {d['auprc']:.5f}")
