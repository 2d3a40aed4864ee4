"""The training data: daily files -> cached windows -> vocab -> one flat token array.

`load_training_data` selects the daily files, loads each through the token cache, splits off
the validation slice by session hash, builds the vocab from the training windows (or extends
a warm-start vocab) and maps every file's local codes through it into one flat array of token
ids. `pad_windows` (pure) turns a list of windows into a padded [CLS] ... [SEP] matrix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from schemas.daily_files import DayFile, find_daily_files, read_sessions
from schemas.errors import DataError
from schemas.feedback import read_feedback
from schemas.vocab import CLS_ID, PAD_ID, SEP_ID, SPECIALS, UNK_ID, Vocab
from schemas.windows import MAX_EVENTS, split_points
from trainer.batching import padded_length
from trainer.time_gaps import levels_to_buckets
from trainer.token_cache import FileTokens, TokenCache
from trainer.window_filter import (
    FilterResult,
    WindowColumns,
    WindowFilterSettings,
    WindowRecord,
    filter_windows,
)

log = structlog.get_logger(__name__)

IntArray = npt.NDArray[np.int64]
SPECIAL_TOKENS = 2  # [CLS] and [SEP] around every window


@dataclass(frozen=True)
class DataSelection:
    """Which daily files to read: sources (dirs or files) and an optional date range."""

    sources: tuple[Path, ...]
    from_date: date | None = None
    to_date: date | None = None
    last_days: int | None = None
    """The N days ending at to_date, or at the newest dated file found."""

    def describe(self) -> str:
        rng = f"{self.from_date or '...'}..{self.to_date or '...'}"
        if self.last_days:
            rng = f"last {self.last_days} days"
        return f"{', '.join(map(str, self.sources))} ({rng})"


@dataclass(frozen=True)
class WindowStore:
    """Windows as slices of one flat array of event token ids (no [CLS]/[SEP])."""

    tokens: npt.NDArray[np.integer]
    starts: IntArray
    lengths: IntArray
    levels: npt.NDArray[np.uint8] | None = None
    """Per token (as `tokens`), its gap level (trainer/time_gaps.py); None: time-blind."""

    def __len__(self) -> int:
        return len(self.starts)

    def token_lengths(self, idx: IntArray | None = None) -> IntArray:
        """Lengths with [CLS] and [SEP], as the model sees them."""
        lens = self.lengths if idx is None else self.lengths[idx]
        return lens + SPECIAL_TOKENS

    def window(self, i: int) -> list[int]:
        s = int(self.starts[i])
        return [CLS_ID, *self.tokens[s : s + int(self.lengths[i])].tolist(), SEP_ID]


@dataclass(frozen=True)
class TrainingData:
    store: WindowStore
    train_idx: IntArray
    val_idx: IntArray
    vocab: Vocab
    file_keys: tuple[str, ...]
    """Content hashes of the files used, in order: a resume checks the data is unchanged."""
    data_from: str | None
    data_to: str | None
    n_sessions: int
    excluded: dict[str, int] | None = None
    """The window filter's counts (`FilterResult.counts`), None when no rule was on."""
    recurring: tuple[str, ...] = ()
    """Events the window filter treated as recurring (alerted windows of only those kept)."""
    vouched: npt.NDArray[np.bool_] | None = None
    """Per stored window, whether the bundle may record it as known (None: every one)."""

    def known_idx(self) -> npt.NDArray[np.int64]:
        """The training windows the bundle records as known mixes and pairs."""
        if self.vouched is None:
            return self.train_idx
        return self.train_idx[self.vouched[self.train_idx]]


def select_files(sel: DataSelection, complete_only: bool = False) -> list[DayFile]:
    to_date = sel.to_date
    from_date = sel.from_date
    files = find_daily_files(list(sel.sources), from_date, to_date, complete_only)
    if sel.last_days:
        days = [f.day for f in files if f.day is not None]
        if days:
            end = to_date or max(days)
            start = end - timedelta(days=sel.last_days - 1)
            from_date = max(from_date, start) if from_date else start
            files = find_daily_files(list(sel.sources), from_date, end, complete_only)
    if not files:
        raise DataError(f"no daily files in range: {sel.describe()}")
    return files


def is_validation(hashes: npt.NDArray[np.uint64], val_fraction: float) -> npt.NDArray[np.bool_]:
    """The held-out slice: the session hash's top 53 bits as a uniform number in [0, 1)."""
    u = (np.asarray(hashes, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return u < val_fraction


def cover_events(
    files: Sequence[FileTokens], val_masks: Sequence[npt.NDArray[np.bool_]]
) -> list[npt.NDArray[np.bool_]]:
    """Pure: the validation masks with, for each event that only validation windows hold, the
    first such window (in file order) moved to training. Every event of the normal data is
    then trained on and in the vocab, rather than [UNK] wherever it recurs; the windows
    moved would sit at the unseen-event ceiling, which calibration sets aside anyway."""
    masks = [np.array(m, dtype=np.bool_, copy=True) for m in val_masks]
    trained = set(train_counts(files, masks))
    for ft, m in zip(files, masks, strict=True):
        if not m.any() or trained.issuperset(ft.events):
            continue
        codes = np.asarray(ft.codes)
        new = np.array([e not in trained for e in ft.events], dtype=np.bool_)
        # Only windows holding an event training lacks can move: find them without a loop.
        holds = np.zeros(ft.n_windows, dtype=np.bool_)
        window_of = np.repeat(np.arange(ft.n_windows), ft.lengths)
        holds[window_of[new[codes]]] = True
        for w in np.flatnonzero(m & holds):
            lo, hi = int(ft.offsets[w]), int(ft.offsets[w + 1])
            events = {ft.events[c] for c in codes[lo:hi].tolist()}
            if not trained.issuperset(events):
                m[w] = False
                trained |= events
    return masks


def train_counts(
    files: Sequence[FileTokens], val_masks: Sequence[npt.NDArray[np.bool_]]
) -> Counter[str]:
    """Event frequencies over the training windows only."""
    counts: Counter[str] = Counter()
    for ft, is_val in zip(files, val_masks, strict=True):
        keep = np.repeat(~is_val, ft.lengths)
        n = np.bincount(np.asarray(ft.codes)[keep], minlength=len(ft.events))
        for event, c in zip(ft.events, n.tolist(), strict=True):
            if c:
                counts[event] += c
    return counts


def build_vocab(counts: Counter[str], vocab_size: int, base: Vocab | None) -> Vocab:
    """A frequency-ranked vocab, or `base` extended with the most frequent new events."""
    if base is None:
        return Vocab.from_counts(counts, vocab_size)
    room = max(0, vocab_size - len(base))
    new = sorted((e for e in counts if e not in base), key=lambda e: (-counts[e], e))
    return base.extend(new[:room], max_size=max(vocab_size, len(base)))


def token_dtype(vocab_size: int) -> type[np.integer]:
    return np.uint16 if vocab_size <= 1 << 16 else np.int32


def map_files(files: Sequence[FileTokens], vocab: Vocab) -> WindowStore:
    """Concatenate every file's windows, mapping local codes to vocab ids."""
    total = sum(len(ft.codes) for ft in files)
    tokens = np.empty(total, dtype=token_dtype(len(vocab)))
    timed = bool(files) and all(ft.levels is not None for ft in files)
    levels = np.zeros(total, dtype=np.uint8) if timed else None
    starts: list[IntArray] = []
    lengths: list[IntArray] = []
    pos = 0
    for ft in files:
        lut = np.array([vocab.id_of(e) for e in ft.events] or [UNK_ID], dtype=tokens.dtype)
        n = len(ft.codes)
        tokens[pos : pos + n] = lut[np.asarray(ft.codes)]
        if levels is not None and ft.levels is not None:
            levels[pos : pos + n] = ft.levels
        starts.append(np.asarray(ft.offsets[:-1], dtype=np.int64) + pos)
        lengths.append(np.asarray(ft.lengths, dtype=np.int64))
        pos += n
    return WindowStore(
        tokens,
        np.concatenate(starts) if starts else np.empty(0, np.int64),
        np.concatenate(lengths) if lengths else np.empty(0, np.int64),
        levels,
    )


def load_training_data(
    sel: DataSelection,
    cache: TokenCache,
    val_fraction: float,
    vocab_size: int,
    base_vocab: Vocab | None = None,
    fixed_vocab: Vocab | None = None,
    *,
    complete_only: bool = False,
    window_filter: WindowFilterSettings | None = None,
    val_covers_events: bool = False,
) -> TrainingData:
    """Read (through the cache) and assemble the training data.

    `fixed_vocab` (a resumed run's) is used as is; else the vocab is built from the training
    windows, extending `base_vocab` on a warm start. With `window_filter`, the windows it
    leaves out (trainer/window_filter.py) are in neither the training nor the validation
    slice. With `val_covers_events`, an event only the validation slice holds has its first
    window trained on (`cover_events`).
    """
    day_files = select_files(sel, complete_only)
    files = [cache.load(f.path) for f in day_files]
    cache.save_memo()
    val_masks = [is_validation(ft.session_hash, val_fraction) for ft in files]
    if val_covers_events:
        covered = cover_events(files, val_masks)
        moved = sum(int((a & ~b).sum()) for a, b in zip(val_masks, covered, strict=True))
        log.info("validation_windows_moved_to_training", windows=moved)
        val_masks = covered
    n_windows = sum(ft.n_windows for ft in files)
    if n_windows == 0:
        raise DataError(f"no sessions in the selected daily files: {sel.describe()}")
    is_val = np.concatenate(val_masks)
    keep = np.ones_like(is_val)
    excluded: dict[str, int] | None = None
    recurring: tuple[str, ...] = ()
    vouched: npt.NDArray[np.bool_] | None = None
    if window_filter is not None and _filters(window_filter):
        result = filter_files(day_files, files, window_filter, is_val)
        keep, excluded, recurring = result.keep, result.counts(), result.recurring
        vouched = result.vouched
        log.info(
            "training_windows_filtered",
            **excluded,
            score_cut=result.score_cut,
            dense_periods=len(result.dense_spans),
            recurring_events=list(recurring),
        )
    # Left-out windows still count for the vocab: an incident's new event gets an id (it
    # is never trained on, so it stays surprising) rather than mapping to [UNK].
    vocab = fixed_vocab or build_vocab(train_counts(files, val_masks), vocab_size, base_vocab)
    store = map_files(files, vocab)
    days = [f.day for f in day_files if f.day is not None]
    data = TrainingData(
        store=store,
        train_idx=np.flatnonzero(~is_val & keep).astype(np.int64),
        val_idx=np.flatnonzero(is_val & keep).astype(np.int64),
        vocab=vocab,
        file_keys=tuple(ft.key for ft in files),
        data_from=min(days).isoformat() if days else None,
        data_to=max(days).isoformat() if days else None,
        n_sessions=sum(ft.n_sessions for ft in files),
        excluded=excluded,
        recurring=recurring,
        vouched=vouched,
    )
    if len(data.train_idx) == 0:
        raise DataError(f"every window fell in the validation slice: {sel.describe()}")
    log.info(
        "training_data_loaded",
        files=len(files),
        cache_hits=cache.hits,
        tokenized=cache.misses,
        sessions=data.n_sessions,
        train_windows=len(data.train_idx),
        val_windows=len(data.val_idx),
        tokens=len(store.tokens),
        vocab=len(vocab),
        events_seen=len(vocab) - len(SPECIALS),
    )
    return data


def _filters(s: WindowFilterSettings) -> bool:
    """Whether any rule is on (else the files need not be read again)."""
    return (
        s.exclude_alerted
        or s.exclude_alert_dense
        or s.exclude_score_quantile > 0
        or s.exclude_near_miss > 0
        or s.known_max_score_ratio > 0
        or s.feedback is not None
    )


def filter_files(
    day_files: Sequence[DayFile],
    files: Sequence[FileTokens],
    s: WindowFilterSettings,
    held_out: npt.NDArray[np.bool_],
) -> FilterResult:
    """The window filter over the selected files (windows in the token cache's order),
    with the verdicts of the settings' feedback file."""
    feedback = read_feedback(s.feedback) if s.feedback is not None else []
    columns = WindowColumns.concat(
        [window_columns(f.path, ft.n_windows) for f, ft in zip(day_files, files, strict=True)]
    )
    return filter_windows(columns, s, feedback, held_out)


def window_columns(path: Path, n_windows: int) -> WindowColumns:
    """Per window of a daily file (in the token cache's order), what the filter reads: a
    session cut into several windows gives each its line's times, score and alert."""
    records: list[WindowRecord] = []
    repeats: list[int] = []
    for s in read_sessions(path, strict=True):
        records.append(
            WindowRecord(
                s.session_id, s.start_ts, s.end_ts, s.score, s.alerted, s.pattern, s.threshold
            )
        )
        repeats.append(len(split_points(len(s.events), MAX_EVENTS)))
    if sum(repeats) != n_windows:
        raise DataError(f"{path} changed while it was read ({sum(repeats)} != {n_windows} windows)")
    return WindowColumns.of(records).repeat(np.asarray(repeats, dtype=np.int64))


def _layout(
    store: WindowStore, idx: IntArray, bucket_width: int
) -> tuple[IntArray, int, npt.NDArray[np.bool_], IntArray]:
    """The padded rows' shape: each window's length, the row width, which event columns
    hold an event, and where in the store each column reads from (clamped inside it)."""
    lens = store.lengths[idx]
    starts = store.starts[idx]
    width = padded_length(int(lens.max()) + SPECIAL_TOKENS, bucket_width)
    cols = np.arange(width - SPECIAL_TOKENS)
    valid = cols[None, :] < lens[:, None]
    src = starts[:, None] + np.minimum(cols[None, :], np.maximum(lens[:, None] - 1, 0))
    return lens, width, valid, src


def pad_windows(store: WindowStore, idx: IntArray, bucket_width: int) -> npt.NDArray[np.int64]:
    """Pure: rows [CLS] events [SEP] [PAD]..., padded to the bucket of the longest window."""
    lens, width, valid, src = _layout(store, idx, bucket_width)
    out = np.full((len(idx), width), PAD_ID, dtype=np.int64)
    out[:, 0] = CLS_ID
    if len(store.tokens):
        out[:, 1 : width - 1] = np.where(valid, store.tokens[src], PAD_ID)
    out[np.arange(len(idx)), lens + 1] = SEP_ID
    return out


def pad_types(
    store: WindowStore, idx: IntArray, bucket_width: int, time_buckets: int
) -> npt.NDArray[np.int64]:
    """Pure: the token types (gap buckets, trainer/time_gaps.py) of `pad_windows`' rows:
    0 at [CLS], [SEP] and padding."""
    if store.levels is None:
        raise DataError("the training data holds no time gaps (a time-blind token cache)")
    _, width, valid, src = _layout(store, idx, bucket_width)
    out = np.zeros((len(idx), width), dtype=np.int64)
    if len(store.levels):
        buckets = levels_to_buckets(store.levels[src], time_buckets)
        out[:, 1 : width - 1] = np.where(valid, buckets, 0)
    return out


def window_types(store: WindowStore, i: int, time_buckets: int) -> npt.NDArray[np.int64]:
    """Window i's token types (no [CLS]/[SEP]), as the scorer takes them."""
    if store.levels is None:
        raise DataError("the training data holds no time gaps (a time-blind token cache)")
    s = int(store.starts[i])
    return levels_to_buckets(store.levels[s : s + int(store.lengths[i])], time_buckets)
