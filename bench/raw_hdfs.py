"""Raw HDFS end to end (`make bench-raw-hdfs`): detection quality with template ids mined from
the raw message text, against the same pipeline on the given event ids.

On data/hdfs/dev_events.jsonl.gz (time-ordered single events, each with its raw `message`
and Loghub's `event_id`):

1. Group the events into sessions by block id (`session_id`), each in time order, and label
   each block: anomalous when it is in dev_abnormal.jsonl, normal when in dev_normal.jsonl or
   in train.jsonl (the stream holds a few training blocks; every training block is normal).
2. Split the blocks in two halves by a salted sha256 of the block id (`is_test_block`).
3. Two ways to name each line's event:
   - mined: a `TemplateMiner` with the default parameters (what `logad parse --format
     content` runs) mines the message text of every line of the training half, in stream
     order, anomalous blocks included (a parser does not know labels); the given event_id is
     not read. Test lines are matched (`TemplateMiner.match`) against that set and never
     mined: a test line no template matches gets `UNMATCHED`, an id no vocab holds, so the
     model sees it as unknown ([UNK]), which is what serve will do with such a line.
   - given: the given event_id of every line.
4. For each way: the training half's normal sessions as daily files; the real `logad train`
   with bench/quality_hdfs.py's recipe (its `train_bundle` and its defaults: tiny preset, 60
   epochs, lr, warm-up, batch tokens, p99.9 threshold on the trainer's validation slice of
   normal sessions, end marker); then `logad evaluate`'s API on the test half's normal and
   anomalous sessions at the bundle's calibrated threshold. No test label chooses anything.
   Precision and F1 are at the HDFS population ratio, as in quality_hdfs.

   On this half the validation slice (0.2, about 600 windows) holds two normal sessions
   with an event (E20) that no training session holds, so its p99.9, the maximum of under
   1,001 windows anyway, is the score of an unknown event; the trainer then takes the p99.9
   of the windows below that score (trainer/calibration.py), and a session with an unknown
   event alerts regardless.

   The epochs are quality_hdfs's, so each session is seen as often as in its recipe. The
   training half holds about 2,800 normal sessions, half of train.jsonl's 5,583: a run has
   about half the optimizer steps and half the training time (a few minutes on the 2-core
   CPU). Twice the epochs would match the step count, at twice the time (over half an hour
   a run on the shared CPU under load). Both ways train alike, which the comparison needs.

Reports F1, precision, recall, FPR, AUROC and AUPRC of both, F1(mined) - F1(given) against
the target (|difference| <= 0.01), templates mined vs given event ids, unmatched test lines,
test lines unknown to each model, the grouping accuracy of the mined ids against the given
ids on the training lines, and training and scoring times. Writes
bench/results/raw_hdfs.json; the work files (daily files, bundles) stay in bench/out/raw_hdfs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import shutil
import sys
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.hdfs_args import add_device_args, hdfs_parser  # noqa: E402
from bench.machine import report_header, shown_path, write_result  # noqa: E402
from schemas.daily_files import daily_file_name, read_sessions, write_sessions  # noqa: E402
from schemas.errors import DataError  # noqa: E402
from schemas.runtime.console import out  # noqa: E402
from schemas.sessions import Session  # noqa: E402
from schemas.vocab import Vocab  # noqa: E402
from trainer.mining import DEFAULT_PARAMS, TemplateMiner  # noqa: E402
from trainer.mining.accuracy import grouping_accuracy  # noqa: E402
from trainer.time_gaps import gaps_from_times  # noqa: E402

RESULTS_JSON = ROOT / "bench" / "results" / "raw_hdfs.json"
GIVEN_EVENT_IDS = 33
"""E1..E33 (data/hdfs/templates.csv)."""
SPLIT_SALT = b"logad-bench-raw-hdfs:"
"""Salts the split hash. The dev sample itself was drawn by an unsalted sha256 of the block
id: the low bit of the first digest byte is 0 for every one of the stream's 5,760 blocks, so
an unsalted "sha256 parity" would put every block in one half."""
UNMATCHED = "unmatched"
"""A test line no mined template matches. No vocab holds it, so it encodes to [UNK]."""
TARGET_F1_DIFFERENCE = 0.01
VARIANTS = ("mined", "given")


@dataclass(frozen=True, slots=True)
class Line:
    """One event of the stream."""

    ts: int
    """Epoch milliseconds."""
    session_id: str
    event_id: str
    """The given template id (E1..E33)."""
    message: str


def epoch_ms(text: str) -> int:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def read_events(path: Path) -> list[Line]:
    """Every event of an events file (JSON Lines, gzip or plain), in file order."""
    lines: list[Line] = []
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                e = orjson.loads(raw)
                ts = e["ts"]
                lines.append(
                    Line(
                        ts if isinstance(ts, int) else epoch_ms(ts),
                        str(e["session_id"]),
                        str(e["event_id"]),
                        str(e["message"]),
                    )
                )
    return lines


def group_sessions(lines: Sequence[Line]) -> dict[str, list[int]]:
    """Each session's lines (indices into `lines`) in time order, ties in file order;
    sessions in order of first appearance."""
    acc: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        acc.setdefault(line.session_id, []).append(i)
    return {sid: sorted(idx, key=lambda i: (lines[i].ts, i)) for sid, idx in acc.items()}


def is_test_block(block_id: str) -> bool:
    """The block's half: the parity of the first byte of a salted sha256 of its id."""
    return bool(hashlib.sha256(SPLIT_SALT + block_id.encode()).digest()[0] & 1)


def split_blocks(block_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """(training half, test half), each in the given order."""
    train: list[str] = []
    test: list[str] = []
    for b in block_ids:
        (test if is_test_block(b) else train).append(b)
    return train, test


def label_blocks(
    block_ids: Iterable[str], dev_labels: Mapping[str, int], train_ids: Iterable[str]
) -> dict[str, int]:
    """1 for a block dev_abnormal holds, 0 for one dev_normal holds (`dev_labels`, as
    `stream.jobs.replay.read_labels` reads them) or a training block (train.jsonl holds
    normal blocks only). A block in none of them has no label: an error."""
    normal_train = set(train_ids)
    labels: dict[str, int] = {}
    missing: list[str] = []
    for b in block_ids:
        if b in dev_labels:
            labels[b] = dev_labels[b]
        elif b in normal_train:
            labels[b] = 0
        else:
            missing.append(b)
    if missing:
        raise DataError(f"{len(missing)} blocks have no label, e.g. {missing[0]}")
    return labels


def mined_ids(
    lines: Sequence[Line], train_lines: Sequence[int], test_lines: Sequence[int]
) -> tuple[list[str], TemplateMiner, dict[str, float]]:
    """Each line's mined id: training lines mined in the order given, test lines matched
    (`UNMATCHED` when nothing matches); lines in neither get "". With the miner and the
    seconds each step took."""
    ids = [""] * len(lines)
    miner = TemplateMiner(DEFAULT_PARAMS)
    t0 = time.perf_counter()
    for i in train_lines:
        ids[i] = miner.mine(lines[i].message)[0]
    t1 = time.perf_counter()
    for i in test_lines:
        ids[i] = miner.match(lines[i].message) or UNMATCHED
    t2 = time.perf_counter()
    return ids, miner, {"mine_s": t1 - t0, "match_s": t2 - t1}


def impure_groups(
    predicted: Sequence[Hashable], truth: Sequence[Hashable]
) -> dict[str, dict[str, int]]:
    """Where two groupings disagree: each true group that several predicted groups share
    or that shares a predicted group with another, with its lines per predicted group."""
    by_true: dict[str, dict[str, int]] = {}
    trues_of: dict[str, set[str]] = {}
    for p, t in zip(predicted, truth, strict=True):
        row = by_true.setdefault(str(t), {})
        row[str(p)] = row.get(str(p), 0) + 1
        trues_of.setdefault(str(p), set()).add(str(t))
    return {
        t: row
        for t, row in by_true.items()
        if len(row) > 1 or any(len(trues_of[p]) > 1 for p in row)
    }


def sessions_of(
    blocks: Sequence[str],
    sessions: Mapping[str, Sequence[int]],
    lines: Sequence[Line],
    ids: Sequence[str],
    labels: Mapping[str, int],
    with_gaps: bool = False,
) -> list[Session]:
    """One Session per block; `with_gaps`: carrying its events' gaps (a time-aware model)."""
    out_: list[Session] = []
    for b in blocks:
        idx = sessions[b]
        out_.append(
            Session(
                b,
                tuple(ids[i] for i in idx),
                start_ts=lines[idx[0]].ts,
                end_ts=max(lines[i].ts for i in idx),
                label=labels[b],
                gaps_ms=gaps_from_times([lines[i].ts for i in idx]) if with_gaps else None,
            )
        )
    return out_


def write_days(directory: Path, sessions: Sequence[Session]) -> list[Path]:
    """Daily files, each session under the UTC day of its first event (as `logad parse`)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    by_day: dict[str, list[Session]] = {}
    for s in sessions:
        assert s.start_ts is not None
        day = datetime.fromtimestamp(s.start_ts / 1000, UTC).date()
        by_day.setdefault(daily_file_name(day), []).append(s)
    paths = []
    for name in sorted(by_day):
        write_sessions(directory / name, by_day[name])
        paths.append(directory / name)
    return paths


def unknown_lines(sessions: Sequence[Session], vocab_ids: set[str]) -> int:
    return sum(1 for s in sessions for e in s.events if e not in vocab_ids)


@dataclass
class Trained:
    """One way's bundle, its test files, and what training it took."""

    name: str
    bundle: Path
    files: dict[str, Path]
    test_sessions: list[Session]
    vocab: Vocab
    info: dict[str, Any]


def train_variant(
    name: str,
    train_sessions: Sequence[Session],
    test_sessions: Sequence[Session],
    work: Path,
    recipe: argparse.Namespace,
    time_buckets: int = 0,
    extra: Sequence[str] = (),
) -> Trained:
    """`logad train` on the normal training sessions (`extra`: more of its flags); the test
    half's session files."""
    from bench.quality_hdfs import train_bundle
    from schemas.bundle import VOCAB, verify_bundle

    root = work / name
    normal_train = [s for s in train_sessions if s.label == 0]
    days = write_days(root / "days", normal_train)
    files = {"normal": root / "test_normal.jsonl", "abnormal": root / "test_abnormal.jsonl"}
    write_sessions(files["normal"], [s for s in test_sessions if s.label == 0])
    write_sessions(files["abnormal"], [s for s in test_sessions if s.label == 1])

    out(f"  [{name}] logad train on {len(normal_train)} normal sessions ({len(days)} days) ...")
    bundle = root / "model"
    train_s = train_bundle(
        root / "days", bundle, recipe, end_marker=True, time_buckets=time_buckets, extra=extra
    )
    out(f"  [{name}] trained in {train_s:.0f} s")
    m = verify_bundle(bundle).metrics
    vocab = Vocab.load(bundle / VOCAB)
    known = {vocab.token(t) for t in range(vocab.first_event_id, len(vocab))}
    info = {
        "event_ids_in_vocab": len(known),
        "test_lines_unknown_to_model": unknown_lines(test_sessions, known),
        "train_sessions": len(normal_train),
        "train_windows": m.get("train_windows"),
        "val_windows": m.get("val_windows"),
        "steps": m.get("steps"),
        "val_loss": m.get("val_loss"),
        "training_seconds": round(train_s, 1),
        "bundle": shown_path(bundle),
    }
    return Trained(name, bundle, files, list(test_sessions), vocab, info)


def evaluate_variant(
    t: Trained, recipe: argparse.Namespace, overrides: Mapping[str, bool] | None = None
) -> tuple[dict[str, Any], list[bool]]:
    """`logad evaluate`'s API on the test half at the bundle's threshold: the figures, and
    which test sessions it flags. `overrides`: scoring strategy fields to change, the
    threshold then re-calibrated on the training days (`logad evaluate --known-ends false
    --calibrate-on DAYS`)."""
    from bench.quality_hdfs import POPULATION
    from trainer.evaluate_run import evaluate_bundle
    from trainer.evaluate_settings import EvaluateSettings, PopulationSettings
    from trainer.scorer_settings import ScorerSettings

    settings = EvaluateSettings(
        token_cache_dir=recipe.out / "token-cache",
        scoring=ScorerSettings(device=recipe.device),
        population=PopulationSettings(POPULATION.normals, POPULATION.abnormals),
        **(overrides or {}),  # type: ignore[arg-type]
    )
    t0 = time.perf_counter()
    report, _ = evaluate_bundle(
        settings,
        t.bundle,
        [t.files["normal"]],
        [t.files["abnormal"]],
        [t.bundle.parent / "days"] if overrides else None,
        t.bundle.parent / ("report-" + "-".join(sorted(overrides)) if overrides else "report"),
    )
    score_s = time.perf_counter() - t0
    d = report.detection
    flags = session_flags(t.bundle, t.test_sessions, recipe.device, d.threshold, overrides)
    # The same scorer and threshold, so the same verdicts as the evaluation's.
    assert sum(flags) == d.false_positives + d.true_positives
    row = {
        "f1": round(d.f1, 4),
        "precision": round(d.precision, 4),
        "recall": round(d.recall, 4),
        "fpr": round(d.fpr, 5),
        "auroc": round(d.auroc, 4),
        "auprc": round(d.auprc, 4),
        "false_positives": d.false_positives,
        "true_positives": d.true_positives,
        "test_normal_sessions": d.n_normal,
        "test_abnormal_sessions": d.n_abnormal,
        "threshold": d.threshold,
        # At the score of an unknown event, no window with one can be flagged.
        "threshold_at_unknown_event_score": d.threshold >= report.details["strategy"]["unk_nll"],
        "threshold_source": report.threshold_source,
        "strategy": report.name,
        "scoring_seconds": round(score_s, 1),
        "scoring_windows_per_s": round(report.throughput.windows_per_s, 1),
    }
    return row, flags


def session_flags(
    bundle: Path,
    sessions: Sequence[Session],
    device: str,
    threshold: float,
    overrides: Mapping[str, bool] | None = None,
) -> list[bool]:
    """Whether each session's score (its highest window's) is over `threshold`: to name
    the sessions the two ways judge differently. `overrides`: as `evaluate_variant`'s."""
    from trainer.evaluate import run_windows
    from trainer.scoring.scorer import WindowScorer
    from trainer.time_gaps import TimedEvents, gaps_of

    scorer = WindowScorer.from_bundle(bundle, device)
    if overrides:
        scorer.strategy = dataclasses.replace(scorer.strategy, **overrides)  # type: ignore[arg-type]

    def score(batch: list[tuple[str, ...]]) -> list[float]:
        # Windows of sessions with gaps carry theirs, as `logad evaluate` reads them.
        return [r.score for r in scorer.score_events(batch, None, [gaps_of(w) for w in batch])]

    seqs = [s.events if s.gaps_ms is None else TimedEvents(s.events, s.gaps_ms) for s in sessions]
    run = run_windows(score, seqs, desc="flags")
    return [bool(x > threshold) for x in run.session_scores(float)]


def same_tokens(a: Sequence[Session], b: Sequence[Session], va: Vocab, vb: Vocab) -> int:
    """How many sessions encode to the same token ids under the two vocabs."""
    return sum(1 for x, y in zip(a, b, strict=True) if va.encode(x.events) == vb.encode(y.events))


def parser() -> argparse.ArgumentParser:
    p = hdfs_parser(
        __doc__,
        work=ROOT / "bench" / "out" / "raw_hdfs",
        results=None,
        results_help="default: bench/results/raw_hdfs.json",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: quality_hdfs's)"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="the trainer's validation slice (default: quality_hdfs's)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument(
        "--time-buckets",
        type=int,
        default=0,
        help="both ways train time-aware on the gaps between a block's events (`logad train "
        "--time-buckets`; the stream's times are whole seconds) and score the test half with "
        "theirs; 0: time-blind, as before. Not 0 needs --results elsewhere than the committed "
        "JSON (default: %(default)s)",
    )
    p.add_argument(
        "--val-covers-events",
        action="store_true",
        help="both ways train with `logad train --val-covers-events true`; needs --results "
        "elsewhere than the committed JSON (default: off, as `logad train`)",
    )
    add_device_args(p, "where the models train and score")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if (a.time_buckets or a.val_covers_events) and (
        a.results is None or a.results.resolve() == RESULTS_JSON
    ):
        # The committed figures are the defaults': another variant goes elsewhere.
        raise SystemExit(
            "--time-buckets and --val-covers-events need --results elsewhere than the "
            "committed JSON"
        )
    from bench.quality_hdfs import POPULATION
    from bench.quality_hdfs import parser as quality_parser
    from schemas.runtime.logs import configure_logging
    from stream.jobs.replay import read_labels

    configure_logging("warning", None)
    t_start = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    out("[1/4] reading the stream, grouping, labelling and splitting blocks ...")
    events_path = a.data / "dev_events.jsonl.gz"
    lines = read_events(events_path)
    sessions = group_sessions(lines)
    dev_labels = read_labels([a.data / "dev_normal.jsonl", a.data / "dev_abnormal.jsonl"])
    labels = label_blocks(
        sessions, dev_labels, (s.session_id for s in read_sessions(a.data / "train.jsonl"))
    )
    train_blocks, test_blocks = split_blocks(sessions)
    test_set = set(test_blocks)
    # quality_hdfs's recipe: its defaults but for the work directory (and any override).
    overrides = [
        *([] if a.epochs is None else ["--epochs", str(a.epochs)]),
        *([] if a.val_fraction is None else ["--val-fraction", str(a.val_fraction)]),
    ]
    recipe = quality_parser().parse_args(
        ["--out", str(a.out), "--seed", str(a.seed), "--threads", str(a.threads),
         "--device", a.device, *overrides]
    )  # fmt: skip
    train_lines = [i for i, x in enumerate(lines) if x.session_id not in test_set]
    test_lines = [i for i, x in enumerate(lines) if x.session_id in test_set]

    out("[2/4] mining templates on the training half's messages, matching the test half ...")
    mined, miner, mining_s = mined_ids(lines, train_lines, test_lines)
    given = [x.event_id for x in lines]
    train_truth = [given[i] for i in train_lines]
    train_pred = [mined[i] for i in train_lines]
    test_pred = [mined[i] for i in test_lines]
    unmatched = sum(1 for x in test_pred if x == UNMATCHED)
    mining = {
        "params": DEFAULT_PARAMS.to_dict(),
        "templates_mined": len(miner),
        "given_event_ids": GIVEN_EVENT_IDS,
        "given_event_ids_in_training_half": len(set(train_truth)),
        "grouping_accuracy_train_lines": round(grouping_accuracy(train_pred, train_truth), 5),
        # Unmatched lines form one group here: a diagnostic only.
        "grouping_accuracy_test_lines": round(
            grouping_accuracy(test_pred, [given[i] for i in test_lines]), 5
        ),
        "training_lines": len(train_lines),
        "test_lines": len(test_lines),
        "unmatched_test_lines": unmatched,
        "mine_seconds": round(mining_s["mine_s"], 3),
        "match_seconds": round(mining_s["match_s"], 3),
        "mine_lines_per_s": round(len(train_lines) / mining_s["mine_s"]),
        "match_lines_per_s": round(len(test_lines) / mining_s["match_s"]),
        # Given ids whose training lines the mined ids split or merge: given -> mined -> lines.
        "disagreements_train_lines": impure_groups(train_pred, train_truth),
    }
    out(
        f"  {len(miner)} templates from {len(train_lines)} lines (GA "
        f"{mining['grouping_accuracy_train_lines']}); {unmatched} of {len(test_lines)} test "
        "lines unmatched"
    )

    out(f"[3/4] logad train ({recipe.preset}, {recipe.epochs} epochs), both ways ...")
    ids_of = {"mined": mined, "given": given}
    built: dict[str, tuple[list[Session], list[Session]]] = {}
    trained: dict[str, Trained] = {}
    for name in VARIANTS:
        timed = a.time_buckets > 0
        tr = sessions_of(train_blocks, sessions, lines, ids_of[name], labels, with_gaps=timed)
        te = sessions_of(test_blocks, sessions, lines, ids_of[name], labels, with_gaps=timed)
        built[name] = (tr, te)
        covers = ["--val-covers-events", "true"] if a.val_covers_events else []
        trained[name] = train_variant(name, tr, te, a.out, recipe, a.time_buckets, covers)

    out("[4/4] logad evaluate on the test half, both ways ...")
    rows: dict[str, Any] = {}
    flags: dict[str, list[bool]] = {}
    for name in VARIANTS:
        rows[name], flags[name] = evaluate_variant(trained[name], recipe)
    diff = round(rows["mined"]["f1"] - rows["given"]["f1"], 4)
    head = {
        "threshold": "bundle's calibrated (p99.9)",
        **rows,
        "f1_mined_minus_given": diff,
        "target_met": abs(diff) <= TARGET_F1_DIFFERENCE,
    }
    evaluations = [head]
    fm, fg = flags["mined"], flags["given"]
    vm, vg = trained["mined"].vocab, trained["given"].vocab
    (mtr, mte), (gtr, gte) = built["mined"], built["given"]
    flipped = [i for i, (x, y) in enumerate(zip(fm, fg, strict=True)) if x != y]
    normal_train = [i for i, s in enumerate(mtr) if s.label == 0]
    split = {
        "hash": "sha256(salt + block id), first byte's low bit: 1 = test",
        "salt": SPLIT_SALT.decode(),
        "blocks": {"train": len(train_blocks), "test": len(test_blocks)},
        "anomalous_blocks": {
            "train": sum(labels[b] for b in train_blocks),
            "test": sum(labels[b] for b in test_blocks),
        },
        "blocks_labelled_normal_by_train_jsonl": sum(1 for b in sessions if b not in dev_labels),
    }
    results = {
        **report_header("raw_hdfs", key="benchmark"),
        "run_seconds": round(time.perf_counter() - t_start, 1),
        "events_file": shown_path(events_path),
        "events": len(lines),
        "blocks": len(sessions),
        "time_buckets": a.time_buckets,
        "val_covers_events": a.val_covers_events,
        "split": split,
        "recipe": {
            k: (shown_path(v) if isinstance(v, Path) else v)
            for k, v in vars(recipe).items()
            if k not in ("data", "results", "ablation", "deeplog_epochs")
        },
        "epochs_why": (
            "quality_hdfs's epochs: each session seen as often as in its recipe; the training "
            "half has about half of train.jsonl's normal sessions, so about half its steps "
            "and training time"
        ),
        "unmatched_rule": (
            f"a test line no mined template matches gets the id {UNMATCHED!r}, which no vocab "
            "holds: the model sees [UNK], as serve will for such a line"
        ),
        "mining": mining,
        "training": {name: trained[name].info for name in VARIANTS},
        "evaluations": evaluations,
        "headline_threshold": head["threshold"],
        "f1_mined_minus_given": diff,
        "target_abs_f1_difference": TARGET_F1_DIFFERENCE,
        "target_met": head["target_met"],
        # Sessions whose token ids are the same under both bundles' vocabs: where all are,
        # both models trained on, and score, the very same token sequences.
        "same_token_sequences": {
            "normal_train_sessions": same_tokens(
                [mtr[i] for i in normal_train], [gtr[i] for i in normal_train], vm, vg
            ),
            "of_normal_train_sessions": len(normal_train),
            "test_sessions": same_tokens(mte, gte, vm, vg),
            "of_test_sessions": len(mte),
        },
        # Test sessions one way flags and the other does not (at the headline threshold),
        # by label and by whether their token sequences differ between the ways.
        "flagged_differently": {
            "normal": sum(1 for i in flipped if mte[i].label == 0),
            "anomalous": sum(1 for i in flipped if mte[i].label == 1),
            "flagged_by_mined_only": sum(1 for i in flipped if fm[i]),
            "with_different_tokens": sum(
                1 for i in flipped if vm.encode(mte[i].events) != vg.encode(gte[i].events)
            ),
            "sessions": [
                {"session_id": mte[i].session_id, "label": mte[i].label, "mined": fm[i]}
                for i in flipped
            ],
        },
        "population": {"normals": POPULATION.normals, "abnormals": POPULATION.abnormals},
    }
    written = write_result("raw_hdfs", results, path=a.results)
    out("")
    out(f"{'threshold':<29}{'ids':<7}{'F1':>8}{'P':>8}{'R':>8}{'FPR':>9}{'AUROC':>8}"
        f"{'score s':>9}")  # fmt: skip
    for ev in evaluations:
        for name in VARIANTS:
            r = ev[name]
            out(
                f"{ev['threshold']:<29}{name:<7}{r['f1']:>8.4f}{r['precision']:>8.4f}"
                f"{r['recall']:>8.4f}{r['fpr']:>9.5f}{r['auroc']:>8.4f}{r['scoring_seconds']:>9.1f}"
            )
        out(f"{'':<29}F1(mined) - F1(given) = {ev['f1_mined_minus_given']:+.4f}")
    for name in VARIANTS:
        i = trained[name].info
        out(
            f"{name}: {i['event_ids_in_vocab']} event ids in the vocab, "
            f"{i['test_lines_unknown_to_model']} test lines unknown to it, trained in "
            f"{i['training_seconds']:.0f} s"
        )
    out(
        f"headline ({head['threshold']}): F1(mined) - F1(given) = {diff:+.4f} (target within "
        f"{TARGET_F1_DIFFERENCE}: {'met' if results['target_met'] else 'NOT met'})"
    )
    out(
        f"templates mined {len(miner)} vs {GIVEN_EVENT_IDS} given; GA on training lines "
        f"{mining['grouping_accuracy_train_lines']}; unmatched test lines {unmatched}"
    )
    out(f"results: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
