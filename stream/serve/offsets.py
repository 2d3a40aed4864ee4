"""Which input offsets are safe to commit, per partition. Pure: no Kafka here.

An offset is done once its event's window has been scored and the Score acknowledged by
the broker, or once its undecodable message sits (acknowledged) in the dead-letter topic.
Everything from the lowest offset not yet done onwards must be re-read after a crash, so
the safe commit is the lowest of:
  - the lowest offset held by a window still open in the sessionizer (passed in),
  - the lowest offset held by a window or DLQ record in flight (`hold` .. `release`),
  - the next offset to consume (everything consumed so far is done).

Sessions interleave, so a commit at x usually cuts through some windows already scored
(first < x <= last). Re-reading from x after a crash would turn their tails into new,
truncated windows: not duplicates but fragments with other window ids (and, looking cut
short, likely false alerts). So each commit carries, in its metadata, those straddling
windows: a hash of the session id and the last offset. After a restart, an event of such a
session at or below that offset is skipped as already scored. Every window re-formed from x
is then one the previous owner either never acknowledged or formed identically: a duplicate,
if any, carries the same window_id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

METADATA_PREFIX = "logad1:"
_ENTRY = struct.Struct(">8sI")  # session key, last offset minus the committed offset


def session_key(session_id: str) -> bytes:
    return hashlib.blake2b(session_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass(frozen=True, slots=True)
class DoneWindow:
    first: int
    last: int
    key: bytes
    """session_key of the window's session."""


def encode_metadata(commit: int, straddlers: Iterable[DoneWindow], max_bytes: int) -> str:
    """The commit metadata for `commit`: straddling windows, as many as `max_bytes` allows."""
    room = max(0, (max_bytes - len(METADATA_PREFIX)) * 3 // 4 // _ENTRY.size)
    entries = [w for w in straddlers if 0 <= w.last - commit < 2**32]
    if len(entries) > room:
        # Those left out may be re-scored as fragments after a crash; nothing is lost.
        log.warning("commit_metadata_full", straddlers=len(entries), kept=room)
        entries = sorted(entries, key=lambda w: w.last, reverse=True)[:room]
    if not entries:
        return ""
    raw = b"".join(_ENTRY.pack(w.key, w.last - commit) for w in entries)
    return METADATA_PREFIX + base64.b64encode(raw).decode()


def decode_metadata(commit: int, metadata: str | None) -> dict[bytes, int]:
    """Session key -> last offset already scored, from a commit's metadata ({} if none)."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return {}
    try:
        raw = base64.b64decode(metadata[len(METADATA_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        log.warning("commit_metadata_unreadable", metadata=metadata[:80])
        return {}
    out: dict[bytes, int] = {}
    for key, delta in _ENTRY.iter_unpack(raw[: len(raw) - len(raw) % _ENTRY.size]):
        out[key] = max(out.get(key, -1), commit + delta)
    return out


@dataclass
class _PartitionState:
    next_offset: int | None = None
    """One past the highest offset consumed; None until a record arrives."""
    held: Counter[int] = field(default_factory=Counter)
    """In-flight holds by their lowest offset (a window's first_offset, a DLQ'd offset)."""
    committed: int | None = None
    done: list[DoneWindow] = field(default_factory=list)
    """Acknowledged windows that may still straddle a future commit (last >= committed)."""
    skip: dict[bytes, int] = field(default_factory=dict)
    """Restored from the commit metadata: session key -> last offset already scored."""


class OffsetTracker:
    def __init__(self, metadata_max_bytes: int = 4096, max_done: int = 200_000) -> None:
        self._parts: dict[int, _PartitionState] = {}
        self.metadata_max_bytes = metadata_max_bytes
        self.max_done = max_done
        """Bound on remembered windows per partition while a long session holds the commit."""

    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self._parts)

    def assign(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.setdefault(p, _PartitionState())

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._parts.pop(p, None)

    def consumed(self, partition: int, offset: int) -> None:
        st = self._parts[partition]
        if st.next_offset is None or offset + 1 > st.next_offset:
            st.next_offset = offset + 1

    def next_offset(self, partition: int) -> int | None:
        st = self._parts.get(partition)
        return None if st is None else st.next_offset

    def hold(self, partition: int, offset: int) -> None:
        """Keep the commit at or below `offset` until the matching `release`."""
        self._parts[partition].held[offset] += 1

    def release(self, partition: int, offset: int) -> None:
        st = self._parts.get(partition)
        if st is None:
            return  # revoked meanwhile; its commit already happened or never will
        n = st.held[offset] - 1
        if n < 0:
            raise ValueError(f"release without hold: partition {partition} offset {offset}")
        if n == 0:
            del st.held[offset]
        else:
            st.held[offset] = n

    def finished(self, partition: int, first: int, last: int, session_id: str) -> None:
        """A window's Score was acknowledged: release its hold and remember its span."""
        self.release(partition, first)
        st = self._parts.get(partition)
        if st is not None and (st.committed is None or last >= st.committed):
            st.done.append(DoneWindow(first, last, session_key(session_id)))
            if len(st.done) > self.max_done:
                # Keep the lowest-starting ones: the next commits cut through those first.
                # A forgotten one may come back as a fragment after a crash; none is lost.
                st.done.sort(key=lambda w: w.first)
                del st.done[self.max_done * 9 // 10 :]
                log.warning("done_windows_trimmed", partition=partition, kept=len(st.done))

    def restore(self, partition: int, committed: int | None, metadata: str | None) -> int:
        """Take up a partition at its committed offset; returns the sessions to skip."""
        st = self._parts[partition]
        if committed is None:
            return 0
        st.committed = committed
        st.skip = decode_metadata(committed, metadata)
        # Carried into the next commits' metadata for as long as they still straddle.
        st.done.extend(DoneWindow(committed - 1, last, k) for k, last in st.skip.items())
        return len(st.skip)

    def has_skips(self, partition: int) -> bool:
        """Whether `already_scored` can be true for any event of the partition."""
        return bool(self._parts[partition].skip)

    def already_scored(self, partition: int, session_id: str, offset: int) -> bool:
        """True for an event the previous owner scored (in a window straddling its commit)."""
        skip = self._parts[partition].skip
        if not skip:
            return False
        last = skip.get(session_key(session_id))
        return last is not None and offset <= last

    def in_flight(self, partitions: Iterable[int] | None = None) -> int:
        """Holds not yet released, over the given partitions (default: all)."""
        parts = self._parts if partitions is None else partitions
        return sum(sum(self._parts[p].held.values()) for p in parts if p in self._parts)

    def safe_offset(self, partition: int, open_min: int | None) -> int | None:
        """The offset to commit now for `partition`, or None when nothing was consumed."""
        st = self._parts[partition]
        if st.next_offset is None:
            return None
        candidates = [st.next_offset]
        if st.held:
            candidates.append(min(st.held))
        if open_min is not None:
            candidates.append(open_min)
        return min(candidates)

    def to_commit(
        self,
        open_min: Callable[[int], int | None],
        partitions: Iterable[int] | None = None,
    ) -> dict[int, tuple[int, str]]:
        """(offset, metadata) per partition whose safe offset moved past the last commit.
        Call `committed` once the broker took them."""
        out: dict[int, tuple[int, str]] = {}
        for p in self._parts if partitions is None else partitions:
            st = self._parts.get(p)
            if st is None:
                continue
            safe = self.safe_offset(p, open_min(p))
            if safe is not None and (st.committed is None or safe > st.committed):
                # Every window that starts below `safe` is done by now, so this list is
                # complete and stays true for as long as the commit stays at `safe`.
                straddlers = [w for w in st.done if w.first < safe <= w.last]
                out[p] = (safe, encode_metadata(safe, straddlers, self.metadata_max_bytes))
        return out

    def committed(self, offsets: Mapping[int, tuple[int, str] | int]) -> None:
        for p, value in offsets.items():
            off = value if isinstance(value, int) else value[0]
            st = self._parts.get(p)
            if st is not None and (st.committed is None or off > st.committed):
                st.committed = off
                st.done = [w for w in st.done if w.last >= off]
                if st.skip:
                    st.skip = {k: last for k, last in st.skip.items() if last >= off}

    def last_committed(self, partition: int) -> int | None:
        st = self._parts.get(partition)
        return None if st is None else st.committed
