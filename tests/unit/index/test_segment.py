from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.index.memory import MemorySegment
from acoustid_stack.index.segment import (
    FileSegment,
    SegmentFileError,
    decode_postings,
    encode_postings,
    ord_bits_for,
)


def sorted_postings(
    rng: np.random.Generator, docs: int, terms: int
) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.unique(
        (rng.integers(0, 2**32, docs * terms, dtype=np.uint64) << np.uint64(32))
        | rng.integers(0, docs, docs * terms, dtype=np.uint64)
    )
    return (pairs >> np.uint64(32)).astype(np.uint32), (pairs & np.uint64(0xFFFFFFFF)).astype(
        np.uint32
    )


def test_packed_postings_decode_to_what_was_encoded() -> None:
    rng = np.random.default_rng(0)
    for docs in (1, 2, 3, 1000, 5000):
        terms, ords = sorted_postings(rng, docs, 30)
        bits = ord_bits_for(docs)
        offsets, packed = encode_postings(terms, ords, bits)
        assert packed.dtype == np.uint32
        decoded_terms, decoded_ords = decode_postings(offsets, packed, bits)
        np.testing.assert_array_equal(decoded_terms, terms)
        np.testing.assert_array_equal(decoded_ords, ords)


def test_file_and_memory_segments_match_the_same_documents(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    docs = np.sort(rng.choice(2**32 - 1, 2000, replace=False).astype(np.uint32) + 1)
    terms, ords = sorted_postings(rng, len(docs), 50)
    versions = np.ones(len(docs), dtype=np.uint64)
    file_segment = FileSegment.write(
        tmp_path / "s.fpseg", segment_id=1, docs=docs, versions=versions, terms=terms, ords=ords
    )
    memory_segment = MemorySegment.from_postings(
        segment_id=2, docs=docs, versions=versions, terms=terms, ords=ords, created=0.0
    )
    query = np.unique(
        np.concatenate([terms[:: len(terms) // 40], rng.integers(0, 2**32, 40, dtype=np.uint32)])
    )
    expected = sorted(ords[np.isin(terms, query)].tolist())
    assert sorted(file_segment.match(query).tolist()) == expected
    assert sorted(memory_segment.match(query).tolist()) == expected
    doomed = docs[expected[:3]]
    file_segment.mark_deleted(doomed)
    assert not set(docs[file_segment.match(query)].tolist()) & set(doomed.tolist())
    assert file_segment.live_docs == len(docs) - len(set(doomed.tolist()))


def test_a_damaged_segment_file_fails_its_checksum(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    terms, ords = sorted_postings(rng, 100, 20)
    docs = np.arange(1, 101, dtype=np.uint32)
    path = tmp_path / "s.fpseg"
    FileSegment.write(
        path, segment_id=1, docs=docs, versions=np.zeros(100, np.uint64), terms=terms, ords=ords
    )
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SegmentFileError, match="checksum"):
        FileSegment.open(path, verify=True)
    path.write_bytes(b"junk")
    with pytest.raises(SegmentFileError):
        FileSegment.open(path)
