"""Byte-aligned integer codecs of file segments (segment.py), vectorised with NumPy.

* Delta + varint: a bucket's sorted posting values as deltas, each in 1 to 4 bytes, with
  the lengths as 2-bit tags in a separate array (the StreamVByte layout). A decode takes
  many runs (buckets) at once: tags give every delta's length, a cumulative sum its byte
  offset, two uint32 loads and a shift its value, a segmented cumulative sum the values.
  NumPy releases the GIL in these array operations.
* Fixed width: ordinals of frequent terms in 1 to 4 bytes, read by position.
* Block directories: a bucket's start (posting or byte) is one uint64 base per `BLOCK`
  buckets plus a uint16 offset per bucket (uint32 when a block holds 2^16 or more).

Why our own codec: libstreamvbyte and pyfastpfor are on PyPI, but neither is maintained
since 2024 and both decode one whole array per call, where a search needs a few hundred
short runs scattered over a memory-mapped file decoded in one go.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

BLOCK_BITS = 8
BLOCK = 1 << BLOCK_BITS
# the directory is built in slices of this many buckets so its temporaries stay small
_SLICE = 1 << 16

Bytes = NDArray[np.uint8]


def width_for(bits: int) -> int:
    """Bytes of a fixed-width integer holding `bits` bits (1 to 4)."""
    if not 0 <= bits <= 32:
        raise ValueError(f"cannot store {bits}-bit postings")
    return max(1, -(-bits // 8))


def encode(values: NDArray[Any], width: int) -> Bytes:
    """`values` (< 2^(8 * width)) as `width`-byte little-endian integers."""
    wide = np.asarray(values, dtype="<u4")
    out: Bytes = wide.view(np.uint8).reshape(-1, 4)[:, :width].reshape(-1).copy()
    return out


def take(data: Bytes, width: int, positions: NDArray[Any]) -> NDArray[np.uint32]:
    """The integers at `positions` of an `encode`d array."""
    if width in (1, 2, 4):
        typed: NDArray[np.uint32] = data.view(f"<u{width}")[positions].astype(np.uint32)
        return typed
    first = np.asarray(positions, dtype=np.intp) * width
    values = data[first].astype(np.uint32)
    for byte in range(1, width):
        values |= data[first + byte].astype(np.uint32) << np.uint32(8 * byte)
    return values


def decode(data: Bytes, width: int, start: int = 0, stop: int | None = None) -> NDArray[np.uint32]:
    """The integers [start, stop) of an `encode`d array."""
    count = len(data) // width
    stop = count if stop is None else stop
    raw = data[start * width : stop * width]
    if width == 4:
        return raw.view("<u4").astype(np.uint32)
    padded = np.zeros((stop - start, 4), dtype=np.uint8)
    padded[:, :width] = raw.reshape(-1, width)
    return padded.view("<u4").reshape(-1).astype(np.uint32, copy=False)


def encode_directory(counts: NDArray[Any]) -> tuple[NDArray[np.uint64], NDArray[Any]]:
    """(base, rel) of buckets holding `counts` postings each; see `directory_starts`.

    `rel` is uint16 when no block of `BLOCK` buckets holds 2^16 postings or more.
    """
    n = len(counts)
    wide = bool(n) and int(
        np.add.reduceat(counts, np.arange(0, n, BLOCK), dtype=np.int64).max()
    ) >= (1 << 16)
    base = np.empty((n >> BLOCK_BITS) + 1, dtype=np.uint64)
    rel = np.empty(n + 1, dtype=np.uint32 if wide else np.uint16)
    total = 0
    for first in range(0, n + 1, _SLICE):
        piece = counts[first : first + _SLICE].astype(np.int64)
        starts = total + np.cumsum(piece) - piece
        total += int(piece.sum())
        if first + _SLICE > n:
            starts = np.append(starts, total)  # the end of the last bucket
        index = np.arange(first, first + len(starts))
        base[index[::BLOCK] >> BLOCK_BITS] = starts[::BLOCK]
        rel[index] = starts - base[index >> BLOCK_BITS].astype(np.int64)
    return base, rel


def directory_total(base: NDArray[np.uint64], rel: NDArray[Any]) -> int:
    """The end of the last bucket: what the buckets hold together."""
    return int(base[-1]) + int(rel[-1])


def directory_starts(
    base: NDArray[np.uint64], rel: NDArray[Any], buckets: NDArray[Any]
) -> NDArray[np.int64]:
    """Position of the first posting of each bucket (`len(rel) - 1` for the end)."""
    starts: NDArray[np.int64] = base[buckets >> BLOCK_BITS].astype(np.int64) + rel[buckets]
    return starts


# --- delta + varint: the postings of a bucket ----------------------------------------------
_VARINT_MASKS = np.array([0xFF, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF], dtype=np.uint32)


def varint_lengths(values: NDArray[np.uint32]) -> Bytes:
    """Bytes (1 to 4) of each value's varint."""
    lengths: Bytes = (values >= 1 << 8).astype(np.uint8) + 1
    lengths += values >= 1 << 16
    lengths += values >= 1 << 24
    return lengths


def varint_encode(values: NDArray[np.uint32], lengths: Bytes) -> Bytes:
    """The low `lengths[i]` bytes of each value, little-endian, one after the other."""
    rows = np.asarray(values, dtype="<u4").view(np.uint8).reshape(-1, 4)
    data: Bytes = rows[np.arange(4) < lengths[:, None]]
    return data


def pack_lengths(lengths: Bytes) -> Bytes:
    """Varint lengths as 2-bit tags, 4 per byte (the last byte padded)."""
    padded = np.zeros((len(lengths) + 3) // 4 * 4, dtype=np.uint8)
    padded[: len(lengths)] = lengths - 1
    quads = padded.reshape(-1, 4)
    tags = quads[:, 0] | (quads[:, 1] << 2) | (quads[:, 2] << 4) | (quads[:, 3] << 6)
    return tags.astype(np.uint8)


def unpack_lengths(tags: Bytes, positions: NDArray[np.intp]) -> NDArray[np.intp]:
    """The varint lengths of the values at `positions` from `pack_lengths` tags."""
    shifts = ((positions & 3) << 1).astype(np.uint8)
    lengths: NDArray[np.intp] = ((tags[positions >> 2] >> shifts) & 3).astype(np.intp) + 1
    return lengths


def varint_padding(size: int) -> int:
    """Spare bytes after `size` bytes of varints: the data is read as whole uint32 words,
    two from a varint's word on."""
    return 4 + (-size) % 4


def varint_take(
    words: NDArray[np.uint32], offsets: NDArray[np.intp], lengths: NDArray[np.intp]
) -> NDArray[np.uint32]:
    """The varints of `lengths` bytes at byte `offsets` of padded data viewed as `words`."""
    index = offsets >> 2
    pairs = words[index].astype(np.uint64)
    pairs |= words[index + 1].astype(np.uint64) << np.uint64(32)
    pairs >>= ((offsets & 3) << 3).astype(np.uint64)
    values: NDArray[np.uint32] = pairs.astype(np.uint32)
    values &= _VARINT_MASKS[lengths - 1]
    return values


def delta_decode(
    words: NDArray[np.uint32],
    tags: Bytes,
    starts: NDArray[Any],
    counts: NDArray[Any],
    offsets: NDArray[Any],
) -> NDArray[np.uint32]:
    """The values of delta-coded runs, concatenated: run i holds `counts[i]` values from
    position `starts[i]` (its tags), its bytes from `offsets[i]` of the padded data viewed
    as `words`, its first delta from 0."""
    counts = counts.astype(np.intp, copy=False)
    run_ends = np.cumsum(counts)
    total = int(run_ends[-1]) if len(run_ends) else 0
    if not total:
        return np.empty(0, dtype=np.uint32)
    run_firsts = np.minimum(run_ends - counts, total - 1)
    shift = starts.astype(np.intp) - (run_ends - counts)
    positions = np.arange(total, dtype=np.intp) + np.repeat(shift, counts)
    lengths = unpack_lengths(tags, positions)
    before = np.cumsum(lengths) - lengths
    byte_offsets = before + np.repeat(offsets.astype(np.intp) - before[run_firsts], counts)
    deltas = varint_take(words, byte_offsets, lengths)
    sums = np.cumsum(deltas, dtype=np.uint64)
    sums -= np.repeat(sums[run_firsts] - deltas[run_firsts], counts)
    values: NDArray[np.uint32] = sums.astype(np.uint32)
    return values
