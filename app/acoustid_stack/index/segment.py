"""Segments: immutable sets of documents with their postings, ordered by a mixed term hash.

Every segment orders its postings by (hash, ordinal) where `hash = term * MIX mod 2^32`
(Fibonacci hashing): multiplying by an odd constant is a bijection, so terms stay
recoverable, and it carries every bit of the term into the top bits, so a directory on
the top bits of the hash spreads terms evenly whichever of their bits carry entropy
(terms below 2^22 collapsed into 1,024 buckets of the old FPSEG001 layout, which used the
term's own top bits; see legacy.py). One global order also lets merges stream: every
input yields its postings of a hash range, range by range (merge.py).

A file segment (FPSEG002) numbers its documents by ordinal (position in the sorted `docs`
array), so a posting needs `ord_bits = ceil(log2(num_docs))` bits for the document. The
top `bucket_bits` bits of the hash select a bucket (about BUCKET_POSTINGS postings each);
what is left of the hash, less the trailing zero bits every term of the segment has
(AcoustID terms keep their top 28 bits), followed by the ordinal, is the posting's value.
A bucket stores the deltas of its sorted values as varints with 2-bit length tags
(codec.py): ~3.25 bytes per posting for uniformly random 28-bit terms, ~2.5 for terms
below 2^22 at a million documents, less for terms shared by many documents. Two block
directories give each bucket's first posting and first byte.

A term with more than FREQUENT_POSTINGS postings in a segment is stored apart: a sorted
table of such hashes and their ordinals in fixed width, so a search binary-searches it
and reads only as many as the budget allows. Other terms are found by decoding their
bucket, so a search reads about BUCKET_POSTINGS postings per query term, whatever bits of
the terms carry entropy, and never more than `budget` of one term's postings (the
store's per-term cap, lowest ordinals first). Decoding works on all query terms at once
in NumPy (no Python loop per term or posting).

Deletes never rewrite a segment: `deleted` marks ordinals (tombstones) until a merge
drops them.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from acoustid_stack.index import codec
from acoustid_stack.index.durable import fsync_dir
from acoustid_stack.index.interfaces import FpindexError

# 2^27 documents per segment at most; shards split beyond that.
MAX_ORD_BITS = 27
MAX_SEGMENT_DOCS = 1 << MAX_ORD_BITS
MAGIC = b"FPSEG002"
HEADER = struct.Struct("<8sI")
# the header is written last, into this much room before the postings
_HEADER_ROOM = 4096
_ALIGN = 64
# `bucket_bits` is at most `ord_bits + _MAX_EXTRA_BITS`
_MAX_EXTRA_BITS = 8
# a term with more postings than this in a segment is stored apart from its bucket
FREQUENT_POSTINGS = 256
# buckets hold about this many postings (the directories cost ~4 bytes per bucket)
BUCKET_POSTINGS = 32
# the bijective mix; its inverse undoes it
MIX = np.uint32(0x9E3779B9)
UNMIX = np.uint32(pow(0x9E3779B9, -1, 1 << 32))
HASH_SPACE = 1 << 32

U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
Ordinals = NDArray[np.intp]
Postings = tuple[U32, U32]


class SegmentFileError(FpindexError):
    """A segment or deletion file is unreadable or fails its checksum.

    The message starts with the file's path: `<path>: <what is wrong>`.
    """


def mix(terms: NDArray[Any]) -> U32:
    hashes: U32 = np.asarray(terms, dtype=np.uint32) * MIX
    return hashes


def unmix(hashes: NDArray[Any]) -> U32:
    terms: U32 = np.asarray(hashes, dtype=np.uint32) * UNMIX
    return terms


def trailing_zeros(values: NDArray[Any]) -> int:
    """Trailing zero bits common to all `values` (32 for none or all zero)."""
    combined = int(np.bitwise_or.reduce(values)) if len(values) else 0
    return 32 if combined == 0 else (combined & -combined).bit_length() - 1


def sorted_unique(values: NDArray[Any]) -> NDArray[Any]:
    """np.unique by sorting (NumPy 2's hash-based unique is ~30x slower on 10^5 keys)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def unique_counts(values: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    values = np.sort(values)
    if not len(values):
        return values, np.empty(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    counts = np.diff(np.append(starts, len(values)))
    return values[starts], counts


def ord_bits_for(num_docs: int) -> int:
    if num_docs > MAX_SEGMENT_DOCS:
        raise SegmentFileError(f"a segment holds at most {MAX_SEGMENT_DOCS} documents")
    return max(1, (num_docs - 1).bit_length())


def gather_ranges(starts: NDArray[Any], lengths: NDArray[Any]) -> Ordinals:
    """Positions of the concatenated ranges [start, start + length) without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.intp)
    ends = np.cumsum(lengths, dtype=np.intp)
    shift = starts.astype(np.intp) - (ends - lengths)
    positions: Ordinals = np.arange(total, dtype=np.intp) + np.repeat(shift, lengths)
    return positions


def first_of_each(groups: NDArray[Any], budget: I64) -> NDArray[np.bool_]:
    """Which items to keep so that at most `budget[g]` of group g are (the first ones);
    `groups` is sorted. What is kept is taken from `budget`."""
    counts = np.bincount(groups, minlength=len(budget))
    kept = np.minimum(counts, budget)
    budget -= kept
    rank = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep: NDArray[np.bool_] = rank < kept[groups]
    return keep


class Segment(ABC):
    """Documents `docs` (sorted ids, with the version that wrote each) and their postings."""

    kind: ClassVar[str]

    def __init__(self, *, segment_id: int, docs: U32, versions: U64) -> None:
        self.segment_id = segment_id
        self.docs = docs
        self.versions = versions
        self.deleted = np.zeros(len(docs), dtype=np.bool_)
        self.num_deleted = 0

    @property
    def num_docs(self) -> int:
        return len(self.docs)

    @property
    def live_docs(self) -> int:
        return len(self.docs) - self.num_deleted

    @property
    @abstractmethod
    def num_postings(self) -> int: ...

    @property
    @abstractmethod
    def nbytes(self) -> int: ...

    @property
    @abstractmethod
    def trailing_zeros(self) -> int:
        """Trailing zero bits every term (and so every hash) of the segment has."""

    @abstractmethod
    def _match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        """(ordinals holding each query hash, deleted ones too; postings read per hash).

        Reads at most `budget[i]` postings for hash i (its lowest ordinals first) and
        takes what it read from `budget`.
        """

    @abstractmethod
    def common_counts(self, hashes: U32) -> I64:
        """Postings of each hash, for those with more than FREQUENT_POSTINGS (else 0 or
        their count): what a search needs to leave out terms that are too common."""

    @abstractmethod
    def postings_between(self, low: int, high: int) -> Postings:
        """(hashes, ords) of the postings with low <= hash < high in (hash, ordinal) order."""

    def decode(self) -> Postings:
        """(terms, ords) of every posting, in (hash, ordinal) order."""
        hashes, ords = self.postings_between(0, HASH_SPACE)
        return unmix(hashes), ords

    def match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        """Ordinals of live documents holding each of the distinct query `hashes`, and
        the postings read per hash (see `_match`)."""
        ords, read = self._match(hashes, budget)
        if self.num_deleted and len(ords):
            ords = ords[~self.deleted[ords]]
        return ords, read

    def find(self, ids: U32) -> Ordinals:
        """Ordinal of each id, -1 where the segment does not hold it (live or not)."""
        if not len(self.docs):
            return np.full(len(ids), -1, dtype=np.intp)
        pos = np.searchsorted(self.docs, ids)
        pos_clipped = np.minimum(pos, len(self.docs) - 1)
        found: Ordinals = np.where(self.docs[pos_clipped] == ids, pos_clipped, -1).astype(np.intp)
        return found

    def mark_deleted(self, ids: U32) -> bool:
        """Tombstone these ids if held and live; True when anything changed."""
        ords = self.find(ids)
        ords = ords[ords >= 0]
        if not len(ords):
            return False
        ords = ords[~self.deleted[ords]]
        if not len(ords):
            return False
        self.deleted[ords] = True
        self.num_deleted += len(sorted_unique(ords))
        return True

    def deleted_ordinals(self) -> U32:
        return np.flatnonzero(self.deleted).astype(np.uint32)

    def set_deleted_ordinals(self, ords: U32) -> None:
        self.deleted[:] = False
        self.deleted[ords] = True
        self.num_deleted = int(self.deleted.sum())


class MappedSegment(Segment):
    """A segment memory-mapped from one immutable file."""

    kind = "file"

    def __init__(
        self,
        *,
        segment_id: int,
        path: Path,
        docs: U32,
        versions: U64,
        keepalive: mmap.mmap | None,
    ) -> None:
        super().__init__(segment_id=segment_id, docs=docs, versions=versions)
        self.path = path
        self._keepalive = keepalive


@dataclass(frozen=True)
class Layout:
    """How a file segment splits a (hash, ordinal) posting into bucket and stored value."""

    ord_bits: int
    bucket_bits: int
    #: trailing zero bits of every hash, not stored
    shift: int

    @property
    def num_buckets(self) -> int:
        return 1 << self.bucket_bits

    @cached_property
    def shift_mask(self) -> np.uint32:
        return np.uint32((1 << self.shift) - 1)

    @cached_property
    def low_mask(self) -> np.uint32:
        """The hash bits below the bucket."""
        return np.uint32((1 << (32 - self.bucket_bits)) - 1)

    @cached_property
    def bucket_shift(self) -> np.uint32:
        return np.uint32(32 - self.bucket_bits)

    @cached_property
    def ord_mask(self) -> np.uint32:
        return np.uint32((1 << self.ord_bits) - 1)

    def bucket_of(self, hashes: U32) -> NDArray[np.intp]:
        return (hashes >> self.bucket_shift).astype(np.intp)

    def value_of(self, hashes: U32, ords: U32) -> U32:
        """The value a (hash, ordinal) posting is stored as in its bucket: the hash bits below
        the bucket, less the trailing zeros, then the ordinal (at most 32 bits)."""
        values = (hashes & self.low_mask) >> np.uint32(self.shift)
        values <<= np.uint32(self.ord_bits)
        values |= ords
        return values

    def hash_of(self, buckets: NDArray[np.uint32], values: U32) -> U32:
        hashes = (values >> np.uint32(self.ord_bits)) << np.uint32(self.shift)
        hashes |= buckets << self.bucket_shift
        return hashes

    def ord_of(self, values: U32) -> U32:
        return values & self.ord_mask

    @classmethod
    def choose(cls, *, num_docs: int, num_postings: int, shift: int) -> Layout:
        """About BUCKET_POSTINGS postings per bucket, and at least one bucket per document."""
        ord_bits = ord_bits_for(num_docs)
        per_bucket = max(num_postings >> ord_bits, 1) / BUCKET_POSTINGS
        extra = min(max(0, round(math.log2(per_bucket))), _MAX_EXTRA_BITS)
        bucket_bits = min(ord_bits + extra, 32)
        return cls(ord_bits, bucket_bits, min(shift, 32 - bucket_bits))


class FileSegment(MappedSegment):
    """An FPSEG002 segment file (`write` creates it, `open` maps it).

    Arrays: `data` (delta varints of the bucket postings, in bucket order) with `tags`
    (their lengths, 2 bits each); two directories, `base`/`rel` (first posting of each
    bucket) and `byte_base`/`byte_rel` (its first byte in `data`); the frequent terms
    `frequent` (sorted hashes), `frequent_starts` and `frequent_ords` (fixed width).
    """

    def __init__(
        self,
        *,
        segment_id: int,
        path: Path,
        docs: U32,
        versions: U64,
        layout: Layout,
        arrays: dict[str, NDArray[Any]],
        keepalive: mmap.mmap | None,
    ) -> None:
        super().__init__(
            segment_id=segment_id, path=path, docs=docs, versions=versions, keepalive=keepalive
        )
        self.layout = layout
        self.arrays = arrays
        self.data: codec.Bytes = arrays["data"]
        self._words: U32 = self.data.view("<u4")
        self.tags: codec.Bytes = arrays["tags"]
        self.frequent: U32 = arrays["frequent"]
        self.frequent_starts: U64 = arrays["frequent_starts"]
        self.frequent_ords: codec.Bytes = arrays["frequent_ords"]
        self._ord_width = codec.width_for(layout.ord_bits)
        self._bucket_postings = codec.directory_total(arrays["base"], arrays["rel"])
        self._count = self._bucket_postings + int(self.frequent_starts[-1])

    @property
    def num_postings(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays.values()))

    @property
    def trailing_zeros(self) -> int:
        return self.layout.shift

    def _starts(self, buckets: NDArray[Any]) -> tuple[I64, I64]:
        """(first posting, first byte) of each bucket."""
        arrays = self.arrays
        return (
            codec.directory_starts(arrays["base"], arrays["rel"], buckets),
            codec.directory_starts(arrays["byte_base"], arrays["byte_rel"], buckets),
        )

    def _frequent_ranges(self, hashes: U32) -> tuple[NDArray[np.bool_], I64, I64]:
        """(which hashes are frequent terms, their ranges in `frequent_ords`)."""
        if not len(self.frequent):
            empty = np.empty(0, dtype=np.int64)
            return np.zeros(len(hashes), dtype=np.bool_), empty, empty
        index = np.minimum(np.searchsorted(self.frequent, hashes), len(self.frequent) - 1)
        frequent = self.frequent[index] == hashes
        index = index[frequent]
        return (
            frequent,
            self.frequent_starts[index].astype(np.int64),
            self.frequent_starts[index + 1].astype(np.int64),
        )

    def common_counts(self, hashes: U32) -> I64:
        counts = np.zeros(len(hashes), dtype=np.int64)
        frequent, starts, ends = self._frequent_ranges(hashes)
        counts[frequent] = ends - starts
        return counts

    def _match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        layout = self.layout
        count = len(hashes)
        read = np.zeros(count, dtype=np.int64)
        if not self._count or not count:
            return np.empty(0, dtype=np.intp), read
        frequent, starts, ends = self._frequent_ranges(hashes)
        parts = []
        if len(starts):
            # a frequent term's postings are read up to its budget, lowest ordinals first
            taken = np.minimum(ends - starts, budget[frequent])
            budget[frequent] -= taken
            read[frequent] = taken
            positions = gather_ranges(starts, taken)
            parts.append(codec.take(self.frequent_ords, self._ord_width, positions))
        buckets = (hashes >> layout.bucket_shift).astype(np.intp)
        arrays = self.arrays
        bounds = codec.directory_starts(
            arrays["base"], arrays["rel"], np.concatenate((buckets, buckets + 1))
        )
        byte_starts = codec.directory_starts(arrays["byte_base"], arrays["byte_rel"], buckets)
        lengths = bounds[count:] - bounds[:count]
        lengths[frequent | (budget == 0)] = 0  # a frequent term has none in its bucket
        if layout.shift:  # a hash without the segment's trailing zeros is not in it
            lengths[(hashes & layout.shift_mask) != 0] = 0
        values = codec.delta_decode(self._words, self.tags, bounds[:count], lengths, byte_starts)
        read += lengths
        keys = (hashes & layout.low_mask) >> np.uint32(layout.shift)
        term = np.repeat(np.arange(count), lengths)
        hit = np.flatnonzero((values >> np.uint32(layout.ord_bits)) == keys[term])
        if (budget < FREQUENT_POSTINGS).any():
            hit = hit[first_of_each(term[hit], budget)]
        else:  # no term has more postings in its bucket than its budget
            budget -= np.bincount(term[hit], minlength=count)
        parts.append(values[hit] & layout.ord_mask)
        ords: Ordinals = np.concatenate(parts).astype(np.intp)
        return ords, read

    def postings_between(self, low: int, high: int) -> Postings:
        layout = self.layout
        step = 32 - layout.bucket_bits
        first_bucket = low >> step
        end_bucket = min((high + (1 << step) - 1) >> step, layout.num_buckets)
        starts, byte_starts = self._starts(np.arange(first_bucket, end_bucket + 1))
        lengths = np.diff(starts)
        values = codec.delta_decode(self._words, self.tags, starts[:-1], lengths, byte_starts[:-1])
        buckets = np.repeat(np.arange(first_bucket, end_bucket, dtype=np.uint32), lengths)
        hashes = layout.hash_of(buckets, values)
        del buckets
        ords = layout.ord_of(values)
        del values
        first = int(np.searchsorted(self.frequent, low))
        stop = (
            len(self.frequent) if high >= HASH_SPACE else int(np.searchsorted(self.frequent, high))
        )
        if stop > first:
            spans = np.diff(self.frequent_starts[first : stop + 1]).astype(np.intp)
            hashes = np.concatenate((hashes, np.repeat(self.frequent[first:stop], spans)))
            ranges = self.frequent_starts[[first, stop]].tolist()
            ords = np.concatenate(
                (ords, codec.decode(self.frequent_ords, self._ord_width, *ranges))
            )
        keys = (hashes.astype(np.uint64) << np.uint64(32)) | ords
        del hashes, ords
        if (low | min(high, HASH_SPACE)) % (1 << step):  # the range cuts a bucket
            inside = keys >= np.uint64(low) << np.uint64(32)
            if high < HASH_SPACE:
                inside &= keys < np.uint64(high) << np.uint64(32)
            keys = keys[inside]
        keys.sort()
        return (keys >> np.uint64(32)).astype(np.uint32), keys.astype(np.uint32)

    @classmethod
    def write(
        cls,
        path: Path,
        *,
        segment_id: int,
        docs: U32,
        versions: U64,
        chunks: Iterable[Postings],
        num_postings: int,
        trailing_zeros: int,
    ) -> FileSegment:
        """Write + fsync `path` from `chunks` of (hashes, ords), consecutive in (hash,
        ordinal) order, one chunk at a time; map it back. A term's postings must be in one
        chunk (merged_chunks cuts the hash space) to be stored apart when it is frequent.

        `num_postings` (an upper bound is fine) and `trailing_zeros` (a lower bound) choose
        the layout.
        """
        layout = Layout.choose(num_docs=len(docs), num_postings=num_postings, shift=trailing_zeros)
        writer = _Writer(path, layout)
        try:
            for hashes, ords in chunks:
                writer.add(hashes, ords)
            writer.finish(segment_id, {"docs": docs, "versions": versions})
        finally:
            writer.close()
        return cls.open(path)

    @classmethod
    def open(cls, path: Path, *, verify: bool = False) -> FileSegment:
        """Map a segment file; `verify` checks every array's CRC32 (restore does)."""
        header, arrays, mm = map_segment_file(path, MAGIC, data_start=0, verify=verify)
        try:
            layout = Layout(
                int(header["ord_bits"]), int(header["bucket_bits"]), int(header["shift"])
            )
            segment = cls(
                segment_id=int(header["segment_id"]),
                path=path,
                docs=arrays["docs"],
                versions=arrays["versions"],
                layout=layout,
                arrays=arrays,
                keepalive=mm,
            )
            fits = (
                len(arrays["rel"]) == layout.num_buckets + 1
                and len(arrays["byte_rel"]) == layout.num_buckets + 1
                and len(segment.data)
                == (size := codec.directory_total(arrays["byte_base"], arrays["byte_rel"]))
                + codec.varint_padding(size)
                and len(segment.tags) == (segment._bucket_postings + 3) // 4
                and len(segment.frequent_starts) == len(segment.frequent) + 1
                and len(segment.frequent_ords)
                == int(segment.frequent_starts[-1]) * segment._ord_width
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise SegmentFileError(f"{path}: the segment header is damaged: {exc}") from exc
        if not fits:
            raise SegmentFileError(f"{path}: the segment directory does not fit its postings")
        return segment


class _Stream:
    """An array written in pieces to a file, with its CRC32."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w+b")
        self.crc = 0
        self.size = 0

    def write(self, array: NDArray[Any]) -> None:
        data = _bytes(array)
        self.file.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)


class _Writer:
    """Streams chunks of postings into a segment file (FileSegment.write).

    Bucket postings go to the file as they come; their tags and the frequent terms'
    ordinals to side files that are appended at the end; only the two directories'
    counts (4 bytes per bucket each) are held for the whole segment.
    """

    def __init__(self, path: Path, layout: Layout) -> None:
        self.path = path
        self.layout = layout
        self.tmp = path.with_suffix(".tmp")
        self.data = _Stream(self.tmp)
        self.data.file.seek(_HEADER_ROOM)
        self.tags = _Stream(path.with_suffix(".tags.tmp"))
        self.frequent_ords = _Stream(path.with_suffix(".frequent.tmp"))
        self.postings = np.zeros(layout.num_buckets, dtype=np.uint32)
        self.bytes = np.zeros(layout.num_buckets, dtype=np.uint32)
        self.frequent: list[U32] = []
        self.frequent_counts: list[NDArray[np.intp]] = []
        self.last_bucket = -1
        self.last_value = np.uint32(0)
        self.pending_lengths = np.empty(0, dtype=np.uint8)

    def add(self, hashes: U32, ords: U32) -> None:
        if not len(hashes):
            return
        layout = self.layout
        runs = np.flatnonzero(np.concatenate(([True], hashes[1:] != hashes[:-1])))
        run_lengths = np.diff(np.append(runs, len(hashes)))
        frequent = run_lengths > FREQUENT_POSTINGS
        if frequent.any():
            self.frequent.append(hashes[runs[frequent]])
            self.frequent_counts.append(run_lengths[frequent])
            in_frequent = np.repeat(frequent, run_lengths)
            self.frequent_ords.write(
                codec.encode(ords[in_frequent], codec.width_for(layout.ord_bits))
            )
            hashes, ords = hashes[~in_frequent], ords[~in_frequent]
            if not len(hashes):
                return
        buckets = layout.bucket_of(hashes)
        values = layout.value_of(hashes, ords)
        del hashes, ords
        # deltas restart at each bucket (a bucket may continue from the last chunk)
        starts = np.concatenate(([buckets[0] != self.last_bucket], buckets[1:] != buckets[:-1]))
        deltas = values - np.concatenate(([self.last_value], values[:-1]))
        deltas[starts] = values[starts]
        self.last_bucket, self.last_value = int(buckets[-1]), values[-1]
        del values, starts
        lengths = codec.varint_lengths(deltas)
        self.data.write(codec.varint_encode(deltas, lengths))
        del deltas
        offset = int(buckets[0])
        local = buckets - offset
        span = slice(offset, offset + int(local[-1]) + 1)
        self.postings[span] += np.bincount(local).astype(np.uint32)
        self.bytes[span] += np.bincount(local, weights=lengths).astype(np.uint32)
        del local, buckets
        lengths = np.concatenate((self.pending_lengths, lengths))
        whole = len(lengths) // 4 * 4
        self.tags.write(codec.pack_lengths(lengths[:whole]))
        self.pending_lengths = lengths[whole:]

    def finish(self, segment_id: int, arrays: dict[str, NDArray[Any]]) -> None:
        self.data.write(np.zeros(codec.varint_padding(self.data.size), dtype=np.uint8))
        self.tags.write(codec.pack_lengths(self.pending_lengths))
        refs = {"data": _ref(_HEADER_ROOM, np.dtype(np.uint8), self.data.size, self.data.crc)}
        position = _aligned(_HEADER_ROOM + self.data.size)
        f = self.data.file
        for name, stream in (("tags", self.tags), ("frequent_ords", self.frequent_ords)):
            f.seek(position)
            stream.file.seek(0)
            shutil.copyfileobj(stream.file, f)
            refs[name] = _ref(position, np.dtype(np.uint8), stream.size, stream.crc)
            position = _aligned(position + stream.size)
        counts = (
            np.concatenate(self.frequent_counts) if self.frequent_counts else np.empty(0, np.intp)
        )
        frequent_starts = np.zeros(len(counts) + 1, dtype=np.uint64)
        np.cumsum(counts, out=frequent_starts[1:])
        base, rel = codec.encode_directory(self.postings)
        self.postings = np.empty(0, dtype=np.uint32)
        byte_base, byte_rel = codec.encode_directory(self.bytes)
        self.bytes = np.empty(0, dtype=np.uint32)
        rest: dict[str, NDArray[Any]] = {
            **arrays,
            "base": base,
            "rel": rel,
            "byte_base": byte_base,
            "byte_rel": byte_rel,
            "frequent": np.concatenate(self.frequent) if self.frequent else np.empty(0, np.uint32),
            "frequent_starts": frequent_starts,
        }
        for name, array in rest.items():
            f.seek(position)
            f.write(_bytes(array))
            refs[name] = _ref(position, array.dtype, len(array), zlib.crc32(_bytes(array)))
            position = _aligned(position + array.nbytes)
        f.truncate(position)
        layout = self.layout
        header = json.dumps(
            {
                "segment_id": segment_id,
                "ord_bits": layout.ord_bits,
                "bucket_bits": layout.bucket_bits,
                "shift": layout.shift,
                "arrays": refs,
            }
        ).encode()
        if HEADER.size + len(header) > _HEADER_ROOM:
            raise SegmentFileError(f"{self.path}: the segment header does not fit")
        f.seek(0)
        f.write(HEADER.pack(MAGIC, len(header)) + header)
        f.flush()
        os.fsync(f.fileno())
        self.tmp.rename(self.path)
        fsync_dir(self.path.parent)

    def close(self) -> None:
        for stream in (self.data, self.tags, self.frequent_ords):
            stream.file.close()
        for stream in (self.tags, self.frequent_ords):
            stream.path.unlink(missing_ok=True)
        self.tmp.unlink(missing_ok=True)


def map_segment_file(
    path: Path, magic: bytes, *, data_start: int | None, verify: bool
) -> tuple[dict[str, Any], dict[str, NDArray[Any]], mmap.mmap]:
    """(header, arrays, map) of a segment file with `magic`; array offsets count from
    `data_start` (None: the first aligned position after the header)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise SegmentFileError(f"{path}: cannot read the segment: {exc.strerror}") from exc
    if mm is None or size < HEADER.size:
        raise SegmentFileError(f"{path}: the segment is truncated")
    found, header_len = HEADER.unpack_from(mm, 0)
    if found != magic:
        raise SegmentFileError(f"{path}: not a segment file")
    try:
        header = json.loads(mm[HEADER.size : HEADER.size + header_len])
        start = _aligned(HEADER.size + header_len) if data_start is None else data_start
        arrays: dict[str, NDArray[Any]] = {}
        for name, raw in header["arrays"].items():
            ref = _ArrayRef(**raw)
            arrays[name] = np.frombuffer(
                mm, dtype=np.dtype(ref.dtype), count=ref.count, offset=start + ref.offset
            )
            if verify and zlib.crc32(_bytes(arrays[name])) != ref.crc32:
                raise SegmentFileError(f"{path}: segment array {name} fails its checksum")
    except (KeyError, ValueError, TypeError) as exc:
        raise SegmentFileError(f"{path}: the segment header is damaged: {exc}") from exc
    mm.madvise(mmap.MADV_RANDOM)
    return header, arrays, mm


def segment_magic(path: Path) -> bytes:
    """The first 8 bytes of a segment file (its format)."""
    try:
        with path.open("rb") as f:
            return f.read(len(MAGIC))
    except OSError as exc:
        raise SegmentFileError(f"{path}: cannot read the segment: {exc.strerror}") from exc


@dataclass(frozen=True)
class _ArrayRef:
    offset: int
    dtype: str
    count: int
    crc32: int


def _ref(offset: int, dtype: np.dtype[Any], count: int, crc32: int) -> dict[str, Any]:
    return {"offset": offset, "dtype": dtype.str, "count": count, "crc32": crc32}


def _aligned(position: int) -> int:
    return (position + _ALIGN - 1) // _ALIGN * _ALIGN


def _bytes(array: NDArray[Any]) -> memoryview:
    return np.ascontiguousarray(array).data.cast("B")
