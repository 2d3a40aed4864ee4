"""What every benchmark records about the machine it ran on, so results can be compared, and
where it writes its result: one stable file per bench in bench/results/, listed in
bench/results/index.json."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other jobs on the machine slow CPU timings; the 1-minute load says how much.
        "load_avg_1m": os.getloadavg()[0],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    torch = sys.modules.get("torch")  # only benches that use torch pay for importing it
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def report_header(name: str, key: str = "bench") -> dict[str, Any]:
    """The first fields of every bench's results JSON: its name (under `key`), when, and on
    what machine."""
    return {
        key: name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }


REPO = Path(__file__).resolve().parents[1]


def shown_path(path: Path) -> str:
    """`path` as results should record it: relative to the repository, so a results file
    names no one machine's directories. Tried as given (made absolute) first, then with
    links resolved."""
    for p in (Path(os.path.abspath(path)), Path(path).resolve()):
        if p.is_relative_to(REPO):
            return str(p.relative_to(REPO))
    return str(Path(path).resolve())


RESULTS = REPO / "bench" / "results"
INDEX = "index.json"
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
RESULTS_DIR_ENV = "BENCH_RESULTS_DIR"
"""Environment variable that moves where results go (bench/gpu_check.sh collects a lent
machine's results in its own folder, leaving the checkout's current results alone)."""


def results_dir() -> Path:
    """Where a bench writes its result by default: $BENCH_RESULTS_DIR, else bench/results/."""
    return Path(os.environ.get(RESULTS_DIR_ENV) or RESULTS)


def machine_line(info: Mapping[str, Any]) -> str:
    """The machine of a result in a few words: its GPU when it used one, else its CPU."""
    cores = info.get("cpu_count")
    cpus = f", {cores} CPUs" if cores else ""
    gpu = info.get("gpu") or str(info.get("nvidia_smi", "")).split(",")[0].strip()
    if gpu:
        return f"{gpu}{cpus}"
    return f"{info.get('cpu', 'unknown CPU')}{cpus}"


def invocation(argv: Sequence[str] | None = None) -> str:
    """The command line that ran this bench, as typed from the repository root: the module
    rather than its file, and paths inside the repository relative to it."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        return ""
    prog = shown_path(Path(args[0]))
    if prog.endswith(".py") and not prog.startswith("/"):
        head = [".venv/bin/python", "-m", prog.removesuffix(".py").replace("/", ".")]
    else:
        head = [prog]
    rest = [shown_path(Path(a)) if a.startswith("/") else a for a in args[1:]]
    return shlex.join(head + rest)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def summary_of(payload: Mapping[str, Any]) -> str:
    """One line saying what a result found, for the index. Each bench's own fields; a bench
    this does not know gets its name."""
    kind = str(payload.get("bench") or payload.get("benchmark") or "")
    try:
        summarize = _SUMMARIES[kind]
    except KeyError:
        return kind
    try:
        return summarize(payload)
    except (KeyError, TypeError, IndexError, ValueError, StopIteration):
        return kind  # a partial result (a run cut short) still gets an entry


def _quality_hdfs(p: Mapping[str, Any]) -> str:
    name = p["default_strategy"]["name"]
    r = next(s for s in p["strategies"] if s["name"] == name)
    dl = _first(p.get("deeplog", {}).get("rows")) or {}
    tail = f"; DeepLog-style baseline F1 {dl['f1']}" if "f1" in dl else ""
    return (
        f"HDFS dev, the bundle's strategy ({name}): F1 {r['f1']}, AUROC {r['auroc']}, "
        f"FPR {r['fpr']:.3%}{tail}"
    )


def _quality_sweep(p: Mapping[str, Any]) -> str:
    row = p.get("default_strategy_row", "default strategy")
    parts = [
        f"{s['preset']} lr {s['lr']:g}: mean F1 {s['f1_mean']} over seeds "
        + "/".join(str(k) for k in s["f1_by_seed"])
        for s in p["summary"]
    ]
    return f"{p['config']['device']}, {row}: " + "; ".join(parts)


def _replay_hdfs(p: Mapping[str, Any]) -> str:
    r = p["rows"][0]
    cmp = p["replay_vs_session_file"]
    return (
        f"replay of {p['stream_blocks']} HDFS blocks: F1 {r['f1']} in {r['seconds']} s; "
        f"{cmp['blocks_flagged_differently']} blocks flagged differently from session files"
    )


def _score_throughput(p: Mapping[str, Any]) -> str:
    c, r = p["config"], p["results"]["batched_masked_head"]
    return (
        f"{c['preset']} on {c['device']}, k={c['groups']}: {r['windows_per_s']} windows/s, "
        f"{r['events_per_s']} events/s"
    )


def _stream_e2e(p: Mapping[str, Any]) -> str:
    d = p["results"]["drain"]
    return (
        f"drain of {p['config']['drain_events']} events: serve {d['serve']['events_per_s']}/s, "
        f"pass-through {d['passthrough']['events_per_s']}/s, "
        f"consume-only {d['consume_only']['events_per_s']}/s"
    )


def _stream_throughput(p: Mapping[str, Any]) -> str:
    s = p["sessionizer"]
    return (
        f"sessionizer: {s['results']['sessionizer']['events_per_cpu_s']} events per CPU-second "
        f"({s['config']['events']} events)"
    )


def _train_throughput(p: Mapping[str, Any]) -> str:
    r = p["bucketed_masked_head"]
    mfu = f", MFU {r['mfu']:.1%}" if r.get("mfu") else ""
    return f"{p['preset']} on {p['device']}: {r['non_pad_tokens_per_s']:.0f} non-pad tokens/s{mfu}"


def _model_process(p: Mapping[str, Any]) -> str:
    c = p["config"]
    return (
        f"{c['preset']} on {c['device']}: beside a busy loop, the thread takes "
        f"{p['process_vs_thread_beside_busy_loop']}x the child process's time"
    )


def _raw_hdfs(p: Mapping[str, Any]) -> str:
    head = next(e for e in p["evaluations"] if e["threshold"] == p["headline_threshold"])
    m = p["mining"]
    return (
        f"HDFS stream, test half, {head['threshold']}: F1 mined {head['mined']['f1']} vs given "
        f"{head['given']['f1']} (diff {p['f1_mined_minus_given']:+.4f}); "
        f"{m['templates_mined']} templates mined, GA {m['grouping_accuracy_train_lines']}, "
        f"{m['unmatched_test_lines']} unmatched test lines"
    )


def _stream_raw(p: Mapping[str, Any]) -> str:
    if "drains" in p:
        d = p["drains"]
        med = d["median_events_per_s"]
        aa = ", A/A" if "A/A" in p["mode"] else ""
        return (
            f"{p['stream']}, serve drain: raw {med['raw']}/s vs event ids {med['ids']}/s "
            f"({d['raw_vs_ids']}x{aa})"
        )
    return "; ".join(
        f"{k}: raw path {s['results']['raw_path']['events_per_cpu_s']}/CPU-s vs ids path "
        f"{s['results']['ids_path']['events_per_cpu_s']} ({s['raw_path_vs_ids_path']}x), "
        f"match {s['results']['match']['events_per_cpu_s']}/CPU-s"
        for k, s in p["streams"].items()
    )


def _gpu_check(p: Mapping[str, Any]) -> str:
    return "steps: " + ", ".join(f"{s['step']} rc={s['rc']}" for s in p["steps"])


def _parse_loghub(p: Mapping[str, Any]) -> str:
    ours, theirs = p["summary"]["logad"], p["summary"]["drain3"]
    return (
        f"grouping accuracy on Loghub-2k: logad mean {ours['mean_ga']:.4f} "
        f"(min {ours['min_ga']:.4f}), Drain3 mean {theirs['mean_ga']:.4f} "
        f"(min {theirs['min_ga']:.4f})"
    )


def _soak_loop(p: Mapping[str, Any]) -> str:
    v, c = p["verdict"], p["config"]
    nights = ", ".join(f"{k} {n}" for k, n in sorted(p["nights"].items()))
    return (
        f"{c['days']} days, drift on day {c['drift_day']}: FA/1000 pre-drift "
        f"{v['pre_drift_fa_per_1000']}, peak {v['peak_fa_per_1000']}, back by day "
        f"{v['deadline_day']}: {v['fa_recovered_by_deadline']}; recall "
        f"{v['pre_drift_recall']} -> {v['post_drift_recall']}; nights: {nights}; "
        f"target {'met' if v['target_met'] else 'not met'}"
    )


def _window_filter(p: Mapping[str, Any]) -> str:
    def leaked(r: Mapping[str, Any]) -> str:
        n = r.get("anomalies_in_training")
        return "" if n is None else f" ({n:.0f} leaked)"

    seeds = "/".join(str(s) for s in p["config"]["seeds"])
    rows = "; ".join(f"{r['filter']} recall {r['recall']}{leaked(r)}" for r in p["summary"])
    return f"candidate recall by training-window filter, mean over seeds {seeds}: {rows}"


def _quality_trainticket(p: Mapping[str, Any]) -> str:
    parts = [
        f"{m['method']} {m['detected']}/{m['incidents']} at {m['false_alerts_per_1000']}"
        for m in p["methods"]
    ]
    hdfs = p.get("hdfs")
    tail = f"; HDFS dev F1 {hdfs['f1']}" if isinstance(hdfs, Mapping) else ""
    config = p.get("config", {})
    train_on = config.get("train_on")
    # Results from before --train-on counted every trace in no incident on its service.
    normal = "held-out normal traces" if train_on == "outside-incidents" else "normal traces"
    trained = f" (trained {train_on})" if train_on else ""
    return (
        f"TrainTicket incidents detected at false alarms per 1,000 {normal}{trained}: "
        + "; ".join(parts)
        + tail
    )


def _thresholds_hdfs(p: Mapping[str, Any]) -> str:
    def mean(method: str) -> float:
        return next(
            float(r["exceedances_per_1000"]["mean"])
            for r in p["rows"]
            if r["budget_per_1000"] == 1.0
            and r["calibration_windows"] == 200
            and r["method"] == method
        )

    return (
        f"budget 1/1000, 200 calibration windows: exceedances per 1,000 held-out normal "
        f"sessions, quantile {mean('quantile')} vs POT {mean('pot')} (mean of {p['draws']} draws)"
    )


def _time_aware_hdfs(p: Mapping[str, Any]) -> str:
    def f1(rules: str, way: str) -> str:
        f = p["summary"][rules][way]["f1"]
        return f"{f['mean']} ({f['min']}..{f['max']})"

    return (
        f"HDFS test half, {len(p['config']['seeds'])} seeds, F1 mean (min..max): as shipped, "
        f"time-blind {f1('shipped', 'blind')}, time-aware {f1('shipped', 'time')}; without "
        f"known ends {f1('no known ends', 'blind')} and {f1('no known ends', 'time')}"
    )


_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "parse_loghub": _parse_loghub,
    "soak_loop": _soak_loop,
    "quality_hdfs": _quality_hdfs,
    "quality_sweep": _quality_sweep,
    "quality_trainticket": _quality_trainticket,
    "replay_hdfs": _replay_hdfs,
    "score_throughput": _score_throughput,
    "stream_e2e": _stream_e2e,
    "stream_throughput": _stream_throughput,
    "thresholds_hdfs": _thresholds_hdfs,
    "time_aware_hdfs": _time_aware_hdfs,
    "train_throughput": _train_throughput,
    "model_process": _model_process,
    "gpu_check": _gpu_check,
    "raw_hdfs": _raw_hdfs,
    "stream_raw": _stream_raw,
    "window_filter": _window_filter,
}


def index_entry(
    file: str, payload: Mapping[str, Any], *, command: str, summary: str | None = None
) -> dict[str, str]:
    """What the index says about one result file."""
    info = payload.get("machine")
    return {
        "file": file,
        "date": str(payload.get("date", "")),
        "machine": machine_line(info) if isinstance(info, Mapping) else "",
        "summary": summary_of(payload) if summary is None else summary,
        "command": command,
    }


def read_index(directory: Path) -> dict[str, dict[str, str]]:
    """The index of `directory` (bench name -> entry); empty when there is none yet."""
    try:
        data = orjson.loads((directory / INDEX).read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{directory / INDEX}: not a JSON object")
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    # Written aside and renamed, so that a bench killed mid-write leaves the old file whole.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def update_index(directory: Path, name: str, entry: Mapping[str, str]) -> Path:
    """Set `name`'s entry in `directory`'s index, keeping every other entry."""
    index = read_index(directory)
    index[name] = dict(entry)
    path = directory / INDEX
    _write_atomic(path, orjson.dumps(index, option=_JSON | orjson.OPT_SORT_KEYS) + b"\n")
    return path


def write_result(
    name: str,
    payload: Mapping[str, Any],
    *,
    path: Path | None = None,
    command: str | None = None,
    summary: str | None = None,
) -> Path:
    """Write a bench's result to `<results>/<name>.json` and record it in the index beside
    it (`index.json`: bench name -> file, date, machine, summary, command).

    One stable file per bench and variant, so `bench/results/` holds the current result of
    each and git keeps the earlier ones. `path` writes elsewhere (a bench's --out), indexed
    in that folder under the file's own name. A payload without `date` and `machine` (from
    `report_header`) gets them here.
    """
    if path is None:
        if not name or "/" in name or name.startswith(".") or name == Path(INDEX).stem:
            raise ValueError(f"bad result name {name!r}")
        path = results_dir() / f"{name}.json"
    elif path.name == INDEX:
        raise ValueError(f"{path}: the index is not a result")
    else:
        name = path.stem
    header = report_header(name)
    doc = {k: v for k, v in header.items() if k != "bench" and k not in payload} | dict(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, orjson.dumps(doc, option=_JSON) + b"\n")
    entry = index_entry(
        path.name, doc, command=invocation() if command is None else command, summary=summary
    )
    update_index(path.parent, name, entry)
    return path
