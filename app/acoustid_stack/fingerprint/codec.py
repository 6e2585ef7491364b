"""The compressed fingerprint string clients send (`fpcalc`'s output), byte-compatible with
chromaprint's `chromaprint_encode_fingerprint` / `chromaprint_decode_fingerprint` (base64 on).

Layout (reference §2.1): 4 header bytes (algorithm, 24-bit big-endian hash count), then for
each hash XORed with its predecessor the 1-based positions of its set bits as deltas, ending
with 0, bit-packed 3 bits per value (7 = "see the exception stream"), then the exception stream
(delta − 7) packed 5 bits per value; URL-safe base64 without padding.

Decoding is exactly as lenient as libchromaprint 1.5 (tests compare both on valid and garbage
input): bytes outside the URL-safe alphabet (`+`, `/`, `=`, whitespace, …) decode as 0, a
trailing single character is ignored, trailing bytes after the streams are ignored, and bit
positions past 32 wrap modulo 32 and are OR-ed into their hash as the C code does on x86.
"""

from __future__ import annotations

import binascii
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from acoustid_stack.fingerprint.hashes import Int32Array, UInt32Array, as_uint32

#: chromaprint's algorithm ids: TEST1=0, TEST2=1 (fpcalc's default), TEST3=2, TEST4=3, TEST5=4.
DEFAULT_ALGORITHM = 1
#: The header stores the hash count in 24 bits.
MAX_HASHES = 2**24 - 1

_HEADER_SIZE = 4
_NORMAL_BITS = 3
_EXCEPTION_BITS = 5
_MAX_NORMAL_VALUE = 7
_HASH_BITS = 32

_URLSAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# One pass maps the URL-safe alphabet onto the standard one (so binascii's C decoder does the
# work) and every other byte onto "A" (value 0), which is how chromaprint treats them.
_LENIENT_BASE64 = bytes(
    _STANDARD[_URLSAFE.index(byte)] if byte in _URLSAFE else ord("A") for byte in range(256)
)


class InvalidFingerprint(ValueError):
    """The input is not a compressed fingerprint; the message says why (for logs and the CLI)."""


class Fingerprint(NamedTuple):
    """A decoded fingerprint: chromaprint algorithm id (0–255) and the hashes as `uint32`."""

    algorithm: int
    hashes: UInt32Array


def decode_fingerprint(data: str | bytes, *, max_hashes: int = MAX_HASHES) -> Fingerprint:
    """Decode a compressed base64 fingerprint exactly as libchromaprint does.

    `str` input is taken as its UTF-8 bytes (non-ASCII characters are outside the alphabet
    and decode as zeros, as they would in C). Raises InvalidFingerprint, and nothing else,
    for any input libchromaprint rejects or that is neither str nor bytes, and for one whose
    header announces more than `max_hashes` hashes (checked before the costly unpacking).
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise InvalidFingerprint(f"fingerprint must be str or bytes, not {type(data).__name__}")
    packed = _lenient_base64_decode(raw)
    if len(packed) < _HEADER_SIZE:
        raise InvalidFingerprint("fingerprint is shorter than its 4-byte header")
    algorithm = packed[0]
    count = int.from_bytes(packed[1:_HEADER_SIZE], "big")
    if count > max_hashes:
        raise InvalidFingerprint(f"fingerprint holds {count} hashes, at most {max_hashes} allowed")
    body = np.frombuffer(packed, dtype=np.uint8, offset=_HEADER_SIZE)

    normal = _unpack(body, _NORMAL_BITS)
    ends = np.flatnonzero(normal == 0)
    if count == 0:
        # chromaprint only accepts "no hashes" when the stream holds no terminator at all,
        # and then still checks the exception stream of the whole tail
        if ends.size:
            raise InvalidFingerprint("fingerprint says 0 hashes but its data holds some")
    elif ends.size < count:
        raise InvalidFingerprint(f"fingerprint is truncated: {count} hashes announced")
    else:
        normal = normal[: ends[count - 1] + 1]

    escaped = normal == _MAX_NORMAL_VALUE
    exceptions_at = _HEADER_SIZE + _packed_size(normal.size, _NORMAL_BITS)
    num_exceptions = int(np.count_nonzero(escaped))
    if len(packed) < exceptions_at + _packed_size(num_exceptions, _EXCEPTION_BITS):
        raise InvalidFingerprint("fingerprint is truncated in its exception stream")
    deltas = normal.astype(np.int32)
    if num_exceptions:
        exceptions = _unpack(body[exceptions_at - _HEADER_SIZE :], _EXCEPTION_BITS)
        deltas[escaped] += exceptions[:num_exceptions]
    return Fingerprint(algorithm, _rebuild_hashes(deltas, count))


def decode_api_fingerprint(data: str | bytes, *, max_hashes: int = MAX_HASHES) -> Int32Array:
    """Validate a fingerprint as `/v2/lookup` and `/v2/submit` do (upstream error 3).

    Returns the hashes as a signed `int32` array, the form PostgreSQL's `int4[]` stores.
    Raises InvalidFingerprint unless it decodes, uses algorithm 1 and holds from one hash to
    `max_hashes`.
    """
    fingerprint = decode_fingerprint(data, max_hashes=max_hashes)
    if fingerprint.algorithm != DEFAULT_ALGORITHM:
        raise InvalidFingerprint(
            f"fingerprint uses algorithm {fingerprint.algorithm}, only {DEFAULT_ALGORITHM} "
            "is accepted"
        )
    if fingerprint.hashes.size == 0:
        raise InvalidFingerprint("fingerprint holds no hashes")
    return fingerprint.hashes.view(np.int32)


def encode_fingerprint(hashes: ArrayLike, algorithm: int = DEFAULT_ALGORITHM) -> str:
    """Encode hashes (signed or unsigned 32-bit) as chromaprint's compressed base64 string.

    Byte-identical to `chromaprint_encode_fingerprint(..., base64=1)`. Raises ValueError for
    an algorithm outside 0–255, more than MAX_HASHES hashes or values that are not 32-bit.
    """
    if not 0 <= algorithm <= 255:
        raise ValueError(f"algorithm must be 0–255, got {algorithm}")
    values = as_uint32(hashes)
    count = values.size
    if count > MAX_HASHES:
        raise ValueError(f"a fingerprint holds at most {MAX_HASHES} hashes, got {count}")
    changed = values.copy()
    changed[1:] ^= values[:-1]
    bits = np.unpackbits(changed.astype("<u4").view(np.uint8), bitorder="little")
    rows, columns = np.nonzero(bits.reshape(count, _HASH_BITS))
    positions = columns + 1
    previous = np.zeros_like(positions)
    same_row = rows[1:] == rows[:-1]
    previous[1:][same_row] = positions[:-1][same_row]
    deltas = positions - previous

    # each row's deltas are followed by its 0 terminator: element k moves right by its row
    normal = np.zeros(deltas.size + count, dtype=np.uint8)
    normal[np.arange(deltas.size) + rows] = np.minimum(deltas, _MAX_NORMAL_VALUE)
    exceptions = deltas[deltas >= _MAX_NORMAL_VALUE] - _MAX_NORMAL_VALUE
    packed = (
        bytes([algorithm])
        + count.to_bytes(3, "big")
        + _pack(normal, _NORMAL_BITS)
        + _pack(exceptions, _EXCEPTION_BITS)
    )
    return (
        binascii.b2a_base64(packed, newline=False)
        .rstrip(b"=")
        .translate(bytes.maketrans(b"+/", b"-_"))
        .decode("ascii")
    )


def _lenient_base64_decode(text: bytes) -> bytes:
    usable = len(text) - 1 if len(text) % 4 == 1 else len(text)
    standard = text[:usable].translate(_LENIENT_BASE64)
    return binascii.a2b_base64(standard + b"=" * (-usable % 4))


def _packed_size(num_values: int, width: int) -> int:
    return (num_values * width + 7) // 8


def _unpack(data: NDArray[np.uint8], width: int) -> NDArray[np.uint8]:
    """Every complete `width`-bit value of an LSB-first bit stream, as chromaprint unpacks."""
    bits = np.unpackbits(data, bitorder="little")
    fields = bits[: bits.size // width * width].reshape(-1, width)
    values = fields[:, 0].copy()
    for shift in range(1, width):
        values |= fields[:, shift] << shift
    return values


def _pack(values: NDArray[np.integer], width: int) -> bytes:
    bits = (values[:, None] >> np.arange(width)) & 1
    return np.packbits(bits.astype(np.uint8).ravel(), bitorder="little").tobytes()


def _rebuild_hashes(deltas: NDArray[np.int32], count: int) -> UInt32Array:
    """Hashes from the delta stream (`count` items, each ending with its 0 terminator).

    Items of well-formed fingerprints end at bit 32 or before. Then each terminator becomes
    the jump to the next item's first bit, so one running sum places every set bit in a
    count × 32 bit matrix, packed into the items' XOR words. Damaged input, whose positions
    wrap, takes the general path.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint32)
    ends = np.flatnonzero(deltas == 0)
    # item k runs from the previous terminator (exclusive) to its own: never empty
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    widths = np.add.reduceat(deltas, starts)
    if widths.max() > _HASH_BITS:
        return _rebuild_wrapped_hashes(deltas, count)
    jumps = deltas.copy()
    jumps[ends] = _HASH_BITS - widths
    places = np.cumsum(jumps, dtype=np.int32)  # item k's bit at position p: 32k + p
    places[ends] = 0  # terminators set no bit: parked on the matrix's spare first cell
    matrix = np.zeros(count * _HASH_BITS + 1, dtype=np.uint8)
    matrix[places] = 1
    changes = np.packbits(matrix[1:], bitorder="little").view("<u4")
    return np.bitwise_xor.accumulate(changes).astype(np.uint32, copy=False)


def _rebuild_wrapped_hashes(deltas: NDArray[np.int32], count: int) -> UInt32Array:
    """`_rebuild_hashes` for any input: each item sets bits at its running positions (wrapped
    past 32), then the items are chained by XOR."""
    ends = deltas == 0
    item = np.cumsum(ends) - ends
    running = np.cumsum(deltas)
    position = running - np.maximum.accumulate(np.where(ends, running, 0))
    keep = ~ends
    position = position[keep]
    set_bits = item[keep] * _HASH_BITS + ((position - 1) & (_HASH_BITS - 1))
    if position.size and position.max() > _HASH_BITS:
        # wrapped positions may repeat a bit inside one item; C ORs, so toggle each only once
        set_bits = np.unique(set_bits)
    toggles = np.left_shift(np.uint32(1), (set_bits & (_HASH_BITS - 1)).astype(np.uint32))
    chained = np.concatenate(([np.uint32(0)], np.bitwise_xor.accumulate(toggles)))
    owners = set_bits // _HASH_BITS
    return chained[np.searchsorted(owners, np.arange(count), side="right")]
