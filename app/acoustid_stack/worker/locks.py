"""Advisory transaction locks taken before an import writes (reference §4.2 step 1).

Two workers importing near-identical fingerprints, or the same MBID, at the same time would
each miss the other's uncommitted track and create a second one; the lock on the
fingerprint's simhash and on the MBID serialises them. Upstream only *tries* the locks and
leaves a busy submission pending; with a queue that costs a nak round trip per collision
(a popular MBID arriving in one batch collides constantly), so we wait, bounded by the
transaction's `lock_timeout`, which the importer turns into "busy, retry later". The locks
are always taken in the same order (fingerprints, then MBIDs, each by key), so waiting cannot
deadlock.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from acoustid_stack.fingerprint.hashes import as_uint32


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


FINGERPRINT_LOCK = _signed32(zlib.crc32(b"import.fp"))
MBID_LOCK = _signed32(zlib.crc32(b"import.mbid"))
# row v: the 8 bits of the byte value v, least significant first
_BYTE_BITS = np.unpackbits(
    np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little"
).astype(np.float64)
# byte k of a hash counts in histogram slots k*256 … k*256+255
_BYTE_SLOTS = np.arange(4, dtype=np.intp) * 256


def simhash(hashes: ArrayLike) -> int:
    """chromaprint's `chromaprint_hash_fingerprint`: bit i is set when most hashes have it set.

    Near-identical fingerprints share it, which makes it a lock key for "the same audio".
    """
    values = as_uint32(hashes)
    if values.size == 0:
        return 0
    # Counting set bits through one histogram of the four byte positions and a 256×8 bit
    # table costs a fraction of expanding every hash into 32 bits.
    slots = values.astype("<u4", copy=False).view(np.uint8).reshape(-1, 4).astype(np.intp)
    slots += _BYTE_SLOTS
    histogram = np.bincount(slots.ravel(), minlength=4 * 256).reshape(4, 256)
    ones = (histogram @ _BYTE_BITS).ravel()  # bit i of byte k at k*8 + i: bit 8k+i of a hash
    majority = np.packbits(2 * ones > values.size, bitorder="little")
    return int(majority.view("<u4")[0])


def mbid_key(mbid: uuid.UUID) -> int:
    return _signed32(zlib.crc32(mbid.bytes))


def import_lock_keys(fingerprint_hash: int, mbid: uuid.UUID | None) -> list[tuple[int, int]]:
    """The (class, key) pairs one submission's import takes."""
    keys = [(FINGERPRINT_LOCK, _signed32(fingerprint_hash))]
    if mbid is not None:
        keys.append((MBID_LOCK, mbid_key(mbid)))
    return keys


_ORDER = {FINGERPRINT_LOCK: 0, MBID_LOCK: 1}
# unnest yields the pairs in array order, so the locks are taken in exactly that order
_TAKE = text(
    "SELECT count(pg_advisory_xact_lock(c, k)) "
    "FROM unnest(CAST(:classes AS int[]), CAST(:keys AS int[])) AS l(c, k)"
)


async def take_import_locks(conn: AsyncConnection, keys: Iterable[tuple[int, int]]) -> None:
    """Take the import locks of a whole batch in one statement, in the current transaction,
    waiting up to its `lock_timeout`.

    Every worker takes them in one global order (all fingerprint locks by key, then all
    MBID locks by key), so two batches waiting for each other's locks cannot deadlock.
    Released by commit or rollback; a timeout raises psycopg's LockNotAvailable (wrapped in
    SQLAlchemy's OperationalError).
    """
    ordered = sorted(set(keys), key=lambda pair: (_ORDER[pair[0]], pair[1]))
    if not ordered:
        return
    await conn.execute(_TAKE, {"classes": [c for c, _ in ordered], "keys": [k for _, k in ordered]})
