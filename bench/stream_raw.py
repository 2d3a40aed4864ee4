"""Stream cost of raw text against event ids: what mapping each line's message to a template
id costs on serve's consume path.

    .venv/bin/python -m bench.stream_raw                         # the mapping step, in-process
    .venv/bin/python -m bench.stream_raw --serve                 # serve drains, end to end
    .venv/bin/python -m bench.stream_raw --serve --model BUNDLE  # ... with a bundle of yours

The stream (--traffic): `hdfs`, HDFS's time-ordered dev stream (data/hdfs/dev_events.jsonl.gz,
real log text, 111,621 events), or `simulated`, the Spring Cloud traffic bench/stream_e2e.py
drains (--events of it). The templates are mined from the messages of one half of its
sessions (bench/raw_hdfs.py's split and miner); then every line of the stream is named by
matching its message against that set, as serve will against a bundle's templates.json. Two
encodings of the same events, in the same order, with the same keys:

- event-id records: LogEvent JSON with the matched id as `event_id`, and the message;
- raw records: the same without `event_id` (what a producer that does not parse sends).

In-process (the default; measured per CPU second like bench/stream_throughput.py, with its
`timed` rounds, its `run_sessionizer` and serve's GC thresholds, best of --repeats):

- match: serve's `TemplateMatcher.id_of` on every message (a matcher fresh each round, so
  its caches start cold as serve's do), and mask: the masking regex alone, what a line
  costs when no cache knows it (the matcher's LRU is keyed by digit shape, the miner's
  cache by masked message);
- ids path: `decode_fields` of every event-id record, then the sessionizer;
- raw path: `decode_fields` of every raw record, `event_id_for` through a fresh matcher
  (serve's consume loop), then the sessionizer;
- decode and sessionizer alone, so the paths' shares show.

The ratio raw path / ids path is the share of the ids path's consume rate the raw path keeps
when nothing but decoding and sessionizing bounds it; serve also fetches, scores and
produces, so the drain ratio (--serve) is the figure the target (>= 0.5) is about.

--serve: one broker (bench/stream_e2e.py's), one bundle that holds templates.json, and
`logad serve` draining a backlog of the event-id records and one of the raw records,
alternating over --rounds (ids first in even rounds, raw first in odd) after one warm-up
drain of the event-id records that is not counted, each a fresh serve on its own topics
(stream_e2e's `drain_serve`, its drain rate: first event consumed to last score on the
topic). The backlog is --copies runs of the stream one after another, so that
the drain's fixed tail (one idle timeout, the last batch) weighs little; the consume phase
alone (first to last event consumed) is reported beside it. Each drain must score every
event of every session, and windows cut as the warm-up drain cut them must get its scores
(`scores_agree`; the target counts only then). Cuts themselves may differ between drains,
even of the same records: a partition quiet for the idle timeout mid-drain is flushed.
Needs serve's raw-event support: without --model, the bench trains a tiny bundle with
`logad train --data DIR` on the mined half's daily files, with the mined templates.json in
DIR beside them (as `logad parse` writes them), and stops if the bundle holds no
templates.json. With --model, the stream is named by the bundle's templates.json. --aa
drains the event-id backlog in both slots: a plumbing check that runs on any tree, and the
noise floor of the alternation.

Writes bench/results/stream_raw.json (in-process), stream_raw-serve.json (--serve) or
stream_raw-serve-aa.json (--serve --aa).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import shutil
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.hdfs_args import DATA
from bench.machine import report_header, shown_path, write_result
from bench.raw_hdfs import (
    UNMATCHED,
    Line,
    epoch_ms,
    group_sessions,
    mined_ids,
    split_blocks,
)
from bench.stream_throughput import Record, run_sessionizer, timed, with_serve_gc
from schemas.events import decode_fields, label_of
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.templates import TemplateSet, read_templates
from stream.serve.sessionizer import SessionizerSettings
from trainer.gc_tuning import GC_THRESHOLD_0
from trainer.mining import Masker, TemplateMiner
from trainer.mining.accuracy import grouping_accuracy
from trainer.mining.matcher import TemplateMatcher, event_id_for

TEMPLATES = "templates.json"
"""The bundle's template set, as `logad train` is to write it (raw serve reads it)."""
TARGET_RAW_VS_IDS = 0.5
HOUR_MS = 3_600_000
SCORE_TOLERANCE = 1e-4
"""Two drains score a window in batches of other windows; float rounding differs by far
less (bench/replay_hdfs.py saw 1.9e-6)."""


@dataclass(frozen=True)
class Stream:
    """A time-ordered stream of events (LogEvent dicts, `event_id` the matched template id)
    and what it was mined from."""

    name: str
    events: list[dict[str, Any]]
    templates: TemplateSet
    training_sessions: list[str]
    """The sessions whose messages the templates were mined from."""
    unmatched: int
    grouping_accuracy: float
    """Of the matched ids against the stream's given event ids (unmatched lines one group)."""
    gap_ms: int
    """serve's gap for this stream: longer than its sessions' longest silence."""
    max_duration_ms: int


def hdfs_events(path: Path) -> list[dict[str, Any]]:
    """The events file's LogEvent dicts in file order, times as epoch ms."""
    import gzip

    events: list[dict[str, Any]] = []
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                e = orjson.loads(raw)
                if not isinstance(e["ts"], int):
                    e["ts"] = epoch_ms(e["ts"])
                events.append(e)
    return events


def simulated_events(n_events: int, seed: int) -> list[dict[str, Any]]:
    """stream_e2e's drain traffic: simulated sessions until `n_events`, interleaved."""
    from bench.stream_e2e import traffic
    from stream.devtools.simulate import interleave

    return [e.to_dict() for e in interleave(traffic(seed, n_events, 10.0))]


def build_stream(name: str, events: list[dict[str, Any]], templates: TemplateSet | None) -> Stream:
    """Name every event by matching its message: against `templates` when given (a
    bundle's), else against templates mined from the messages of raw_hdfs's training half
    of the sessions, in stream order."""
    lines = [
        Line(e["ts"], e["session_id"], str(e.get("event_id", "")), e["message"]) for e in events
    ]
    train_blocks, _ = split_blocks(group_sessions(lines))
    train_set = set(train_blocks)
    if templates is None:
        train = [i for i, x in enumerate(lines) if x.session_id in train_set]
        _, miner, _ = mined_ids(lines, train, [])
        templates = miner.to_set()
    ids = match_all(TemplateMiner.from_set(templates), [x.message for x in lines])
    named = [{**e, "event_id": eid} for e, eid in zip(events, ids, strict=True)]
    hdfs = name == "hdfs"
    return Stream(
        name,
        named,
        templates,
        train_blocks,
        sum(1 for x in ids if x == UNMATCHED),
        round(grouping_accuracy(ids, [x.event_id for x in lines]), 5),
        # bench/replay_hdfs.py's: an HDFS block falls silent for up to 12.9 h.
        14 * HOUR_MS if hdfs else 2000,
        36 * HOUR_MS if hdfs else SessionizerSettings().max_duration_ms,
    )


def repeated(events: Sequence[dict[str, Any]], copies: int, gap_ms: int) -> list[dict[str, Any]]:
    """`copies` runs of the stream one after another in event time, each with its own
    session ids (`<id>~<copy>`, the first copy's unchanged): a backlog long enough that a
    drain's fixed tail (the idle flush, the last batch) weighs little."""
    if copies <= 1 or not events:
        return list(events)
    span = max(e["ts"] for e in events) - min(e["ts"] for e in events) + gap_ms + 1
    out: list[dict[str, Any]] = list(events)
    for c in range(1, copies):
        out += [
            {**e, "ts": e["ts"] + c * span, "session_id": f"{e['session_id']}~{c}"} for e in events
        ]
    return out


def match_all(miner: TemplateMiner, messages: Sequence[str]) -> list[str]:
    match = miner.match
    return [match(m) or UNMATCHED for m in messages]


def id_record(e: dict[str, Any]) -> bytes:
    return orjson.dumps(e)


def raw_record(e: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in e.items() if k != "event_id"})


def partitions_of(events: Sequence[dict[str, Any]], partitions: int) -> list[tuple[int, int]]:
    """Each event's (partition, offset), spread by session id as a keyed topic spreads them."""
    offsets = [0] * partitions
    out: list[tuple[int, int]] = []
    for e in events:
        p = zlib.crc32(e["session_id"].encode()) % partitions
        out.append((p, offsets[p]))
        offsets[p] += 1
    return out


def decode_ids(values: Sequence[bytes], where: Sequence[tuple[int, int]]) -> list[Record]:
    out: list[Record] = []
    for v, (p, offset) in zip(values, where, strict=True):
        ts, sid, eid, _message, attrs = decode_fields(v)
        assert eid is not None  # the event-id stream names every event
        out.append((ts, sid, eid, p, offset, label_of(attrs) if attrs else None))
    return out


def decode_and_match(
    values: Sequence[bytes], where: Sequence[tuple[int, int]], matcher: TemplateMatcher | None
) -> list[Record]:
    """Raw records to sessionizer records as serve's consume loop makes them (`decode_fields`,
    then `event_id_for`); without a matcher the message stands in for the id (decoding
    alone)."""
    out: list[Record] = []
    for v, (p, offset) in zip(values, where, strict=True):
        ts, sid, eid, msg, attrs = decode_fields(v)
        assert msg is not None
        if eid is None:
            eid = msg if matcher is None else event_id_for(None, msg, ts, matcher)
        out.append((ts, sid, eid, p, offset, label_of(attrs) if attrs else None))
    return out


def under_serve_gc(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    return lambda: with_serve_gc(fn)


def in_process(stream: Stream, partitions: int, repeats: int) -> dict[str, Any]:
    events = stream.events
    where = partitions_of(events, partitions)
    ids_values = [id_record(e) for e in events]
    raw_values = [raw_record(e) for e in events]
    messages = [e["message"] for e in events]
    stamps = [e["ts"] for e in events]
    records = decode_ids(ids_values, where)
    settings = SessionizerSettings(gap_ms=stream.gap_ms, max_duration_ms=stream.max_duration_ms)
    fresh = stream.templates

    def sessionize(recs: Sequence[Record]) -> dict[str, Any]:
        return run_sessionizer(recs, settings, partitions)

    def match() -> dict[str, Any]:
        matcher = TemplateMatcher(fresh)
        return {"ids": [matcher.id_of(m, ts) for m, ts in zip(messages, stamps, strict=True)]}

    def mask() -> dict[str, Any]:
        masked = Masker(fresh.params.mask_rules).mask
        return {"ids": [masked(m) for m in messages]}

    plain: dict[str, Callable[[], dict[str, Any]]] = {
        "ids_path": lambda: sessionize(decode_ids(ids_values, where)),
        "raw_path": lambda: sessionize(decode_and_match(raw_values, where, TemplateMatcher(fresh))),
        "match": match,
        "mask": mask,
        "decode_ids": lambda: {"n": len(decode_ids(ids_values, where))},
        "decode_raw": lambda: {"n": len(decode_and_match(raw_values, where, None))},
        "sessionizer": lambda: sessionize(records),
    }
    # Every variant runs under serve's GC thresholds, on input frozen out of the GC's sight
    # (bench/stream_throughput.py says why).
    variants = {name: under_serve_gc(fn) for name, fn in plain.items()}
    gc.collect()
    gc.freeze()
    try:
        best = timed(variants, repeats)
    finally:
        gc.unfreeze()
    n = len(events)
    results = {
        name: {
            "cpu_seconds": round(cpu, 4),
            "wall_seconds": round(wall, 4),
            "events_per_cpu_s": round(n / cpu),
            "us_per_event_cpu": round(cpu / n * 1e6, 3),
        }
        for name, (cpu, wall, _) in best.items()
    }
    # The paths must agree: the raw path's windows are the ids path's.
    same = [w.window_id for w in best["raw_path"][2]["windows"]] == [
        w.window_id for w in best["ids_path"][2]["windows"]
    ]
    mean_bytes = {
        "event_id_record": round(sum(map(len, ids_values)) / n, 1),
        "raw_record": round(sum(map(len, raw_values)) / n, 1),
        "message": round(sum(map(len, messages)) / n, 1),
    }
    return {
        "stream": stream.name,
        "events": n,
        "sessions": len({e["session_id"] for e in events}),
        "templates": len(stream.templates.templates),
        "mined_from_sessions": len(stream.training_sessions),
        "unmatched_lines": stream.unmatched,
        "grouping_accuracy_vs_given_ids": stream.grouping_accuracy,
        "mean_bytes": mean_bytes,
        "partitions": partitions,
        "repeats": repeats,
        "serve_gc_threshold_0": GC_THRESHOLD_0,
        "results": results,
        "raw_path_vs_ids_path": round(
            results["raw_path"]["events_per_cpu_s"] / results["ids_path"]["events_per_cpu_s"], 3
        ),
        "windows_match": same,
        "windows": len(best["ids_path"][2]["windows"]),
    }


def train_with_templates(stream: Stream, work: Path) -> Path:
    """A tiny bundle from `logad train` on the mined half's sessions, with the mined
    templates.json beside the daily files (as `logad parse` leaves them). How well it
    learned does not change what a drain costs."""
    from bench.quality_hdfs import parser as quality_parser
    from bench.quality_hdfs import train_bundle
    from bench.raw_hdfs import write_days
    from schemas.sessions import Session
    from schemas.templates import write_templates

    train = set(stream.training_sessions)
    acc: dict[str, list[dict[str, Any]]] = {}
    for e in stream.events:
        if e["session_id"] in train:
            acc.setdefault(e["session_id"], []).append(e)
    sessions = [
        Session(sid, tuple(x["event_id"] for x in evs), evs[0]["ts"], evs[-1]["ts"])
        for sid, evs in acc.items()
    ]
    days = work / "days"
    write_days(days, sessions)
    write_templates(days / TEMPLATES, stream.templates)
    recipe = quality_parser().parse_args(["--out", str(work), "--epochs", "1"])
    bundle = work / "bundle"
    train_bundle(days, bundle, recipe, end_marker=True)
    return bundle


def serve_drains(a: argparse.Namespace, stream: Stream, bundle: Path, work: Path) -> dict[str, Any]:
    from bench.stream_e2e import drain_serve, read_topic
    from stream.devtools import broker

    ids_msgs = [(e["session_id"].encode(), id_record(e)) for e in stream.events]
    raw_msgs = [(e["session_id"].encode(), raw_record(e)) for e in stream.events]
    if a.aa:
        raw_msgs = ids_msgs
    sessions = {e["session_id"] for e in stream.events}
    expected: dict[str, int] = {}
    for e in stream.events:
        expected[e["session_id"]] = expected.get(e["session_id"], 0) + 1
    config = {
        "model": str(bundle),
        "gap_ms": stream.gap_ms,
        "max_duration_ms": stream.max_duration_ms,
        "idle_timeout_ms": a.idle_timeout_ms,
        "max_batch_tokens": 16384,
        "device": "cpu",
        "score_cache_size": a.cache_size,
        "score_threads": 0,
    }
    info = broker.start(port=broker.free_port(), data_dir=work / "kafka", timeout_s=90)
    rounds: list[dict[str, Any]] = []
    try:
        config["bootstrap"] = info.bootstrap
        # A warm-up drain of the event-id records, not counted: the first drain on a fresh
        # broker ran slower than any later one (cold caches). Its windows are the reference.
        warm = drain_serve(info.bootstrap, work, "warmup", config, ids_msgs, sessions, a.partitions)
        say(f"warm-up drain (not counted): {warm['events_per_s']} events/s")
        values, _ = asyncio.run(read_topic(info.bootstrap, "warmup.in.scores"))
        first = window_scores(values)
        for r in range(a.rounds):
            order = [("ids", ids_msgs), ("raw", raw_msgs)]
            row: dict[str, Any] = {"round": r, "first": order[r % 2][0]}
            for kind, msgs in order if r % 2 == 0 else order[::-1]:
                name = f"{kind}{r}"
                row[kind] = drain_serve(
                    info.bootstrap, work, name, config, msgs, sessions, a.partitions
                )
                values, _ = asyncio.run(read_topic(info.bootstrap, f"{name}.in.scores"))
                got = window_scores(values)
                d = row[kind]
                d["every_event_scored"] = events_scored(got) == expected
                d["vs_first_drain"] = compare_windows(first, got)
                # Events over first consumed -> last consumed (serve's /metrics polled every
                # 250 ms): the consume phase alone, without the drain's fixed tail.
                d["consume_events_per_s"] = round(d["events"] / (d["seconds"] - d["tail_s"]))
                say(f"round {r} {kind}: {row[kind]}")
            row["raw_vs_ids"] = round(row["raw"]["events_per_s"] / row["ids"]["events_per_s"], 3)
            rounds.append(row)
    finally:
        broker.stop(data_dir=work / "kafka")
        shutil.rmtree(work / "kafka", ignore_errors=True)
    drains = [row[k] for row in rounds for k in ("ids", "raw")]
    consume = {
        k: statistics.median(r[k]["consume_events_per_s"] for r in rounds) for k in ("ids", "raw")
    }
    ids_rate = statistics.median(r["ids"]["events_per_s"] for r in rounds)
    raw_rate = statistics.median(r["raw"]["events_per_s"] for r in rounds)
    return {
        "config": {k: v for k, v in config.items() if k not in ("bootstrap", "model")},
        "warmup_drain": warm,
        "rounds": rounds,
        "median_events_per_s": {"ids": ids_rate, "raw": raw_rate},
        "raw_vs_ids": round(raw_rate / ids_rate, 3),
        "raw_vs_ids_by_round": [r["raw_vs_ids"] for r in rounds],
        "median_consume_events_per_s": consume,
        "consume_raw_vs_ids": round(consume["raw"] / consume["ids"], 3),
        # Every drain must score every event of every session, and give a window cut as
        # the first drain cut it the same score up to float rounding (SCORE_TOLERANCE): the
        # raw path must map each line to the id its event-id record carries.
        "scores_agree": all(
            d["every_event_scored"]
            and d["vs_first_drain"]["max_abs_score_difference"] <= SCORE_TOLERANCE
            for d in drains
        ),
    }


def compare_windows(first: dict[str, WindowScore], got: dict[str, WindowScore]) -> dict[str, Any]:
    """A drain's windows against the first (warm-up) drain's. Where the two cut a session alike
    (the same window id: the same events), the scores must agree; where a partition fell
    quiet for the idle timeout mid-drain, serve flushed its sessions and the cuts differ,
    even between two drains of the same records."""
    both = first.keys() & got.keys()
    return {
        "common_windows": len(both),
        "only_in_first": len(first.keys() - got.keys()),
        "only_in_this": len(got.keys() - first.keys()),
        "max_abs_score_difference": max((abs(got[k][2] - first[k][2]) for k in both), default=0.0),
    }


def events_scored(windows: dict[str, WindowScore]) -> dict[str, int]:
    """Events per session over its scored windows."""
    out: dict[str, int] = {}
    for sid, n, _ in windows.values():
        out[sid] = out.get(sid, 0) + n
    return out


WindowScore = tuple[str, int, float]
"""A scored window's session id, its number of events and its score."""


def window_scores(values: Sequence[bytes]) -> dict[str, WindowScore]:
    """Window id -> (session id, events, score), of a scores topic's values."""
    out: dict[str, WindowScore] = {}
    for v in values:
        s = orjson.loads(v)
        out[s["window_id"]] = (s["session_id"], s["n_events"], s["score"])
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--traffic",
        choices=["hdfs", "simulated", "both"],
        default=None,
        help="the stream (default: both in-process, hdfs with --serve)",
    )
    p.add_argument(
        "--events-file",
        type=Path,
        default=DATA / "dev_events.jsonl.gz",
        help="the HDFS stream (default: data/hdfs/dev_events.jsonl.gz)",
    )
    p.add_argument("--events", type=int, default=200_000, help="simulated events (default: 200000)")
    p.add_argument("--seed", type=int, default=0, help="simulated traffic seed (default: 0)")
    p.add_argument("--partitions", type=int, default=4, help="input partitions (default: 4)")
    p.add_argument("--repeats", type=int, default=3, help="in-process rounds (default: 3)")
    p.add_argument("--serve", action="store_true", help="serve drains instead (needs Kafka)")
    p.add_argument(
        "--model",
        type=Path,
        help="--serve: a bundle with templates.json (default: train a tiny one)",
    )
    p.add_argument(
        "--copies",
        type=int,
        default=3,
        help="--serve: runs of the stream one after another in the backlog (default: 3)",
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="--serve: rounds of two drains (default: 3)"
    )
    p.add_argument(
        "--aa",
        action="store_true",
        help="--serve: drain the event-id backlog in both slots (plumbing check, noise floor)",
    )
    p.add_argument(
        "--idle-timeout-ms",
        type=int,
        default=500,
        help="--serve: serve's idle flush (default: 500)",
    )
    p.add_argument(
        "--cache-size", type=int, default=100_000, help="--serve: score cache (default: 100000)"
    )
    p.add_argument("--results", type=Path, help="results JSON (default: bench/results/...)")
    return p


def load_events(kind: str, a: argparse.Namespace) -> list[dict[str, Any]]:
    return hdfs_events(a.events_file) if kind == "hdfs" else simulated_events(a.events, a.seed)


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    configure_logging("warning", None)
    if a.serve:
        return main_serve(a)
    kinds = ["hdfs", "simulated"] if a.traffic in (None, "both") else [a.traffic]
    streams: dict[str, Any] = {}
    for kind in kinds:
        t0 = time.perf_counter()
        stream = build_stream(kind, load_events(kind, a), None)
        say(f"{kind}: {len(stream.events)} events, {len(stream.templates.templates)} templates "
            f"({time.perf_counter() - t0:.1f} s to load, mine and match); timing ...")  # fmt: skip
        streams[kind] = in_process(stream, a.partitions, a.repeats)
    report = {
        **report_header("stream_raw"),
        "mode": "in-process",
        "streams": streams,
        "target_serve_drain_raw_vs_ids": TARGET_RAW_VS_IDS,
    }
    path = write_result("stream_raw", report, path=a.results)
    say("")
    say(f"{'stream':<10}{'variant':<13}{'events/CPU-s':>14}{'us/event':>10}")
    for k, s in streams.items():
        for name, r in s["results"].items():
            say(f"{k:<10}{name:<13}{r['events_per_cpu_s']:>14}{r['us_per_event_cpu']:>10}")
        say(f"{k:<10}raw path / ids path: {s['raw_path_vs_ids_path']} "
            f"(windows match: {s['windows_match']})")  # fmt: skip
    say(f"wrote {path}")
    return 0


def main_serve(a: argparse.Namespace) -> int:
    kind = a.traffic if a.traffic not in (None, "both") else "hdfs"
    work = Path(tempfile.mkdtemp(prefix="logad-bench-raw-"))
    try:
        events = load_events(kind, a)
        given = None
        if a.model is not None and (a.model / TEMPLATES).is_file():
            given = read_templates(a.model / TEMPLATES)  # the ids the bundle's vocab holds
        elif a.model is not None and not a.aa:
            raise SystemExit(f"{a.model} holds no {TEMPLATES}: raw serve cannot map its lines")
        stream = build_stream(kind, events, given)
        bundle = a.model or train_with_templates(stream, work / "model")
        stream = dataclasses.replace(
            stream, events=repeated(stream.events, a.copies, stream.gap_ms)
        )
        if not a.aa and not (bundle / TEMPLATES).is_file():
            raise SystemExit(
                f"logad train wrote no {TEMPLATES} into {shown_path(bundle)}: serve's raw-event "
                "support is not in this tree (run with --aa to check the plumbing)"
            )
        say(f"{kind}: {len(stream.events)} events, {len(stream.templates.templates)} templates, "
            f"{stream.unmatched} unmatched; draining ...")  # fmt: skip
        drains = serve_drains(a, stream, bundle, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        **report_header("stream_raw"),
        "mode": "serve (A/A: event ids in both slots)" if a.aa else "serve",
        "stream": kind,
        "events": len(stream.events),
        "copies": a.copies,
        "templates": len(stream.templates.templates),
        "unmatched_lines": stream.unmatched * a.copies,
        "model": "tiny, trained on the spot" if a.model is None else shown_path(a.model),
        "drains": drains,
        "target_raw_vs_ids": TARGET_RAW_VS_IDS,
        "target_met": None
        if a.aa
        else drains["raw_vs_ids"] >= TARGET_RAW_VS_IDS and drains["scores_agree"],
    }
    name = "stream_raw-serve-aa" if a.aa else "stream_raw-serve"
    path = write_result(name, report, path=a.results)
    say(
        f"raw / ids by round: {drains['raw_vs_ids_by_round']}; median {drains['raw_vs_ids']}; "
        f"consume phase {drains['consume_raw_vs_ids']}; scores agree: {drains['scores_agree']}"
    )
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
