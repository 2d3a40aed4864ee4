"""Template mining on Loghub-2k: logad's miner against Drain3, grouping accuracy and speed.

For HDFS, BGL, Hadoop, Spark and Zookeeper (data/loghub_2k, the corrected ground truth),
both parsers get the `Content` column of `<S>_2k.log_structured_corrected.csv` (the message
after Loghub's own header parse), one line at a time, in file order:

- logad: `trainer.mining.TemplateMiner` with its default parameters, the same for every
  system (the parameters are recorded in the results);
- Drain3 0.9.11: depth 4, similarity 0.5, masking of IPs, hex and numbers (as
  data/README.md describes it), configured in memory with no persistence.

Grouping accuracy (GA, `trainer.mining.accuracy`) compares each parser's grouping with the
ground truth's EventId. Speed: each parser mines the 2,000 lines from scratch
`--repetitions` times (the two interleaved, so that other load on the machine hits both
alike); the median lines/s is reported, with every run's figure beside it.

Writes bench/results/parse_loghub.json.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from bench.machine import report_header, shown_path, write_result  # noqa: E402
from schemas.errors import DataError  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.runtime.logs import configure_logging  # noqa: E402
from trainer.mining import DEFAULT_PARAMS, TemplateMiner  # noqa: E402
from trainer.mining.accuracy import grouping_accuracy  # noqa: E402

DATA = ROOT / "data" / "loghub_2k"
SYSTEMS = ("HDFS", "BGL", "Hadoop", "Spark", "Zookeeper")
TARGET = {"mean_ga": 0.97, "min_ga": 0.95}

# Drain3's own example masks (drain3.ini in its repository): IPv4, 0x-hex, integers.
_B = r"((?<=[^A-Za-z0-9])|^)"
_E = r"((?=[^A-Za-z0-9])|$)"
DRAIN3_MASKS = (
    ("IP", _B + r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})" + _E),
    ("HEX", _B + r"(0x[a-f0-9A-F]+)" + _E),
    ("NUM", _B + r"([\-\+]?\d+)" + _E),
)
DRAIN3_CONFIG = {"depth": 4, "sim_th": 0.5, "masks": [name for name, _ in DRAIN3_MASKS]}

Parser = Callable[[Sequence[str]], list[Hashable]]


def read_system(system: str) -> tuple[list[str], list[str]]:
    """The Content column and the true EventId of each line."""
    path = DATA / system / f"{system}_2k.log_structured_corrected.csv"
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # The files have CRLF line endings; csv strips them, this makes sure of it.
    return [r["Content"].rstrip("\r") for r in rows], [r["EventId"] for r in rows]


def logad_parse(lines: Sequence[str]) -> list[Hashable]:
    miner = TemplateMiner(DEFAULT_PARAMS)
    return [miner.mine(line)[0] for line in lines]


def drain3_parse(lines: Sequence[str]) -> list[Hashable]:
    from drain3 import TemplateMiner as Drain3Miner  # type: ignore[import-untyped]
    from drain3.masking import MaskingInstruction  # type: ignore[import-untyped]
    from drain3.template_miner_config import (  # type: ignore[import-untyped]
        TemplateMinerConfig,
    )

    config = TemplateMinerConfig()  # in memory: no .ini file is read, nothing persisted
    config.drain_depth = DRAIN3_CONFIG["depth"]
    config.drain_sim_th = DRAIN3_CONFIG["sim_th"]
    config.masking_instructions = [MaskingInstruction(rx, name) for name, rx in DRAIN3_MASKS]
    miner = Drain3Miner(persistence_handler=None, config=config)
    return [miner.add_log_message(line)["cluster_id"] for line in lines]


def timed_runs(
    parsers: dict[str, Parser], lines: Sequence[str], repetitions: int
) -> dict[str, list[float]]:
    """Lines/s of each parser's full pass, the parsers taking turns in each repetition."""
    speeds: dict[str, list[float]] = {name: [] for name in parsers}
    for parse in parsers.values():
        parse(lines[:10])  # imports and first-call costs stay out of the timing
    for _ in range(repetitions):
        for name, parse in parsers.items():
            t0 = time.perf_counter()
            parse(lines)
            speeds[name].append(len(lines) / (time.perf_counter() - t0))
    return speeds


def run_system(system: str, parsers: dict[str, Parser], repetitions: int) -> dict[str, Any]:
    lines, truth = read_system(system)
    result: dict[str, Any] = {"lines": len(lines), "true_templates": len(set(truth))}
    speeds = timed_runs(parsers, lines, repetitions)
    for name, parse in parsers.items():
        predicted = parse(lines)
        result[name] = {
            "ga": round(grouping_accuracy(predicted, truth), 4),
            "templates": len(set(predicted)),
            "lines_per_s": round(statistics.median(speeds[name])),
            "lines_per_s_runs": [round(s) for s in speeds[name]],
        }
    return result


def summary(systems: dict[str, dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        gas = [systems[s][name]["ga"] for s in systems]
        out[name] = {"mean_ga": round(statistics.fmean(gas), 4), "min_ga": min(gas)}
    ours = out["logad"]
    faster = all(
        systems[s]["logad"]["lines_per_s"] >= systems[s]["drain3"]["lines_per_s"] for s in systems
    )
    out["target"] = {
        **TARGET,
        "met_ga": ours["mean_ga"] >= TARGET["mean_ga"] and ours["min_ga"] >= TARGET["min_ga"],
        "met_speed": faster,
    }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repetitions", type=int, default=7, help="timed passes (default: 7)")
    p.add_argument(
        "--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS, help="default: all"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: bench/results/parse_loghub.json, listed in the index)",
    )
    args = p.parse_args(argv)
    if args.repetitions < 1:
        p.error("--repetitions must be at least 1")
    configure_logging("warning")
    parsers: dict[str, Parser] = {"logad": logad_parse, "drain3": drain3_parse}
    systems = {s: run_system(s, parsers, args.repetitions) for s in args.systems}
    for s, r in systems.items():
        ours, theirs = r["logad"], r["drain3"]
        out(
            f"{s:<10} GA logad {ours['ga']:.4f} drain3 {theirs['ga']:.4f}   lines/s logad "
            f"{ours['lines_per_s']:,} drain3 {theirs['lines_per_s']:,}"
        )
    totals = summary(systems, list(parsers))
    out(
        f"mean GA logad {totals['logad']['mean_ga']:.4f} (min {totals['logad']['min_ga']:.4f}),"
        f" drain3 {totals['drain3']['mean_ga']:.4f} (min {totals['drain3']['min_ga']:.4f})"
    )
    params = DEFAULT_PARAMS
    report = {
        **report_header("parse_loghub", key="benchmark"),
        "input": "Content column of data/loghub_2k/<S>/<S>_2k.log_structured_corrected.csv",
        "data": shown_path(DATA),
        "repetitions": args.repetitions,
        "logad_params": {
            "depth": params.depth,
            "similarity": params.similarity,
            "max_children": params.max_children,
            "word_variants": params.word_variants,
            "mask_rules": [r.name for r in params.mask_rules],
        },
        "drain3_params": DRAIN3_CONFIG,
        "systems": systems,
        "summary": totals,
    }
    written = write_result("parse_loghub", report, path=args.out)
    out(f"wrote {shown_path(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
