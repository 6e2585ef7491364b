from __future__ import annotations

import numpy as np

from acoustid_stack.worker.locks import simhash


def _majority_bits(hashes: list[int]) -> int:
    """chromaprint_hash_fingerprint written out bit by bit."""
    result = 0
    for bit in range(32):
        ones = sum((value & 0xFFFFFFFF) >> bit & 1 for value in hashes)
        if 2 * ones > len(hashes):
            result |= 1 << bit
    return result


def test_simhash_sets_the_bits_most_hashes_have() -> None:
    rng = np.random.default_rng(11)
    for size in (1, 2, 3, 950, 2801):
        hashes = rng.integers(-(2**31), 2**31, size, dtype=np.int64).tolist()
        assert simhash(hashes) == _majority_bits(hashes)


def test_simhash_of_a_tie_leaves_the_bit_clear_and_of_nothing_is_zero() -> None:
    assert simhash([0xFFFFFFFF, 0]) == 0
    assert simhash([-1, -1, 0]) == 0xFFFFFFFF
    assert simhash([]) == 0


def test_near_identical_fingerprints_share_a_simhash() -> None:
    rng = np.random.default_rng(12)
    hashes = rng.integers(0, 2**32, 950, dtype=np.int64).astype(np.uint32)
    noisy = hashes.copy()
    noisy[::50] ^= np.uint32(1) << np.uint32(7)
    assert simhash(noisy) == simhash(hashes)
