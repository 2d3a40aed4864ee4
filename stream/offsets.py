"""Which input offsets are safe to commit, per partition. Pure: no Kafka here.

An offset is done once its event's window has been scored and the Score acknowledged by
the broker, or once its undecodable message sits (acknowledged) in the dead-letter topic.
Everything from the lowest offset not yet done onwards must be re-read after a crash, so
the safe commit is the lowest of:
  - the lowest offset held by a window still open in the sessionizer (passed in),
  - the lowest offset held by a window or DLQ record in flight (`hold` .. `release`),
  - the next offset to consume (everything consumed so far is done).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass
class _PartitionState:
    next_offset: int | None = None
    """One past the highest offset consumed; None until a record arrives."""
    held: Counter[int] = field(default_factory=Counter)
    """In-flight holds by their lowest offset (a window's first_offset, a DLQ'd offset)."""
    committed: int | None = None


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[int, _PartitionState] = {}

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
    ) -> dict[int, int]:
        """Safe offsets that moved past the last commit. Call `committed` once they are."""
        out: dict[int, int] = {}
        for p in self._parts if partitions is None else partitions:
            st = self._parts.get(p)
            if st is None:
                continue
            safe = self.safe_offset(p, open_min(p))
            if safe is not None and (st.committed is None or safe > st.committed):
                out[p] = safe
        return out

    def committed(self, offsets: Mapping[int, int]) -> None:
        for p, off in offsets.items():
            st = self._parts.get(p)
            if st is not None and (st.committed is None or off > st.committed):
                st.committed = off

    def last_committed(self, partition: int) -> int | None:
        st = self._parts.get(partition)
        return None if st is None else st.committed
