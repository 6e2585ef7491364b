"""In-memory segments: recent writes, as one sorted uint64 array of (hash << 32 | ordinal).

Plain 8-byte keys are larger than the file encoding but need no directory, so building
one from an update batch is a single sort. They are bounded in size: the merger folds
them together and flushes them to a file segment (see merge.py). Their content is also
in the WAL, which is what makes them durable. Hashes are the mixed terms of segment.py,
so memory and file segments share one order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from acoustid_stack.index.segment import (
    I64,
    U32,
    U64,
    Ordinals,
    Postings,
    Segment,
    gather_ranges,
    mix,
    sorted_unique,
    trailing_zeros,
)

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class MemorySegment(Segment):
    kind = "memory"

    def __init__(self, *, segment_id: int, docs: U32, versions: U64, keys: U64) -> None:
        super().__init__(segment_id=segment_id, docs=docs, versions=versions)
        self.keys = keys
        self.created = time.monotonic()
        self._trailing_zeros = trailing_zeros(keys >> _SHIFT)

    @property
    def num_postings(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.docs.nbytes + self.versions.nbytes + self.keys.nbytes)

    @property
    def trailing_zeros(self) -> int:
        return self._trailing_zeros

    def _ranges(self, hashes: U32) -> tuple[I64, I64]:
        low = hashes.astype(np.uint64) << _SHIFT
        starts = np.searchsorted(self.keys, low).astype(np.int64)
        ends = np.searchsorted(self.keys, low | _LOW32, side="right").astype(np.int64)
        return starts, ends

    def common_counts(self, hashes: U32) -> I64:
        starts, ends = self._ranges(hashes)
        return ends - starts

    def _match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        starts, ends = self._ranges(hashes)
        read = np.minimum(ends - starts, budget)
        budget -= read
        return (self.keys[gather_ranges(starts, read)] & _LOW32).astype(np.intp), read

    def postings_between(self, low: int, high: int) -> Postings:
        start, stop = self._range(low, high)
        keys = self.keys[start:stop]
        return (keys >> _SHIFT).astype(np.uint32), (keys & _LOW32).astype(np.uint32)

    def _range(self, low: int, high: int) -> tuple[int, int]:
        start = int(np.searchsorted(self.keys, np.uint64(low) << _SHIFT))
        if high >= 1 << 32:
            return start, len(self.keys)
        return start, int(np.searchsorted(self.keys, np.uint64(high) << _SHIFT))

    @classmethod
    def from_postings(
        cls,
        *,
        segment_id: int,
        docs: U32,
        versions: U64,
        hashes: U32,
        ords: U32,
        created: float,
    ) -> MemorySegment:
        """From postings sorted by (hash, ordinal); `created` of its oldest input."""
        keys = (hashes.astype(np.uint64) << _SHIFT) | ords.astype(np.uint64)
        segment = cls(segment_id=segment_id, docs=docs, versions=versions, keys=keys)
        segment.created = created
        return segment

    @classmethod
    def from_documents(
        cls, *, segment_id: int, version: int, ids: Sequence[int], hashes: Sequence[U32]
    ) -> MemorySegment:
        """One update batch: distinct `ids`, each with its terms (duplicates are dropped)."""
        docs = np.asarray(ids, dtype=np.uint32)
        order = np.argsort(docs, kind="stable")
        docs = docs[order]
        lengths = np.fromiter((len(hashes[i]) for i in order), dtype=np.intp, count=len(order))
        terms = (
            mix(np.concatenate([hashes[i] for i in order])).astype(np.uint64)
            if len(order)
            else np.empty(0, dtype=np.uint64)
        )
        ords = np.repeat(np.arange(len(docs), dtype=np.uint64), lengths)
        keys = sorted_unique((terms << _SHIFT) | ords)
        versions = np.full(len(docs), version, dtype=np.uint64)
        return cls(segment_id=segment_id, docs=docs, versions=versions, keys=keys)
