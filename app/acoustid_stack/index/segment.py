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
top `bucket_bits` bits of the hash select a bucket of the directory; what is left of the
hash, less the trailing zero bits every term of the segment has (AcoustID terms keep
their top 28 bits), is packed with the ordinal into one fixed-width integer of 1 to 4
bytes (codec.py). `bucket_bits` is chosen per segment, from `ord_bits` to `ord_bits + 8`,
for the smallest file: AcoustID terms take 3 bytes per posting with 16 buckets per
document, random 32-bit terms 4 bytes with one bucket per document.

A search reads each query term's bucket whole when it holds at most SCAN_POSTINGS
postings (mixed hashes keep nearly all of them that small: ~8 postings for AcoustID
terms, ~120 for random ones); a longer bucket (a common term in it) is narrowed to the
term's own postings by a vectorised binary search. Either way it reads at most `budget`
postings per term (the store's per-term cap, lowest ordinals first), so no term layout
makes a search scan a large part of the index.

Deletes never rewrite a segment: `deleted` marks ordinals (tombstones) until a merge
drops them.
"""

from __future__ import annotations

import json
import mmap
import os
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
# `bucket_bits` is tried up to `ord_bits + _MAX_EXTRA_BITS`
_MAX_EXTRA_BITS = 8
# a bucket holding more postings than this is binary-searched, not read whole
SCAN_POSTINGS = 256
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
    def value_bits(self) -> int:
        return 32 - self.bucket_bits - self.shift + self.ord_bits

    @cached_property
    def width(self) -> int:
        return codec.width_for(self.value_bits)

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
        """The stored value of (hash, ordinal) postings (< 2^value_bits, so uint32 holds it)."""
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
        """The layout of the smallest file (postings + directory); ties go to more buckets."""
        ord_bits = ord_bits_for(num_docs)
        best: tuple[int, Layout] | None = None
        for bucket_bits in range(ord_bits, min(ord_bits + _MAX_EXTRA_BITS, 32) + 1):
            layout = cls(ord_bits, bucket_bits, min(shift, 32 - bucket_bits))
            size = num_postings * layout.width + (2 << bucket_bits)
            if best is None or size <= best[0]:
                best = (size, layout)
        assert best is not None
        return best[1]


class FileSegment(MappedSegment):
    """An FPSEG002 segment file (`write` creates it, `open` maps it)."""

    def __init__(
        self,
        *,
        segment_id: int,
        path: Path,
        docs: U32,
        versions: U64,
        layout: Layout,
        postings: codec.Bytes,
        base: U64,
        rel: NDArray[Any],
        keepalive: mmap.mmap | None,
    ) -> None:
        super().__init__(
            segment_id=segment_id, path=path, docs=docs, versions=versions, keepalive=keepalive
        )
        self.layout = layout
        self.postings = postings
        self.base = base
        self.rel = rel
        self._count = len(postings) // layout.width

    @property
    def num_postings(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        arrays = (self.docs, self.versions, self.postings, self.base, self.rel)
        return int(sum(a.nbytes for a in arrays))

    @property
    def trailing_zeros(self) -> int:
        return self.layout.shift

    def _starts(self, buckets: NDArray[Any]) -> I64:
        return codec.directory_starts(self.base, self.rel, buckets)

    def _values(self, positions: NDArray[Any]) -> U32:
        return codec.take(self.postings, self.layout.width, positions)

    def _lower_bounds(self, low: I64, high: I64, targets: I64) -> I64:
        """First position in [low, high) whose value is >= target, for each range at once."""
        low, high = low.copy(), high.copy()
        last = self._count - 1
        while True:
            active = low < high
            if not active.any():
                return low
            middle = (low + high) >> 1
            below = active & (self._values(np.minimum(middle, last)).astype(np.int64) < targets)
            low = np.where(below, middle + 1, low)
            high = np.where(active & ~below, middle, high)

    def _match(self, hashes: U32, budget: I64) -> tuple[Ordinals, I64]:
        layout = self.layout
        count = len(hashes)
        if not self._count or not count:
            return np.empty(0, dtype=np.intp), np.zeros(count, dtype=np.int64)
        buckets = (hashes >> layout.bucket_shift).astype(np.intp)
        bounds = self._starts(np.concatenate((buckets, buckets + 1)))
        starts, ends = bounds[:count], bounds[count:]
        if layout.shift:  # a hash without the segment's trailing zeros is not in it
            ends = np.where((hashes & layout.shift_mask) == 0, ends, starts)
        keys = (hashes & layout.low_mask) >> np.uint32(layout.shift)
        # a bucket too long to read whole (a common term in it, or more postings than
        # the budget) is narrowed to the term's postings by a binary search, then capped
        long = np.flatnonzero((ends - starts > SCAN_POSTINGS) | (ends - starts > budget))
        if len(long):
            first = keys[long].astype(np.int64) << layout.ord_bits
            found = self._lower_bounds(
                np.concatenate((starts[long], starts[long])),
                np.concatenate((ends[long], ends[long])),
                np.concatenate((first, first + (1 << layout.ord_bits))),
            )
            starts[long] = found[: len(long)]
            ends[long] = np.minimum(found[len(long) :], starts[long] + budget[long])
        read = ends - starts
        budget -= read
        values = self._values(gather_ranges(starts, read))
        hit = (values >> np.uint32(layout.ord_bits)) == np.repeat(keys, read)
        ords: Ordinals = (values[hit] & layout.ord_mask).astype(np.intp)
        return ords, read

    def postings_between(self, low: int, high: int) -> Postings:
        layout = self.layout
        step = 32 - layout.bucket_bits
        first_bucket = low >> step
        end_bucket = min((high + (1 << step) - 1) >> step, layout.num_buckets)
        starts = self._starts(np.arange(first_bucket, end_bucket + 1))
        values = codec.decode(self.postings, layout.width, int(starts[0]), int(starts[-1]))
        buckets = np.repeat(np.arange(first_bucket, end_bucket, dtype=np.uint32), np.diff(starts))
        hashes = layout.hash_of(buckets, values)
        del buckets
        ords = layout.ord_of(values)
        if (low | min(high, HASH_SPACE)) % (1 << step):  # the range cuts a bucket
            inside = (hashes >= low) & (hashes.astype(np.uint64) < high)
            hashes, ords = hashes[inside], ords[inside]
        return hashes, ords

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
        ordinal) order, one chunk at a time; map it back.

        `num_postings` (an upper bound is fine) and `trailing_zeros` (a lower bound) choose
        the layout.
        """
        layout = Layout.choose(num_docs=len(docs), num_postings=num_postings, shift=trailing_zeros)
        counts = np.zeros(layout.num_buckets, dtype=np.uint32)
        refs: dict[str, dict[str, Any]] = {}
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.seek(_HEADER_ROOM)
            crc = 0
            written = 0
            for hashes, ords in chunks:
                if not len(hashes):
                    continue
                buckets = layout.bucket_of(hashes)
                offset = int(buckets[0])
                local = np.bincount(buckets - offset)
                counts[offset : offset + len(local)] += local.astype(np.uint32)
                data = codec.encode(layout.value_of(hashes, ords), layout.width)
                f.write(_bytes(data))
                crc = zlib.crc32(_bytes(data), crc)
                written += len(hashes)
            position = _HEADER_ROOM
            refs["postings"] = _ref(position, np.dtype(np.uint8), written * layout.width, crc)
            position = _aligned(position + written * layout.width)
            base, rel = codec.encode_directory(counts)
            del counts
            rest: dict[str, NDArray[Any]] = {
                "docs": docs,
                "versions": versions,
                "base": base,
                "rel": rel,
            }
            for name, array in rest.items():
                f.seek(position)
                f.write(_bytes(array))
                refs[name] = _ref(position, array.dtype, len(array), zlib.crc32(_bytes(array)))
                position = _aligned(position + array.nbytes)
            f.truncate(position)
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
                raise SegmentFileError(f"{path}: the segment header does not fit")
            f.seek(0)
            f.write(HEADER.pack(MAGIC, len(header)) + header)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(path)
        fsync_dir(path.parent)
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
                postings=arrays["postings"],
                base=arrays["base"],
                rel=arrays["rel"],
                keepalive=mm,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SegmentFileError(f"{path}: the segment header is damaged: {exc}") from exc
        if (
            len(segment.rel) != layout.num_buckets + 1
            or int(segment.rel[-1]) + int(segment.base[-1]) != segment.num_postings
        ):
            raise SegmentFileError(f"{path}: the segment directory does not fit its postings")
        return segment


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
