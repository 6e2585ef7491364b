"""Read support for FPSEG001 segment files (index format 1), until a merge rewrites them.

FPSEG001 grouped postings by the top `ord_bits` bits of the raw term into a dense
directory (`offsets`, one bucket per document) and packed the remaining low bits with
the ordinal into one uint32 per posting. Terms whose entropy sits in their low bits all
fell into a few buckets, which is why format 2 orders by a mixed hash (segment.py).

Searches on such a segment read whole buckets, as before. Merges need its postings in
hash order, which is no range of the file: each `postings_between` scans the file in
slices, so a merge's memory stays bounded at the price of one scan per merge chunk, once
(the store merges every FPSEG001 segment into format 2 at its next compaction).
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from acoustid_stack.index.segment import (
    I64,
    U32,
    U64,
    MappedSegment,
    Ordinals,
    Postings,
    SegmentFileError,
    first_of_each,
    gather_ranges,
    map_segment_file,
    mix,
    trailing_zeros,
    unmix,
)

MAGIC = b"FPSEG001"
# postings decoded at a time by `postings_between`
_SLICE = 1 << 20


class LegacySegment(MappedSegment):
    def __init__(
        self,
        *,
        segment_id: int,
        path: Path,
        docs: U32,
        versions: U64,
        offsets: NDArray[Any],
        packed: U32,
        ord_bits: int,
        keepalive: mmap.mmap | None,
    ) -> None:
        super().__init__(
            segment_id=segment_id, path=path, docs=docs, versions=versions, keepalive=keepalive
        )
        self.offsets = offsets
        self.packed = packed
        self.ord_bits = ord_bits
        self._shift = np.uint32(32 - ord_bits)
        self._low_mask = np.uint32((1 << (32 - ord_bits)) - 1)
        self._ord_mask = np.uint32((1 << ord_bits) - 1)
        self._trailing_zeros: int | None = None

    @property
    def num_postings(self) -> int:
        return len(self.packed)

    @property
    def nbytes(self) -> int:
        return int(
            self.docs.nbytes + self.versions.nbytes + self.offsets.nbytes + self.packed.nbytes
        )

    @property
    def trailing_zeros(self) -> int:
        if self._trailing_zeros is None:
            self._trailing_zeros = min(
                (trailing_zeros(terms) for terms, _ in self._slices()), default=32
            )
        return self._trailing_zeros

    def common_counts(self, hashes: U32) -> I64:
        # counting would read whole buckets; an FPSEG001 segment lives until a compaction
        return np.zeros(len(hashes), dtype=np.int64)

    def _match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        query = unmix(hashes)
        buckets = query >> self._shift
        starts = self.offsets[buckets]
        lengths = (self.offsets[buckets + 1] - starts).astype(np.intp)
        values = self.packed[gather_ranges(starts, lengths)]
        term_index = np.repeat(np.arange(len(query)), lengths)
        hit = (values >> np.uint32(self.ord_bits)) == (query & self._low_mask)[term_index]
        values, term_index = values[hit], term_index[hit]
        # hits come grouped by query term, lowest ordinal first
        keep = first_of_each(term_index, budget)
        ords: Ordinals = (values[keep] & self._ord_mask).astype(np.intp)
        return ords, lengths.astype(np.int64)

    def _slices(self) -> Iterator[Postings]:
        """(terms, ords) of the postings, a slice of about `_SLICE` at a time."""
        num_buckets = len(self.offsets) - 1
        bounds = np.searchsorted(self.offsets, np.arange(0, len(self.packed), _SLICE), "right")
        edges = np.unique(np.concatenate((bounds - 1, [num_buckets])).clip(0, num_buckets))
        low_bits = np.uint32(32 - self.ord_bits)
        for first, stop in itertools.pairwise(edges):
            lengths = np.diff(self.offsets[first : stop + 1])
            buckets = np.repeat(np.arange(first, stop, dtype=np.uint32), lengths)
            packed = self.packed[int(self.offsets[first]) : int(self.offsets[stop])]
            terms = (buckets << low_bits) | (packed >> np.uint32(self.ord_bits))
            yield terms, packed & self._ord_mask

    def postings_between(self, low: int, high: int) -> Postings:
        keys = []
        for terms, ords in self._slices():
            hashes = mix(terms)
            inside = (hashes >= low) & (hashes.astype(np.uint64) < high)
            keys.append(
                (hashes[inside].astype(np.uint64) << np.uint64(32)) | ords[inside].astype(np.uint64)
            )
        merged = np.sort(np.concatenate(keys)) if keys else np.empty(0, np.uint64)
        return (merged >> np.uint64(32)).astype(np.uint32), merged.astype(np.uint32)

    @classmethod
    def open(cls, path: Path, *, verify: bool = False) -> LegacySegment:
        header, arrays, mm = map_segment_file(path, MAGIC, data_start=None, verify=verify)
        try:
            return cls(
                segment_id=int(header["segment_id"]),
                path=path,
                docs=arrays["docs"],
                versions=arrays["versions"],
                offsets=arrays["offsets"],
                packed=arrays["postings"],
                ord_bits=int(header["ord_bits"]),
                keepalive=mm,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SegmentFileError(f"{path}: the segment header is damaged: {exc}") from exc
