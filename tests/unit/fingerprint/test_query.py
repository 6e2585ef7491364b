from __future__ import annotations

import numpy as np

from acoustid_stack.fingerprint import extract_query
from acoustid_stack.fingerprint.query import QUERY_MASK, SILENCE_HASH

MASK = QUERY_MASK - 2**32  # as a signed int32, like upstream's int4 arithmetic


def test_query_of_only_silence_is_empty() -> None:
    assert extract_query([SILENCE_HASH] * 50).tolist() == []
    assert extract_query([]).tolist() == []


def test_short_fingerprint_starts_at_the_beginning_and_drops_silence_and_duplicates() -> None:
    # 0x15 and 0x1A differ only in the low nibble: one term; silence never is a term
    hashes = [0x15, SILENCE_HASH, 0x1A, 0x120, -1, 0x15]
    assert extract_query(hashes).tolist() == [0x10, 0x120, -16]


def test_long_fingerprint_skips_the_first_80_hashes_and_keeps_120_terms() -> None:
    hashes = np.arange(1, 301, dtype=np.int64) << 4
    assert extract_query(hashes).tolist() == list(hashes[80:200])


def test_start_moves_back_so_120_terms_fit_after_it() -> None:
    # 150 non-silent hashes: start = max(0, min(150 − 120, 80)) = 30
    hashes = (np.arange(1, 151, dtype=np.int64) << 4).tolist()
    assert extract_query(hashes).tolist() == hashes[30:150]


def test_start_counts_only_non_silent_hashes_but_indexes_the_whole_array() -> None:
    # 130 non-silent after 20 silent: start = min(130 − 120, 80) = 10, an index into the
    # whole array (so it lands in the silence, which is then skipped)
    hashes = [SILENCE_HASH] * 20 + (np.arange(1, 131, dtype=np.int64) << 4).tolist()
    assert extract_query(hashes).tolist() == hashes[20:140]


def test_terms_are_signed_and_masked_to_28_bits() -> None:
    query = extract_query(np.array([0xFFFFFFFF, 0x8000000F], dtype=np.uint32))
    assert query.dtype == np.int32
    assert query.tolist() == [MASK, -(2**31)]


def test_terms_are_the_first_120_distinct_values_even_far_into_a_repetitive_fingerprint() -> None:
    # each value repeated 7 times: 120 distinct terms need 840 hashes, past the first window
    rng = np.random.default_rng(5)
    hashes = np.repeat(rng.integers(0, 2**28, 400, dtype=np.int64) << 4, 7)
    expected: list[int] = []
    for value in (hashes[80:] - 2**32 * (hashes[80:] >= 2**31)).tolist():
        if value not in expected:
            expected.append(value)
    assert extract_query(hashes).tolist() == expected[:120]
