"""The index query of a fingerprint: upstream `acoustid_extract_query` (reference §3.1).

The same ≤ 120 values are the terms a fingerprint is indexed under, the terms a lookup
searches for, the `&&` overlap fallback in SQL, and the import check "has any term at all".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from acoustid_stack.fingerprint.hashes import Int32Array, as_int32

#: Skip the first 80 hashes (fade-ins and intros vary between releases) when there are enough.
QUERY_START = 80
#: At most this many terms per fingerprint.
QUERY_LENGTH = 120
#: Terms keep the top 28 bits so small bit errors in the lowest nibble still match.
QUERY_BITS = 28
QUERY_MASK = ((1 << QUERY_BITS) - 1) << (32 - QUERY_BITS)  # 0xFFFFFFF0
#: The hash chromaprint produces for digital silence; it matches everything, so never a term.
SILENCE_HASH = 627964279


def extract_query(hashes: ArrayLike) -> Int32Array:
    """The query terms of a fingerprint as signed `int32` (what upstream stores in `int4[]`).

    Walks from max(0, min(non_silent − 120, 80)) to the end, skipping silence and values whose
    masked form was already taken, and keeps the first 120 masked values in order. Empty when
    every hash is silence.
    """
    values = as_int32(hashes)
    non_silent = values != np.int32(SILENCE_HASH)
    clean_size = int(np.count_nonzero(non_silent))
    if clean_size == 0:
        return np.zeros(0, dtype=np.int32)
    start = max(0, min(clean_size - QUERY_LENGTH, QUERY_START))
    masked = values[start:][non_silent[start:]] & np.int32(QUERY_MASK - (1 << 32))
    # The first 120 distinct values usually lie within the first few hundred: sorting a
    # prefix instead of the whole fingerprint gives the same terms in a quarter of the time.
    window = 2 * QUERY_LENGTH
    while True:
        prefix = masked[:window]
        _, first_seen = np.unique(prefix, return_index=True)
        if first_seen.size >= QUERY_LENGTH or window >= masked.size:
            query: Int32Array = prefix[np.sort(first_seen)[:QUERY_LENGTH]]
            return query
        window *= 4
