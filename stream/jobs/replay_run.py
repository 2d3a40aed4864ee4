"""One `logad replay` run: pick the source, score it, write the scores where asked, and
evaluate them against labelled session files (the pipeline is stream/jobs/replay.py).

With an archive directory, every scored window also goes to serve's `DailyArchive`
(stream/serve/archive.py) as serve writes it, and raw events get their ids from serve's
`RawEvents` (starting from the archive's templates.json): the nightly retrain reads a
replayed archive as it reads serve's. At the end the input's event time has reached its
newest event (less the allowed lateness, as serve's watermark) and, for daily files, the end
of every complete (`.done`) file read; the archive marks the days that puts past their end
plus serve's grace complete."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import structlog
from aiokafka.errors import KafkaError

from schemas.bundle import read_bundle_templates
from schemas.daily_files import day_of, is_complete
from schemas.errors import ConfigError, DataError
from schemas.registry import resolve_model
from schemas.scores import Score
from schemas.windows import Window
from stream.jobs.replay import (
    BlockEvaluation,
    DaySource,
    Item,
    Progress,
    ReplaySettings,
    check_out_topic,
    day_files,
    dumps,
    evaluate_blocks,
    event_items,
    in_time_range,
    is_tty,
    read_labels,
    replay_scores,
    write_scores,
)
from stream.serve.archive import DailyArchive, day_end_ms
from stream.serve.kafka_io import kafka_failure
from stream.serve.raw_events import RawEvents
from trainer.mining.matcher import TemplateMatcher

log = structlog.get_logger(__name__)

_END_OF_TIME = 2**62


@dataclass(frozen=True)
class ReplayRequest:
    """One invocation's source and outputs (the settings hold the knobs)."""

    model: Path
    days_dir: Path | None = None
    events: Path | None = None
    topic: str | None = None
    from_date: date | None = None
    to_date: date | None = None
    from_time: int | None = None
    to_time: int | None = None
    out: Path | None = None
    out_topic: str | None = None
    force: bool = False
    labels: tuple[Path, ...] = ()
    report: Path | None = None
    archive_dir: Path | None = None
    """Also append every scored window to this archive, as `logad serve --archive-dir`."""
    time_field: str | None = None
    """Which clock --from-time/--to-time read: `broker` (a topic's produce timestamps) or
    `event` (each event's own ts); None: broker for a topic, event for an events file."""

    @property
    def clock(self) -> str:
        return self.time_field or ("broker" if self.topic is not None else "event")

    def check(self) -> None:
        """Fail before any work on what can be seen at once."""
        if (
            self.out is None
            and self.out_topic is None
            and not self.labels
            and self.archive_dir is None
        ):
            raise ConfigError(
                "nowhere to put the scores: pass --out FILE, --out-topic, --archive-dir or --labels"
            )
        if (
            self.archive_dir is not None
            and self.days_dir is not None
            and self.archive_dir.resolve() == self.days_dir.resolve()
        ):
            raise ConfigError("--archive-dir must not be the --days-dir being replayed")
        if self.out_topic is not None:
            check_out_topic(self.out_topic, self.force)
        for path in [self.events, *self.labels]:
            if path is not None and not path.is_file():
                raise DataError(f"no such file: {path}")
        parent = self.out.resolve().parent if self.out is not None else None
        if parent is not None and not parent.is_dir():
            raise DataError(f"cannot write {self.out}: no such directory {parent}")
        if self.topic is not None and (self.from_time is None or self.to_time is None):
            raise ConfigError("--topic needs --from-time and --to-time")
        if self.time_field not in (None, "broker", "event"):
            raise ConfigError(f"--time-field is broker or event, not {self.time_field!r}")
        if self.clock == "broker" and self.topic is None:
            raise ConfigError("--time-field broker needs --topic: files carry event time only")
        timed = self.from_time is not None or self.to_time is not None
        if self.days_dir is not None and timed:
            raise ConfigError(
                "--from-time/--to-time select from a topic or an events file; "
                "for daily files use --from-date/--to-date"
            )

    def source(self) -> str:
        """What was read, for a message: the source and the time range with its clock."""
        where = str(self.days_dir or self.events or f"topic {self.topic}")
        if self.from_time is None and self.to_time is None:
            return where
        return f"{where} with {self.clock} time in [{self.from_time}, {self.to_time}) ms"


@dataclass(frozen=True)
class ReplayOutcome:
    scores: list[Score]
    events: int
    model_version: str
    evaluation: BlockEvaluation | None
    days_complete: tuple[date, ...] = ()
    """Archive days this run marked complete."""


def archive_watermark(
    newest_ms: int | None, complete_days: Iterable[date], lateness_ms: int, grace_ms: int
) -> int | None:
    """Event time at the end of a replay: its newest event less the allowed lateness (as
    serve's watermark), and past the end plus grace of every complete day file it read;
    None when it says nothing."""
    marks = [day_end_ms(d) + grace_ms for d in complete_days]
    if newest_ms is not None:
        marks.append(newest_ms - lateness_ms)
    return max(marks, default=None)


class _ArchiveSink:
    """Serve's archive, fed as replay scores; remembers the newest window end."""

    def __init__(self, archive: DailyArchive) -> None:
        self.archive = archive
        self.newest_ms: int | None = None

    def __call__(self, scored: list[tuple[Window, Score]]) -> None:
        self.archive.append_many(scored)
        for w, _ in scored:
            if self.newest_ms is None or w.last_ts > self.newest_ms:
                self.newest_ms = w.last_ts


def _progress(total: int | None, unit: str) -> Any:
    if not is_tty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True)


def run_replay(s: ReplaySettings, req: ReplayRequest) -> ReplayOutcome:
    """Score the request's source with its model; write the scores and the evaluation."""
    req.check()
    from trainer.gc_tuning import tuned_gc
    from trainer.scoring import WindowScorer

    bundle = resolve_model(req.model)
    scorer = WindowScorer.from_bundle(
        bundle,
        s.scoring.device,
        max_batch_tokens=s.scoring.max_batch_tokens,
        explain_known_mixes=s.scoring.explain_known_mixes,
        bundle_key=s.signing.bundle_key,
    )
    templates = read_bundle_templates(bundle)
    sink = None
    complete_days: list[date] = []
    if req.archive_dir is not None:
        raw = RawEvents(templates, req.archive_dir)  # ids as serve gives them to this archive
        matcher = raw.matcher
        grace = s.sessionizer.gap_ms + s.sessionizer.allowed_lateness_ms  # as serve's
        sink = _ArchiveSink(DailyArchive(req.archive_dir, grace_ms=grace, templates=raw.snapshot))
    else:
        matcher = TemplateMatcher(templates) if templates is not None else None
    bar = None
    events = 0

    def progress(n: int, what: str) -> None:
        if bar is not None:
            bar.update(n)
            bar.set_postfix_str(f"{what} events={events}", refresh=False)

    restore = None
    items: Iterable[Item]
    if req.days_dir is not None:
        files = day_files(req.days_dir, req.from_date, req.to_date)
        complete_days = [d for p in files if is_complete(p) and (d := day_of(p)) is not None]
        source = DaySource(files, s.sessionizer.gap_ms)
        bar = _progress(source.total(), "B")
        items = source.items(progress)
        restore = source.restore
    elif req.events is not None:
        bar = _progress(req.events.stat().st_size, "B")
        items = in_time_range(event_items(req.events, progress), req.from_time, req.to_time)
    else:
        items = _kafka_items(s, req, progress)

    def counted(it: Iterable[Item]) -> Iterator[Item]:
        nonlocal events
        for x in it:
            events += 1
            yield x

    marked: list[date] = []
    try:
        with tuned_gc():  # the model is loaded: see trainer/gc_tuning.py
            scores = replay_scores(counted(items), scorer, s, restore, matcher, sink)
        if sink is not None and events:
            lateness = s.sessionizer.allowed_lateness_ms
            wm = archive_watermark(sink.newest_ms, complete_days, lateness, sink.archive.grace_ms)
            if wm is not None:
                marked = sink.archive.mark_complete(wm)
    finally:
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.archive.close()  # fsync what was written, even after a failure
    if events == 0:
        hint = ""
        if req.clock == "broker":
            hint = (
                " (broker time is when each message was produced; "
                "--time-field event selects by the events' own ts)"
            )
        raise DataError(f"replay read 0 usable events from {req.source()}{hint}")
    log.info(
        "replay_done",
        events=events,
        windows=len(scores),
        model=scorer.model_version,
        new_templates=matcher.new_templates if matcher is not None else None,
    )
    if req.out is not None:
        write_scores(req.out, scores)
    if req.out_topic is not None:
        try:
            asyncio.run(_produce(s, req.out_topic, scores))
        except KafkaError as e:
            raise kafka_failure(s.kafka.bootstrap, e) from None
    evaluation = evaluate_blocks(scores, read_labels(req.labels)) if req.labels else None
    if evaluation is not None and req.report is not None:
        req.report.write_bytes(dumps(dataclasses.asdict(evaluation)))
    return ReplayOutcome(scores, events, scorer.model_version, evaluation, tuple(marked))


def _kafka_items(s: ReplaySettings, req: ReplayRequest, progress: Progress) -> Iterator[Item]:
    from stream.jobs.replay_kafka import kafka_items

    assert req.topic is not None and req.from_time is not None and req.to_time is not None
    if req.clock == "event":  # produce times say nothing of event times: read it all
        items = kafka_items(s.kafka, req.topic, 0, _END_OF_TIME, progress)
        return in_time_range(items, req.from_time, req.to_time)
    return kafka_items(s.kafka, req.topic, req.from_time, req.to_time, progress)


async def _produce(s: ReplaySettings, topic: str, scores: list[Score]) -> None:
    from aiokafka import AIOKafkaProducer

    from stream.serve.kafka_security import client_options, start_client

    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka.bootstrap,
        acks="all",
        client_id=s.kafka.client_id,
        **client_options(s.kafka),
    )
    try:
        await start_client(producer, s.kafka, s.kafka.bootstrap)
        for sc in scores:
            await producer.send(topic, sc.encode(), key=sc.session_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
