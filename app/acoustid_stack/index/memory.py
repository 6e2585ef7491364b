"""In-memory segments: recent writes, as one sorted uint64 array of (term << 32 | ordinal).

Plain 8-byte keys are larger than the file encoding but need no directory, so building
one from an update batch is a single sort. They are bounded in size: the merger folds
them together and flushes them to a file segment (see merge.py). Their content is also
in the WAL, which is what makes them durable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from acoustid_stack.index.segment import (
    U32,
    U64,
    Ordinals,
    Segment,
    gather_ranges,
    sorted_unique,
)

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class MemorySegment(Segment):
    kind = "memory"

    def __init__(self, *, segment_id: int, docs: U32, versions: U64, keys: U64) -> None:
        super().__init__(segment_id=segment_id, docs=docs, versions=versions)
        self.keys = keys
        self.created = time.monotonic()

    @property
    def num_postings(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.docs.nbytes + self.versions.nbytes + self.keys.nbytes)

    def _match(self, query: U32) -> Ordinals:
        low = query.astype(np.uint64) << _SHIFT
        starts = np.searchsorted(self.keys, low)
        ends = np.searchsorted(self.keys, low | _LOW32, side="right")
        idx = gather_ranges(starts, ends - starts)
        return (self.keys[idx] & _LOW32).astype(np.intp)

    def decode(self) -> tuple[U32, U32]:
        return (
            (self.keys >> _SHIFT).astype(np.uint32),
            (self.keys & _LOW32).astype(np.uint32),
        )

    @classmethod
    def from_postings(
        cls,
        *,
        segment_id: int,
        docs: U32,
        versions: U64,
        terms: U32,
        ords: U32,
        created: float,
    ) -> MemorySegment:
        """From postings already sorted by (term, ordinal); `created` of its oldest input."""
        keys = (terms.astype(np.uint64) << _SHIFT) | ords.astype(np.uint64)
        segment = cls(segment_id=segment_id, docs=docs, versions=versions, keys=keys)
        segment.created = created
        return segment

    @classmethod
    def from_documents(
        cls, *, segment_id: int, version: int, ids: Sequence[int], hashes: Sequence[U32]
    ) -> MemorySegment:
        """One update batch: distinct `ids`, each with its hashes (duplicates are dropped)."""
        docs = np.asarray(ids, dtype=np.uint32)
        order = np.argsort(docs, kind="stable")
        docs = docs[order]
        lengths = np.fromiter((len(hashes[i]) for i in order), dtype=np.intp, count=len(order))
        terms = (
            np.concatenate([hashes[i] for i in order]).astype(np.uint64)
            if len(order)
            else np.empty(0, dtype=np.uint64)
        )
        ords = np.repeat(np.arange(len(docs), dtype=np.uint64), lengths)
        keys = sorted_unique((terms << _SHIFT) | ords)
        versions = np.full(len(docs), version, dtype=np.uint64)
        return cls(segment_id=segment_id, docs=docs, versions=versions, keys=keys)
