"""Stream throughput: events/s through the sessionizer, against a baseline in the same run.

    .venv/bin/python -m bench.stream_throughput
    .venv/bin/python -m bench.stream_throughput --sessions 100000 --interval-ms 1

The input is simulated Spring Cloud traffic (`stream.devtools.simulate`): sessions arrive every
--interval-ms of event time and are spread over --partitions partitions by session id, the
way a keyed Kafka topic spreads them. With the default 30 s gap, about 30 000/interval
sessions are open at any time. Messages are dropped from the events (the sessionizer never
reads them); generating it is not timed, and it is frozen out of
the cyclic GC's sight (`gc.freeze`), as a consumer's short-lived records would be.

Variants, on the same events:

- sessionizer: `Sessionizer.add_fields` per event (event time, session id, event id,
  partition, offset and label: what `logad serve` decodes each message to and passes),
  `advance` and `min_open_offset` of every partition each 1000 events, `flush_all` at
  the end: gap expiry, 510-event split, duration limit, open-session bound and the
  low-water offsets all live. Under CPython's default GC thresholds.
- sessionizer_serve_gc: the same, under the GC thresholds `logad serve` sets once its
  model is loaded (`trainer.gc_tuning.tune_gc`: young collections every `GC_THRESHOLD_0`
  allocations instead of 700). This is the figure that applies to the sessionizer inside
  serve.
- dict_of_lists: the naive floor: append each event to a dict of lists keyed by
  (partition, session), then sort, split and build the windows at the end. No expiry, no
  bounds, unbounded memory. Its windows are checked against the sessionizer's
  (`windows_match`: none of the simulated sessions has an internal 30 s gap).

Throughput is per CPU second of this process (`time.process_time`), the "per core" figure;
wall-clock seconds are reported too, with the load average, since other jobs share the CPU.
Writes bench/results/stream_throughput.json and its entry in bench/results/index.json.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bench.machine import report_header, write_result
from schemas.runtime.console import out as say
from schemas.runtime.logs import configure_logging
from schemas.windows import Window, split_points
from stream.devtools.simulate import generate_sessions, interleave
from stream.serve.sessionizer import Sessionizer, SessionizerSettings
from trainer.gc_tuning import GC_THRESHOLD_0

T0 = 1_700_000_000_000

# (ts, session_id, event_id, partition, offset, label)
Record = tuple[int, str, str, int, int, int | None]


def simulated_records(
    sessions: int, partitions: int, interval_ms: float, anomaly_rate: float, seed: int
) -> list[Record]:
    """Simulated events in event-time order, with Kafka-like partitions and offsets."""
    rng = random.Random(seed)
    offsets = [0] * partitions
    out: list[Record] = []
    for e in interleave(generate_sessions(rng, sessions, T0, interval_ms, anomaly_rate)):
        p = zlib.crc32(e.session_id.encode()) % partitions
        assert e.event_id is not None  # simulated events carry their template ids
        out.append((e.ts, e.session_id, e.event_id, p, offsets[p], e.attrs.get("label")))
        offsets[p] += 1
    return out


def run_sessionizer(
    records: Sequence[Record], settings: SessionizerSettings, partitions: int
) -> dict[str, Any]:
    sz = Sessionizer(settings)
    windows: list[Window] = []
    peak_open = 0
    add = sz.add_fields
    for i, (ts, sid, eid, p, offset, label) in enumerate(records):
        add(windows, ts, sid, eid, p, offset, ts, label)
        if i % 1000 == 999:  # what `logad serve` does per tick and per commit
            windows += sz.advance(ts)
            for q in range(partitions):
                sz.min_open_offset(q)
            peak_open = max(peak_open, sz.open_sessions)
    windows += sz.flush_all()
    return {"windows": windows, "peak_open_sessions": peak_open}


def run_dict_of_lists(records: Sequence[Record], max_events: int) -> dict[str, Any]:
    groups: dict[tuple[int, str], list[tuple[int, int, str, int | None]]] = {}
    for ts, sid, eid, p, offset, label in records:
        key = (p, sid)
        g = groups.get(key)
        if g is None:
            g = groups[key] = []
        g.append((ts, offset, eid, label))
    windows = []
    for (p, sid), evs in groups.items():
        # Split in arrival order, as the sessionizer does, then order each window.
        for index, (a, b) in enumerate(split_points(len(evs), max_events)):
            part = sorted(evs[a:b])
            labels = [e[3] for e in part if e[3] is not None]
            windows.append(
                Window.build(
                    sid,
                    index,
                    tuple(e[2] for e in part),
                    part[0][0],
                    part[-1][0],
                    p,
                    min(e[1] for e in part),
                    max(e[1] for e in part),
                    label=max(labels) if labels else None,
                )
            )
    return {"windows": windows, "peak_open_sessions": len(groups)}


def with_serve_gc(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` under the GC thresholds `logad serve` runs with (the input is frozen
    already, as serve freezes its loaded state)."""
    old = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD_0, old[1], old[2])
    try:
        return fn()
    finally:
        gc.set_threshold(*old)


def timed(
    variants: dict[str, Callable[[], dict[str, Any]]], repeats: int
) -> dict[str, tuple[float, float, dict[str, Any]]]:
    """Best CPU and best wall seconds of each variant over `repeats` rounds. Rounds take
    the variants in turn, so a change in the machine's load hits all of them alike."""
    best: dict[str, tuple[float, float, dict[str, Any]]] = {}
    for _ in range(repeats):
        for name, fn in variants.items():
            c0, w0 = time.process_time(), time.perf_counter()
            result = fn()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            prev = best.get(name)
            best[name] = (
                min(cpu, prev[0]) if prev else cpu,
                min(wall, prev[1]) if prev else wall,
                result,
            )
    return best


def bench_sessionizer(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = simulated_records(
        args.sessions, args.partitions, args.interval_ms, args.anomaly_rate, args.seed
    )
    gen_s = time.perf_counter() - t0
    # The input stays alive for the whole run, which a consumer's records never do: keep
    # the cyclic GC from re-scanning it on every full collection.
    gc.collect()
    gc.freeze()
    settings = SessionizerSettings()
    variants: dict[str, Callable[[], dict[str, Any]]] = {
        "sessionizer": lambda: run_sessionizer(records, settings, args.partitions),
        "sessionizer_serve_gc": lambda: with_serve_gc(
            lambda: run_sessionizer(records, settings, args.partitions)
        ),
        "dict_of_lists": lambda: run_dict_of_lists(records, settings.max_events),
    }
    results: dict[str, dict[str, Any]] = {}
    ids: dict[str, set[str]] = {}
    for name, (cpu_s, wall_s, res) in timed(variants, args.repeats).items():
        ids[name] = {w.window_id for w in res["windows"]}
        results[name] = {
            "cpu_seconds": round(cpu_s, 4),
            "wall_seconds": round(wall_s, 4),
            "events_per_cpu_s": round(len(records) / cpu_s),
            "events_per_wall_s": round(len(records) / wall_s),
            "windows": len(res["windows"]),
            "peak_open_sessions": res["peak_open_sessions"],
        }
    gc.unfreeze()
    ours = results["sessionizer"]["cpu_seconds"]
    return {
        "config": {
            "sessions": args.sessions,
            "events": len(records),
            "partitions": args.partitions,
            "interval_ms": args.interval_ms,
            "anomaly_rate": args.anomaly_rate,
            "repeats": args.repeats,
            "seed": args.seed,
            "settings": vars(settings),
            "generate_seconds": round(gen_s, 2),
        },
        "results": results,
        # CPU time of each variant relative to the sessionizer's (below 1: cheaper).
        "cost_vs_sessionizer": {
            name: round(r["cpu_seconds"] / ours, 2)
            for name, r in results.items()
            if name != "sessionizer"
        },
        "windows_match": ids["sessionizer"] == ids["dict_of_lists"] == ids["sessionizer_serve_gc"],
        "serve_gc_threshold_0": GC_THRESHOLD_0,
        "target_events_per_cpu_s": 200_000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=30_000, help="sessions (default: 30000)")
    p.add_argument("--partitions", type=int, default=6, help="partitions (default: 6)")
    p.add_argument(
        "--interval-ms",
        type=float,
        default=2.0,
        help="mean event-time gap between session starts (default: 2.0)",
    )
    p.add_argument(
        "--anomaly-rate", type=float, default=0.05, help="anomalous sessions (default: 0.05)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: 0)")
    args = p.parse_args(argv)
    configure_logging("warning")

    report = {
        **report_header("stream_throughput"),
        "sessionizer": bench_sessionizer(args),
    }
    path = write_result("stream_throughput", report)
    say(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
