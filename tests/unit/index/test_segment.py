from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustid_stack.index.legacy import LegacySegment
from acoustid_stack.index.memory import MemorySegment
from acoustid_stack.index.segment import (
    BUCKET_POSTINGS,
    FREQUENT_POSTINGS,
    HASH_SPACE,
    FileSegment,
    Layout,
    Segment,
    SegmentFileError,
    mix,
    trailing_zeros,
    unmix,
)

from . import fpseg001

NO_CAP = 1 << 40


def random_postings(
    rng: np.random.Generator, docs: int, terms: int, *, high: int = 2**32, step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(terms, ords) sorted by (term, ordinal): `terms` per document below `high`,
    multiples of `step`."""
    pairs = np.unique(
        ((rng.integers(0, high // step, docs * terms, dtype=np.uint64) * np.uint64(step)) << 32)
        | np.repeat(np.arange(docs, dtype=np.uint64), terms)
    )
    return (pairs >> np.uint64(32)).astype(np.uint32), (pairs & np.uint64(0xFFFFFFFF)).astype(
        np.uint32
    )


def write_file_segment(
    path: Path, docs: np.ndarray, terms: np.ndarray, ords: np.ndarray, *, pieces: int = 7
) -> FileSegment:
    """A file segment of these postings, written in `pieces` chunks as a merge does (their
    bounds cut buckets)."""
    keys = np.sort((mix(terms).astype(np.uint64) << np.uint64(32)) | ords.astype(np.uint64))
    # hash ranges, as merges cut them (a term's postings are in one chunk)
    bounds = (np.arange(1, pieces, dtype=np.uint64) * np.uint64(HASH_SPACE // pieces)) << 32
    chunks = [
        ((k >> np.uint64(32)).astype(np.uint32), k.astype(np.uint32))
        for k in np.split(keys, np.searchsorted(keys, bounds))
    ]
    return FileSegment.write(
        path,
        segment_id=1,
        docs=docs,
        versions=np.ones(len(docs), dtype=np.uint64),
        chunks=chunks,
        num_postings=len(keys),
        trailing_zeros=trailing_zeros(terms),
    )


def matches(segment: Segment, query: np.ndarray) -> list[int]:
    ords, _ = segment.match(mix(query), np.full(len(query), NO_CAP, dtype=np.int64))
    return sorted(ords.tolist())


def test_mixing_is_a_bijection() -> None:
    terms = np.array([0, 1, 2**22 - 1, 2**31, 2**32 - 1], dtype=np.uint32)
    assert unmix(mix(terms)).tolist() == terms.tolist()
    assert len(np.unique(mix(np.arange(2**16, dtype=np.uint32)))) == 2**16


@pytest.mark.parametrize(
    ("high", "step"),
    [(2**32, 1), (2**32, 16), (2**22, 1)],
    ids=["random", "acoustid-28-bit", "below-2^22"],
)
def test_file_and_memory_segments_match_the_same_documents(
    tmp_path: Path, high: int, step: int
) -> None:
    rng = np.random.default_rng(1)
    docs = np.sort(rng.choice(2**32 - 1, 3000, replace=False).astype(np.uint32) + 1)
    terms, ords = random_postings(rng, len(docs), 60, high=high, step=step)
    file_segment = write_file_segment(tmp_path / "s.fpseg", docs, terms, ords)
    if step == 16:  # deltas of 28-bit terms take less than a uint32
        assert file_segment.data.nbytes + file_segment.tags.nbytes < 3.5 * len(terms)
    memory_segment = MemorySegment.from_postings(
        segment_id=2,
        docs=docs,
        versions=np.ones(len(docs), dtype=np.uint64),
        hashes=(keys := np.sort((mix(terms).astype(np.uint64) << 32) | ords)) >> np.uint64(32),
        ords=keys.astype(np.uint32),
        created=0.0,
    )
    query = np.unique(
        np.concatenate(
            [terms[:: len(terms) // 40], rng.integers(0, high, 40, dtype=np.uint32), [0, high - 1]]
        ).astype(np.uint32)
    )
    expected = sorted(ords[np.isin(terms, query)].tolist())
    assert matches(file_segment, query) == expected
    assert matches(memory_segment, query) == expected
    for segment in (file_segment, memory_segment):
        decoded_terms, decoded_ords = segment.decode()
        assert sorted(zip(decoded_terms.tolist(), decoded_ords.tolist(), strict=True)) == sorted(
            zip(terms.tolist(), ords.tolist(), strict=True)
        )
        low, high_hash = 2**31 - 2**28, 2**31 + 2**27
        hashes, _ = segment.postings_between(low, high_hash)
        inside = mix(terms)
        assert len(hashes) == int(((inside >= low) & (inside < high_hash)).sum())
        assert (np.diff(hashes.astype(np.int64)) >= 0).all()
    doomed = docs[expected[:3]]
    file_segment.mark_deleted(doomed)
    ords_left, _ = file_segment.match(mix(query), np.full(len(query), NO_CAP, dtype=np.int64))
    assert not set(docs[ords_left].tolist()) & set(doomed.tolist())
    assert file_segment.live_docs == len(docs) - len(set(doomed.tolist()))


def test_terms_below_2_22_read_only_their_own_postings(tmp_path: Path) -> None:
    """Low-bit entropy: FPSEG001 read buckets of ~1/32 of the segment per term; now a term
    reads its bucket, ~BUCKET_POSTINGS postings whatever bits of the terms vary."""
    rng = np.random.default_rng(3)
    docs = np.arange(1, 20001, dtype=np.uint32)
    terms, ords = random_postings(rng, len(docs), 100, high=2**22)
    query = terms[ords == 1234]
    own = np.searchsorted(terms, query, side="right") - np.searchsorted(terms, query)

    segment = write_file_segment(tmp_path / "new.fpseg", docs, terms, ords)
    budget = np.full(len(query), NO_CAP, dtype=np.int64)
    found, read = segment.match(mix(query), budget)
    assert max(read) <= 4 * BUCKET_POSTINGS
    assert read.mean() < 2 * BUCKET_POSTINGS
    assert (found == 1234).sum() == len(query)
    assert len(found) == own.sum()

    fpseg001.write_segment(tmp_path / "old.fpseg", segment_id=1, docs=docs, terms=terms, ords=ords)
    legacy = LegacySegment.open(tmp_path / "old.fpseg", verify=True)
    found, read = legacy.match(mix(query), budget)
    assert (found == 1234).sum() == len(query)
    assert min(read) > 20000  # whole buckets: the cost the new layout removes


def test_the_per_term_budget_caps_postings_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    docs = np.arange(1, 5001, dtype=np.uint32)
    terms, ords = random_postings(rng, len(docs), 30, step=16)
    common = np.uint32(0xABCDE0)
    terms = np.concatenate([terms, np.full(len(docs), common, dtype=np.uint32)])
    ords = np.concatenate([ords, np.arange(len(docs), dtype=np.uint32)])
    order = np.lexsort((ords, terms))
    segment = write_file_segment(tmp_path / "s.fpseg", docs, terms[order], ords[order])
    rare = terms[ords == 7][:3]
    query = np.concatenate([[common], rare])
    budget = np.array([100, 100, 100, 100], dtype=np.int64)
    found, read = segment.match(mix(query), budget)
    assert read[0] == 100
    assert budget[0] == 0
    assert sorted(found.tolist())[:100] == list(range(7)) + [7] * 4 + list(range(8, 97))
    # the other terms' budgets pay for what they found
    assert budget[1:].tolist() == [100 - int((terms == t).sum()) for t in rare]


def test_layout_aims_at_a_few_dozen_postings_per_bucket() -> None:
    layout = Layout.choose(num_docs=2**20, num_postings=120 * 2**20, shift=4)
    assert layout.bucket_bits - layout.ord_bits == 2  # 30 postings per bucket
    assert layout.shift == 4
    assert Layout.choose(num_docs=1, num_postings=0, shift=32).bucket_bits == 1


def test_postings_between_covers_the_hash_space_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    docs = np.arange(1, 301, dtype=np.uint32)
    terms, ords = random_postings(rng, len(docs), 20)
    # and a term of every document, stored apart as a frequent one
    keys = np.unique(
        np.concatenate(
            [
                (terms.astype(np.uint64) << np.uint64(32)) | ords,
                (np.uint64(77) << np.uint64(32)) | np.arange(300, dtype=np.uint64),
            ]
        )
    )
    terms, ords = (keys >> np.uint64(32)).astype(np.uint32), keys.astype(np.uint32)
    segment = write_file_segment(tmp_path / "s.fpseg", docs, terms, ords)
    assert segment.frequent.tolist() == mix(np.array([77])).tolist()
    width = HASH_SPACE >> 13  # finer than the segment's buckets
    pieces = [segment.postings_between(low, low + width)[0] for low in range(0, HASH_SPACE, width)]
    assert np.concatenate(pieces).tolist() == np.sort(mix(terms)).tolist()


def test_a_damaged_segment_file_fails_its_checksum(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    terms, ords = random_postings(rng, 100, 20)
    path = tmp_path / "s.fpseg"
    write_file_segment(path, np.arange(1, 101, dtype=np.uint32), terms, ords)
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF  # in the postings
    path.write_bytes(bytes(data))
    with pytest.raises(SegmentFileError, match="data fails its checksum"):
        FileSegment.open(path, verify=True)
    path.write_bytes(b"junk")
    with pytest.raises(SegmentFileError):
        FileSegment.open(path)


def skewed_postings(
    rng: np.random.Generator, docs: int, terms: int, *, high: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Postings whose term popularity follows a power law: a few terms are held by more
    than FREQUENT_POSTINGS documents (stored apart), most by one or two."""
    vocabulary = rng.integers(0, high // step, 4 * docs, dtype=np.uint64) * np.uint64(step)
    ranks = np.minimum(rng.zipf(1.3, docs * terms), len(vocabulary)) - 1
    pairs = np.unique(
        (vocabulary[ranks] << np.uint64(32)) | np.repeat(np.arange(docs, dtype=np.uint64), terms)
    )
    return (pairs >> np.uint64(32)).astype(np.uint32), pairs.astype(np.uint32)


def reference_match(
    segment: FileSegment, terms: np.ndarray, ords: np.ndarray, query: np.ndarray, budget: np.ndarray
) -> tuple[list[int], list[int], list[int]]:
    """(ordinals found, sorted; postings read per term; budget left) of `segment.match`, from
    the postings the segment was written from, one term at a time."""
    layout = segment.layout
    hashes = mix(terms)
    unique, counts = np.unique(hashes, return_counts=True)
    stored_apart = unique[counts > FREQUENT_POSTINGS]
    frequent = set(stored_apart.tolist())
    in_buckets = ~np.isin(hashes, stored_apart)
    bucket_sizes = np.bincount(
        layout.bucket_of(hashes[in_buckets]), minlength=layout.num_buckets + 1
    )
    found: list[int] = []
    read: list[int] = []
    left: list[int] = []
    for h, allowed in zip(mix(query).tolist(), budget.tolist(), strict=True):
        own = np.sort(ords[hashes == h])
        kept = own[: min(len(own), allowed)]
        found += kept.tolist()
        left.append(allowed - len(kept))
        if h in frequent:
            read.append(len(kept))
        elif allowed == 0 or h % (1 << layout.shift):
            read.append(0)
        else:
            read.append(int(bucket_sizes[h >> int(layout.bucket_shift)]))
    return sorted(found), read, left


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    docs=st.integers(1, 2000),
    terms=st.integers(1, 40),
    shape=st.sampled_from(["uniform32", "lowbit22", "masked28", "skewed"]),
    budget_kind=st.sampled_from(["unlimited", "small", "mixed"]),
)
def test_match_agrees_with_a_term_by_term_reference_on_random_and_skewed_postings(
    seed: int, docs: int, terms: int, shape: str, budget_kind: str
) -> None:
    rng = np.random.default_rng(seed)
    high, step = {
        "uniform32": (2**32, 1),
        "lowbit22": (2**22, 1),
        "masked28": (2**32, 16),
        "skewed": (2**32, 16),
    }[shape]
    if shape == "skewed":
        term_arr, ord_arr = skewed_postings(rng, docs, terms, high=high, step=step)
    else:
        term_arr, ord_arr = random_postings(rng, docs, terms, high=high, step=step)
    ids = np.sort(rng.choice(2**32 - 1, docs, replace=False).astype(np.uint32) + 1)
    # a query: terms of some documents, the most popular ones, and terms nobody holds
    popular = np.unique(term_arr, return_counts=True)
    query = np.unique(
        np.concatenate(
            [
                term_arr[rng.integers(0, len(term_arr), 60)],
                popular[0][np.argsort(-popular[1])[:5]],
                rng.integers(0, high, 30, dtype=np.uint32),
                [0, 1, high - 1],
            ]
        ).astype(np.uint32)
    )
    budget = {
        "unlimited": np.full(len(query), 1 << 62, dtype=np.int64),
        "small": rng.integers(0, 4, len(query)),
        "mixed": rng.choice([0, 1, 3, 100, FREQUENT_POSTINGS + 7, 1 << 62], len(query)),
    }[budget_kind].astype(np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        segment = write_file_segment(Path(tmp) / "s.fpseg", ids, term_arr, ord_arr)
        expected_found, expected_read, expected_left = reference_match(
            segment, term_arr, ord_arr, query, budget
        )
        left = budget.copy()
        found, read = segment.match(mix(query), left)
        assert sorted(found.tolist()) == expected_found
        assert read.tolist() == expected_read
        assert left.tolist() == expected_left
