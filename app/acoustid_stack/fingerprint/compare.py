"""Fingerprint similarity: upstream `acoustid_compare2` (pg_acoustid, reference §3.2) in NumPy.

Upstream scores inside PostgreSQL with a C extension; we score in the application so stock
PostgreSQL suffices (DESIGN.md §3). `score_candidates` scores many stored fingerprints against
one query in a fixed number of array operations, so 20 candidates cost about what one does.

Parity with the C code includes its quirks, because stored scores and thresholds were tuned
on them: positions are kept as 16-bit numbers and position 0 counts as "absent"; the top key
16383 never votes for an alignment; and the unique-key count reuses memory that was cleared
one byte short, so key 16383 can go uncounted (see `_uniq_top_key_corrections`). Arithmetic
follows C's float/double promotions and rounds to float32 where the C code stores a float4.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from acoustid_stack.fingerprint.hashes import UInt32Array, as_uint32

#: Alignment and uniqueness look at the top 14 bits of each hash.
MATCH_BITS = 14
_KEY_SHIFT = 32 - MATCH_BITS
_NUM_KEYS = 1 << MATCH_BITS
_TOP_KEY = _NUM_KEYS - 1  # upstream's key loop stops before it
_HALF_KEY = _TOP_KEY // 2  # its table slot's high byte is the byte the memset misses
_POSITION_MASK = 0xFFFF  # upstream stores positions in uint16
_OFFSET_SPAN = 1 << 17  # offsets of 16-bit positions lie in (-2**16, 2**16)
_MIN_ALIGNED_SHARE = 0.02
_DIVERSITY_BONUS = 10
_DIVERSITY_FLOOR = 0.5
#: Candidates scored in one set of array operations. A batch's key tables take 64 KiB per
#: candidate, so an unbounded batch of 1,000 took 65 MB and longer per candidate than 20 did.
SCORE_CHUNK = 32


def compare2(a: ArrayLike, b: ArrayLike, max_offset: int = 0) -> float:
    """`acoustid_compare2(a, b, max_offset)`: similarity in [0, 1], float32 precision.

    `max_offset` 0 means any alignment; upstream's importer and lookups use 80.
    """
    return float(score_candidates(b, [a], max_offset=max_offset)[0])


def score_candidates(
    query: ArrayLike, candidates: Sequence[ArrayLike], *, max_offset: int = 0
) -> NDArray[np.float32]:
    """Scores `acoustid_compare2(candidates[i], query, max_offset)` for every candidate.

    The argument order is upstream's SQL (`acoustid_compare2(fingerprint, query, 80)`); it only
    matters in the rare quirk cases the module docstring names. Empty arrays score 0.
    """
    q = as_uint32(query)
    arrays = [as_uint32(candidate) for candidate in candidates]
    scores = np.zeros(len(arrays), dtype=np.float32)
    if q.size == 0 or not arrays:
        return scores
    query_index = _KeyIndex(q)
    for first in range(0, len(arrays), SCORE_CHUNK):
        chunk = arrays[first : first + SCORE_CHUNK]
        scores[first : first + len(chunk)] = _score_batch(_Batch(chunk), q, query_index, max_offset)
    return scores


def _score_batch(
    batch: _Batch, q: UInt32Array, query_index: _KeyIndex, max_offset: int
) -> NDArray[np.float32]:
    scores = np.zeros(batch.sizes.size, dtype=np.float32)
    if batch.flat.size == 0:
        return scores
    top_count, top_offset = _best_alignment(batch, query_index, max_offset)
    a_size = batch.sizes
    b_size = q.size
    min_size = np.minimum(a_size, b_size) & ~1
    a_start = np.maximum(top_offset, 0)
    b_start = np.maximum(-top_offset, 0)
    a_len = np.maximum(a_size - a_start, 0)
    b_len = np.maximum(b_size - b_start, 0)
    half = np.minimum(a_len, b_len) // 2
    live = (top_count > 0) & (half > 0) & (min_size > 0)

    a_uniq = batch.distinct_keys_from(a_start)
    b_uniq = query_index.distinct_keys_from(np.minimum(b_start, b_size))
    a_fix, b_fix = _uniq_top_key_corrections(batch, query_index, a_start, b_start)
    a_uniq -= a_fix
    b_uniq -= b_fix
    live &= top_count >= np.maximum(a_uniq, b_uniq) * _MIN_ALIGNED_SHARE

    bit_errors = _bit_errors(batch, q, a_start, b_start, np.where(live, 2 * half, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # C: diversity is a float4 built from float divisions promoted to double
        a_div = np.minimum(1.0, _f32_ratio(a_uniq + _DIVERSITY_BONUS, a_len) + _DIVERSITY_FLOOR)
        b_div = np.minimum(1.0, _f32_ratio(b_uniq + _DIVERSITY_BONUS, b_len) + _DIVERSITY_FLOOR)
        diversity = np.minimum(a_div, b_div).astype(np.float32).astype(np.float64)
        error_rate = 2.0 * bit_errors.astype(np.float32).astype(np.float64) / (64 * half)
        raw = (half * 2.0 / min_size) * (1.0 - error_rate)
        score = np.maximum(raw.astype(np.float32), np.float32(0)).astype(np.float64)
        penalised = np.power(score, 8.0 - 7.0 * diversity).astype(np.float32)
    final = np.where(diversity < 1.0, penalised, score.astype(np.float32))
    scores[live] = final[live]
    return scores


class _Batch:
    """Candidates concatenated, with per-candidate key tables built in one pass."""

    def __init__(self, arrays: list[UInt32Array]) -> None:
        self.sizes = np.array([array.size for array in arrays], dtype=np.int64)
        self.starts = np.cumsum(self.sizes) - self.sizes
        self.flat = np.concatenate(arrays)
        owner = np.repeat(np.arange(len(arrays)), self.sizes)
        position = np.arange(self.flat.size) - self.starts[owner]
        slot = owner * _NUM_KEYS + (self.flat >> _KEY_SHIFT).astype(np.int64)
        slots, last = _last_occurrences(slot, len(arrays) * _NUM_KEYS)
        # one entry per (candidate, key), ordered by candidate then key: upstream's loop order
        self.owner = slots // _NUM_KEYS
        self.key = slots % _NUM_KEYS
        self.last_position = position[last]

    def distinct_keys_from(self, start: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per candidate, the number of distinct keys in candidate[start:]."""
        present = self.last_position >= start[self.owner]
        return np.bincount(self.owner[present], minlength=self.sizes.size)


class _KeyIndex:
    """The query's key table: last position of each key (16-bit, 0 = absent as upstream)."""

    def __init__(self, hashes: UInt32Array) -> None:
        keys, last = _last_occurrences((hashes >> _KEY_SHIFT).astype(np.int64), _NUM_KEYS)
        self.table = np.zeros(_NUM_KEYS, dtype=np.int64)
        self.table[keys] = last & _POSITION_MASK
        self.top_key_last = int(last[-1]) if keys.size and keys[-1] == _TOP_KEY else -1
        # distinct keys of hashes[s:] = keys whose last occurrence is at or after s
        counts = np.bincount(last, minlength=hashes.size + 1)
        self._suffix_distinct = np.cumsum(counts[::-1])[::-1]

    def distinct_keys_from(self, start: NDArray[np.int64]) -> NDArray[np.int64]:
        return self._suffix_distinct[start]


def _last_occurrences(
    values: NDArray[np.int64], num_values: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Sorted distinct values (all in [0, num_values)) and the index of each one's last
    occurrence. A max-table and a plain sort: several times faster than np.unique here."""
    last_plus_one = np.zeros(num_values, dtype=np.int32)
    np.maximum.at(last_plus_one, values, np.arange(1, values.size + 1, dtype=np.int32))
    ordered = np.sort(values)
    distinct = ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if ordered.size else ordered
    return distinct, last_plus_one[distinct].astype(np.int64) - 1


def _best_alignment(
    batch: _Batch, query: _KeyIndex, max_offset: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per candidate: the top vote count of an offset and that offset.

    Upstream votes key by key and keeps the first offset whose count exceeds the running
    maximum, so among offsets tied at the top the winner is the one that reached the top count
    at the smallest key.
    """
    num = batch.sizes.size
    a_pos = batch.last_position & _POSITION_MASK
    b_pos = query.table[batch.key]
    offset = a_pos - b_pos
    votes = (a_pos != 0) & (b_pos != 0) & (batch.key != _TOP_KEY)
    if max_offset:
        votes &= np.abs(offset) <= max_offset
    top_count = np.zeros(num, dtype=np.int64)
    top_offset = np.zeros(num, dtype=np.int64)
    vote_at = np.flatnonzero(votes)  # increasing = candidate-then-key order
    if vote_at.size == 0:
        return top_count, top_offset
    group = batch.owner[vote_at] * _OFFSET_SPAN + (offset[vote_at] + _OFFSET_SPAN // 2)
    order = np.argsort(group, kind="stable")
    grouped = group[order]
    first = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    last = np.r_[first[1:], grouped.size] - 1
    count = last - first + 1
    reached_top_at = order[last]  # stable sort: a group's last vote is where it hit its count
    owner = grouped[first] // _OFFSET_SPAN
    best = np.lexsort((reached_top_at, -count, owner))
    winners = best[np.flatnonzero(np.r_[True, owner[best][1:] != owner[best][:-1]])]
    top_count[owner[winners]] = count[winners]
    top_offset[owner[winners]] = grouped[first][winners] % _OFFSET_SPAN - _OFFSET_SPAN // 2
    return top_count, top_offset


def _uniq_top_key_corrections(
    batch: _Batch, query: _KeyIndex, a_start: NDArray[np.int64], b_start: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """How much upstream's unique-key counts fall short of the true distinct counts.

    Upstream's "seen" bytes overlay the candidate's position table and the clearing memset
    stops one byte short, leaving seen[16383] = high byte of the 16-bit position stored for key
    8191. So key 16383 in the shifted candidate is not counted when that byte is nonzero, and
    in the shifted query it is not counted when that byte is nonzero or the candidate had it.
    """
    num = batch.sizes.size
    stale = np.zeros(num, dtype=bool)
    half = batch.key == _HALF_KEY
    stale[batch.owner[half]] = (batch.last_position[half] & _POSITION_MASK) >> 8 != 0
    a_has_top = np.zeros(num, dtype=bool)
    top = batch.key == _TOP_KEY
    a_has_top[batch.owner[top]] = batch.last_position[top] >= a_start[batch.owner[top]]
    b_has_top = query.top_key_last >= b_start
    a_fix = a_has_top & stale
    b_fix = b_has_top & (a_has_top | stale)
    return a_fix.astype(np.int64), b_fix.astype(np.int64)


def _bit_errors(
    batch: _Batch,
    q: UInt32Array,
    a_start: NDArray[np.int64],
    b_start: NDArray[np.int64],
    length: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Per candidate, total differing bits of candidate[a_start:][:length] vs query[b_start:]."""
    owner = np.repeat(np.arange(length.size), length)
    step = np.arange(owner.size) - np.repeat(np.cumsum(length) - length, length)
    diff = batch.flat[batch.starts[owner] + a_start[owner] + step] ^ q[b_start[owner] + step]
    running = np.r_[0, np.cumsum(np.bitwise_count(diff), dtype=np.int64)]
    ends = np.cumsum(length)
    totals: NDArray[np.int64] = running[ends] - running[ends - length]
    return totals


def _f32_ratio(numerator: NDArray[np.int64], denominator: NDArray[np.int64]) -> NDArray[np.float64]:
    """C's `(float)n / size`: a float32 division, then promoted to double."""
    ratio = numerator.astype(np.float32) / denominator.astype(np.float32)
    return ratio.astype(np.float64)
