"""`logad replay`: score historical days, an events file or a Kafka time range with the same
sessionizer and scorer as `logad serve`, into a JSONL file or a non-live topic."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from datetime import date, datetime
from pathlib import Path
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from schemas.errors import ConfigError, DataError
from schemas.registry import resolve_model
from schemas.runtime.console import out
from schemas.runtime.settings import add_settings_flags, build_settings, settings_flags
from schemas.scores import Score
from stream.jobs.replay import (
    DaySource,
    ReplaySettings,
    check_out_topic,
    day_files,
    evaluate_blocks,
    event_items,
    is_tty,
    read_labels,
    replay_scores,
    write_scores,
)
from stream.serve.kafka_io import kafka_failure

log = structlog.get_logger(__name__)

_HELP = {
    "gap_ms": "a session closes after this much event time without events",
    "max_events": "events per window; a longer session goes on in a new window",
    "max_duration_ms": "a window is closed after spanning this much event time",
    "max_open_sessions": "open sessions held in memory; past it the oldest is flushed",
    "allowed_lateness_ms": "event-time slack before the watermark closes sessions",
    "device": "scoring device: auto, cpu, cuda, cuda:N",
    "max_batch_tokens": "most tokens in one scoring batch",
    "batch_windows": "windows handed to the scorer at a time",
    "explain_known_mixes": "run the model on windows their known mix scores 0, to list "
    "their surprising events (off: no forward pass for them, and no explanation)",
}


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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "replay",
        help="score historical data with the same sessionizer and scorer as serve",
        description="Replay daily files (--days-dir), an events file (--events) or a Kafka "
        "topic between two times (--bootstrap --topic --from-time --to-time; read with no "
        "consumer group, so no committed offset moves) through the stream's sessionizer and "
        "a model's scorer. Scores go to --out (JSONL, sorted, byte-identical for the same "
        "input and model) or --out-topic. With --labels, prints a per-session evaluation.",
    )
    p.add_argument("--model", type=Path, required=True, help="bundle or registry directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--days-dir", type=Path, metavar="DIR", help="directory of daily files")
    src.add_argument("--events", type=Path, metavar="FILE", help="LogEvent JSONL (.gz ok)")
    src.add_argument("--topic", metavar="T", help="Kafka topic of LogEvent messages")
    p.add_argument("--from-date", type=_date, metavar="D", help="first day (default: oldest)")
    p.add_argument("--to-date", type=_date, metavar="D", help="last day (default: newest)")
    p.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka (default: %(default)s)")
    p.add_argument("--from-time", type=_time_ms, metavar="T", help="start, epoch ms or ISO")
    p.add_argument("--to-time", type=_time_ms, metavar="T", help="end (exclusive), ms or ISO")
    p.add_argument("--out", type=Path, metavar="FILE", help="write Score lines here")
    p.add_argument("--out-topic", metavar="T", help="produce Scores to this (non-live) topic")
    p.add_argument(
        "--force", action="store_true", help="allow --out-topic logad.scores (default: off)"
    )
    p.add_argument("--labels", type=Path, nargs="+", metavar="FILE", help="labelled session files")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the evaluation as JSON")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML/JSON settings file")
    add_settings_flags(p, ReplaySettings, _HELP)
    p.set_defaults(func=run)


def _progress(total: int | None, unit: str) -> Any:
    if not is_tty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True)


def run(args: argparse.Namespace) -> int:
    flags = settings_flags(args, ReplaySettings)
    s = build_settings(ReplaySettings, config_file=args.config, flags=flags)
    if args.out is None and args.out_topic is None and not args.labels:
        raise ConfigError("nowhere to put the scores: pass --out FILE, --out-topic or --labels")
    if args.out_topic is not None:
        check_out_topic(args.out_topic, args.force)
    for path in [args.events, *(args.labels or [])]:
        if path is not None and not path.is_file():
            raise DataError(f"no such file: {path}")
    if args.out is not None and not args.out.resolve().parent.is_dir():
        raise DataError(f"cannot write {args.out}: no such directory {args.out.resolve().parent}")
    from trainer.gc_tuning import tuned_gc
    from trainer.scoring.scorer import WindowScorer

    bundle = resolve_model(args.model)
    scorer = WindowScorer.from_bundle(
        bundle,
        s.device,
        max_batch_tokens=s.max_batch_tokens,
        explain_known_mixes=s.explain_known_mixes,
    )
    bar = None
    events = 0

    def progress(n: int, what: str) -> None:
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(f"{what} events={events}", refresh=False)

    restore = None
    if args.days_dir is not None:
        source = DaySource(day_files(args.days_dir, args.from_date, args.to_date), s.gap_ms)
        bar = _progress(source.total(), "B")
        items = source.items(progress)
        restore = source.restore
    elif args.events is not None:
        bar = _progress(args.events.stat().st_size, "B")
        items = event_items(args.events, progress)
    else:
        if args.from_time is None or args.to_time is None:
            raise ConfigError("--topic needs --from-time and --to-time")
        from stream.jobs.replay_kafka import kafka_items

        items = kafka_items(args.bootstrap, args.topic, args.from_time, args.to_time, progress)

    def counted(it: Any) -> Any:
        nonlocal events
        for x in it:
            events += 1
            yield x

    try:
        with tuned_gc():  # the model is loaded: see trainer/gc_tuning.py
            scores = replay_scores(counted(items), scorer, s, restore)
    finally:
        if bar is not None:
            bar.close()
    log.info("replay_done", events=events, windows=len(scores), model=scorer.model_version)
    if args.out is not None:
        write_scores(args.out, scores)
        out(f"{len(scores)} scores from {events} events written to {args.out}")
    if args.out_topic is not None:
        try:
            asyncio.run(_produce(args.bootstrap, args.out_topic, scores))
        except KafkaError as e:
            raise kafka_failure(args.bootstrap, e) from None
        out(f"{len(scores)} scores produced to {args.out_topic}")
    if args.labels:
        _print_evaluation(scores, args)
    return 0


async def _produce(bootstrap: str, topic: str, scores: list[Score]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="logad-replay")
    try:
        await producer.start()
        for sc in scores:
            await producer.send(topic, sc.encode(), key=sc.session_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _print_evaluation(scores: list[Score], args: argparse.Namespace) -> None:
    from stream.jobs.replay import dumps

    ev = evaluate_blocks(scores, read_labels(args.labels))
    d = ev.detection
    out(
        f"sessions: {ev.sessions_scored} scored of {ev.sessions_labelled} labelled "
        f"({ev.missing} not seen in the replay); threshold {d['threshold']:.4f}"
    )
    out(f"  FPR       {d['fpr']:.5f}  ({d['false_positives']}/{d['n_normal']})")
    out(f"  recall    {d['recall']:.5f}  ({d['true_positives']}/{d['n_abnormal']})")
    out(f"  precision {d['precision']:.5f}  F1 {d['f1']:.5f}")
    out(f"  AUROC     {d['auroc']:.5f}  AUPRC {d['auprc']:.5f}")
    if args.report is not None:
        args.report.write_bytes(dumps(dataclasses.asdict(ev)))
