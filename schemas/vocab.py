"""`Vocab`: event ids to token ids, built by frequency, capped, saved as JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from schemas.errors import DecodeError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIALS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
DEFAULT_MAX_SIZE = 10_000


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]
    """Token strings by id; the first five are SPECIALS."""
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[: len(SPECIALS)] != SPECIALS:
            raise DecodeError(f"vocab must start with {list(SPECIALS)}", "tokens")
        index = {t: i for i, t in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise DecodeError("duplicate tokens", "tokens")
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]], max_size: int = DEFAULT_MAX_SIZE) -> Vocab:
        """Most frequent event ids first (ties by id), capped at max_size tokens in all."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        return cls.from_counts(counts, max_size)

    @classmethod
    def from_counts(cls, counts: Counter[str], max_size: int = DEFAULT_MAX_SIZE) -> Vocab:
        if max_size <= len(SPECIALS):
            raise ValueError(f"max_size must exceed {len(SPECIALS)}")
        ranked = sorted((t for t in counts if t not in SPECIALS), key=lambda t: (-counts[t], t))
        return cls(SPECIALS + tuple(ranked[: max_size - len(SPECIALS)]))

    def extend(self, event_ids: Iterable[str], max_size: int = DEFAULT_MAX_SIZE) -> Vocab:
        """A vocab with new ids appended (existing ids keep their numbers), for warm starts."""
        new = sorted({e for e in event_ids if e not in self._index})
        room = max(0, max_size - len(self.tokens))
        return Vocab(self.tokens + tuple(new[:room]))

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._index

    def id_of(self, event_id: str) -> int:
        return self._index.get(event_id, UNK_ID)

    def encode(self, events: Sequence[str]) -> list[int]:
        """Event ids to token ids, without [CLS]/[SEP]. Unseen ids map to [UNK]."""
        get = self._index.get
        return [get(e, UNK_ID) for e in events]

    def token(self, token_id: int) -> str:
        return self.tokens[token_id]

    @property
    def first_event_id(self) -> int:
        return len(SPECIALS)

    def to_json(self) -> bytes:
        return orjson.dumps({"version": 1, "tokens": list(self.tokens)}, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> Vocab:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise DecodeError(f"vocab is not valid JSON: {e}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise DecodeError("vocab must be an object with a 'tokens' list", "tokens")
        tokens = obj["tokens"]
        if not all(isinstance(t, str) for t in tokens):
            raise DecodeError("all tokens must be strings", "tokens")
        return cls(tuple(tokens))

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_json())

    @classmethod
    def load(cls, path: Path) -> Vocab:
        return cls.from_json(path.read_bytes())
