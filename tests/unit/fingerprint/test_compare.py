from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustid_stack.fingerprint import compare2, score_candidates
from acoustid_stack.fingerprint.audio import fpcalc
from acoustid_stack.fingerprint.compare import SCORE_CHUNK


def h(key: int, low: int = 0) -> int:
    """A hash whose top 14 bits (the key compare2 aligns on) are `key`."""
    return (key << 18) | low


def f32(value: float) -> float:
    return float(np.float32(value))


# Golden values, worked out by hand from reference §3.2 (score = (2·size/minsize) ·
# (1 − 2·biterror/(64·size)), then ^(8 − 7·diversity) when diversity < 1).
SHIFTED_A = [h(9), h(1), h(2), h(3), h(4), h(5)]
SHIFTED_B = [h(1), h(2), h(3), h(4), h(5), h(6)]
# Offset +1 votes first (key 10) and last (key 40); offset −1 votes at keys 20 and 30, so it
# reaches 2 votes first and wins the tie. Fillers (keys ≥ 100) occur on one side only.
TIE_A = [h(100), h(101), h(10), h(20), h(30), h(102), h(103), h(104), h(40), h(105)]
TIE_B = [h(200), h(10), h(201), h(202), h(20), h(30), h(203), h(40), h(204), h(205)]


@pytest.mark.parametrize(
    ("a", "b", "max_offset", "expected"),
    [
        # 4 distinct keys; position 0 never votes, keys at 1..3 vote offset 0; minsize 4,
        # size 2, no bit errors: (4/4)·1 = 1
        ([h(1), h(2), h(3), h(4)], [h(1), h(2), h(3), h(4)], 0, 1.0),
        # same with one flipped bit: 1 − 2·1/(64·2) = 0.984375 (exact in float32)
        ([h(1), h(2), h(3), h(4)], [h(1), h(2), h(3), h(4, 1)], 0, 0.984375),
        # keys 2..5 vote offset +1 (4 votes); a loses its first hash → 5 vs 6 hashes,
        # minsize 6, size 2, the 4 compared pairs are equal: (4/6)·1
        (SHIFTED_A, SHIFTED_B, 0, f32(4 / 6)),
        # offset −1 wins the tie; b loses its first hash; minsize 10, size 4; the 8 pairs
        # differ in 5+4+2+0+0+5+5+3 = 24 bits (popcounts of the key XORs, e.g. 100^10 = 110
        # has 5 bits): 0.8·(1 − 48/256) = 0.65
        (TIE_A, TIE_B, 0, f32(0.65)),
        # one key repeated: 1 unique key in 44 → diversity min(1, 11/44 + 0.5) = 0.75; every
        # pair differs in 1 bit: 1 − 88/1408 = 0.9375, then 0.9375^(8 − 5.25)
        ([h(7)] * 44, [h(7, 1)] * 44, 0, f32(0.9375**2.75)),
        # keys 2..4 vote offset 3, outside max_offset 2: no alignment → 0
        ([h(20), h(21), h(22), h(1), h(2), h(3), h(4)], [h(1), h(2), h(3), h(4)], 2, 0.0),
        # ... inside max_offset 3: a loses 3 hashes, then identical: 1
        ([h(20), h(21), h(22), h(1), h(2), h(3), h(4)], [h(1), h(2), h(3), h(4)], 3, 1.0),
        # one vote among 100 unique keys is below the 2 % floor (2 votes) → 0
        (
            [h(k) for k in range(1, 101)],
            [h(k) if k != 106 else h(6) for k in range(101, 201)],
            0,
            0.0,
        ),
        ([], [h(1)], 0, 0.0),
        ([h(1)], [], 0, 0.0),
        ([h(1)], [h(1)], 0, 0.0),  # the only hash sits at position 0, which never votes
    ],
)
def test_compare_matches_hand_computed_golden_values(
    a: list[int], b: list[int], max_offset: int, expected: float
) -> None:
    assert compare2(a, b, max_offset) == expected


def reference_alignment(a_at: list[int], b_at: list[int], max_offset: int) -> tuple[int, int]:
    counts: dict[int, int] = {}
    top_count = top_offset = 0
    for key in range(16383):
        if a_at[key] and b_at[key]:
            offset = a_at[key] - b_at[key]
            if max_offset == 0 or abs(offset) <= max_offset:
                counts[offset] = counts.get(offset, 0) + 1
                if counts[offset] > top_count:
                    top_count, top_offset = counts[offset], offset
    return top_count, top_offset


def reference_compare2(a: list[int], b: list[int], max_offset: int) -> float:
    """acoustid_compare2 written as the loops reference §3.2 describes, the oracle for the
    vectorised version (including the 16-bit positions and the key-16383 quirks)."""
    a = [x & 0xFFFFFFFF for x in a]
    b = [x & 0xFFFFFFFF for x in b]
    if not a or not b:
        return 0.0
    a_at, b_at = [0] * 16384, [0] * 16384
    for i, x in enumerate(a):
        a_at[x >> 18] = i & 0xFFFF
    for i, x in enumerate(b):
        b_at[x >> 18] = i & 0xFFFF
    top_count, top_offset = reference_alignment(a_at, b_at, max_offset)
    if top_count == 0:
        return 0.0  # C then shifts b entirely away, leaving nothing to compare
    min_size = min(len(a), len(b)) & ~1
    if top_offset < 0:
        b = b[-top_offset:]
    else:
        a = a[top_offset:]
    size = min(len(a), len(b)) // 2
    if not size or not min_size:
        return 0.0
    stale = (a_at[8191] >> 8) != 0  # the byte the memset misses
    a_keys = {x >> 18 for x in a}
    b_keys = {x >> 18 for x in b}
    a_uniq = len(a_keys) - (16383 in a_keys and stale)
    b_uniq = len(b_keys) - (16383 in b_keys and (stale or 16383 in a_keys))

    def side(uniq: int, length: int) -> float:
        return min(1.0, float(np.float32(uniq + 10) / np.float32(length)) + 0.5)

    diversity = f32(min(side(a_uniq, len(a)), side(b_uniq, len(b))))
    if top_count < max(a_uniq, b_uniq) * 0.02:
        return 0.0
    bit_error = sum(bin(a[i] ^ b[i]).count("1") for i in range(2 * size))
    score = f32((size * 2.0 / min_size) * (1.0 - 2.0 * f32(bit_error) / (64 * size)))
    score = max(score, 0.0)
    if diversity < 1.0:
        score = f32(math.pow(score, 8.0 - 7.0 * diversity))
    return score


def few_keys_hashes(draw: st.DrawFn, max_size: int) -> list[int]:
    # few distinct keys (incl. 8191 and 16383) so votes collide, ties and repeats happen
    keys = st.sampled_from([0, 1, 2, 3, 5, 8, 13, 8191, 16383])
    low = st.integers(min_value=0, max_value=(1 << 18) - 1)
    return draw(st.lists(st.builds(h, keys, low), max_size=max_size))


@st.composite
def small_fingerprints(draw: st.DrawFn) -> list[int]:
    return few_keys_hashes(draw, 40)


@settings(max_examples=400, deadline=None)
@given(small_fingerprints(), small_fingerprints(), st.sampled_from([0, 1, 3, 80]))
def test_compare_agrees_with_the_reference_loops(a: list[int], b: list[int], offset: int) -> None:
    assert compare2(a, b, offset) == reference_compare2(a, b, offset)


def test_compare_agrees_with_the_reference_loops_on_long_low_diversity_arrays() -> None:
    # long enough that key 8191's stored position has a nonzero high byte (the memset quirk)
    rng = np.random.default_rng(3)
    for _ in range(60):
        keys = rng.choice([1, 2, 3, 8191, 16383, 4000], size=int(rng.integers(250, 700)))
        lows = rng.integers(0, 1 << 18, keys.size)
        a = [h(int(k), int(low)) for k, low in zip(keys, lows, strict=True)]
        b = a[int(rng.integers(0, 40)) :]
        b = [x ^ (1 << int(rng.integers(0, 32))) if rng.random() < 0.3 else x for x in b]
        assert compare2(a, b, 80) == reference_compare2(a, b, 80)
        assert compare2(b, a, 0) == reference_compare2(b, a, 0)


@settings(max_examples=100, deadline=None)
@given(small_fingerprints(), st.lists(small_fingerprints(), max_size=25))
def test_scoring_a_batch_equals_scoring_each_candidate(
    query: list[int], candidates: list[list[int]]
) -> None:
    scores = score_candidates(query, candidates, max_offset=80)
    assert scores.dtype == np.float32
    assert scores.tolist() == [compare2(c, query, 80) for c in candidates]


def test_a_batch_of_many_candidates_is_scored_in_chunks_of_bounded_memory() -> None:
    rng = np.random.default_rng(11)
    query = rng.integers(0, 2**32, 1500, dtype=np.uint32)
    candidates = [
        np.where(rng.random(query.size) < 0.6, query, rng.integers(0, 2**32, query.size))
        for _ in range(3 * SCORE_CHUNK + 5)
    ]
    tracemalloc.start()
    try:
        scores = score_candidates(query, candidates, max_offset=80)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.tolist() == [compare2(c, query, 80) for c in candidates]
    assert scores.min() > 0.3
    # key tables of 64 KiB per candidate: one chunk's worth, not the whole batch's
    assert peak < 2 * SCORE_CHUNK * 64 * 1024 + 4 * 1024 * 1024


def test_compare_accepts_signed_and_unsigned_views_of_the_same_hashes() -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**32, 300, dtype=np.uint32)
    shifted = hashes[7:]
    assert compare2(hashes.view(np.int32), shifted.tolist()) == compare2(hashes, shifted) == 1.0


def test_audio_scores_one_against_itself_high_when_shifted_and_zero_when_unrelated(
    song: Path, song_cut: Path, other_song: Path
) -> None:
    original = fpcalc(song, raw=True)["fingerprint"]
    shifted = fpcalc(song_cut, raw=True)["fingerprint"]
    unrelated = fpcalc(other_song, raw=True)["fingerprint"]
    assert compare2(original, original, 80) == 1.0
    assert compare2(original, shifted, 80) > 0.9
    assert compare2(original, unrelated, 80) < 0.1
    scores = score_candidates(original, [unrelated, shifted, original], max_offset=80)
    assert scores.tolist() == [
        compare2(unrelated, original, 80),
        compare2(shifted, original, 80),
        1.0,
    ]
