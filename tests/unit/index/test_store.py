from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.index.check import check_index
from acoustid_stack.index.interfaces import (
    ConflictError,
    CorruptIndexError,
    Delete,
    Insert,
    SearchOptions,
    SearchTimeoutError,
)
from acoustid_stack.index.legacy import LegacySegment
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.segment import BUCKET_POSTINGS, FileSegment
from acoustid_stack.index.store import IndexStore, SearchStats, read_manifest, verify_index_dir

from . import fpseg001

EAGER = MergePolicy(flush_docs=300, idle_flush=0, idle_compact=0, tier_factor=2)
LAZY = MergePolicy(idle_flush=3600, idle_compact=3600, max_memory_age=3600)


def terms(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, 60, dtype=np.uint32)


def test_updates_survive_restart_whether_flushed_or_only_in_the_wal(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path / "i", policy=EAGER)
    store.open()
    for start in range(1, 1001, 100):
        store.update([Insert(i, terms(i)) for i in range(start, start + 100)])
        while store.maintain():
            pass
    store.update([Delete(5), Insert(6, terms(6000))], metadata={"max_document_id": 1000})
    store.close()

    reopened = IndexStore(tmp_path / "i", policy=LAZY)
    reopened.open()
    assert reopened.version == 11
    assert reopened.metadata == {"max_document_id": 1000}
    options = SearchOptions(limit=1)
    assert reopened.search(terms(5), options) == []
    assert [h.id for h in reopened.search(terms(6000), options)] == [6]
    assert reopened.search(terms(6), options) == []
    assert [h.id for h in reopened.search(terms(999), options)] == [999]
    assert reopened.info().num_docs == 999


def test_a_search_out_of_time_answers_nothing_rather_than_the_segments_it_searched(
    tmp_path: Path,
) -> None:
    """An import planned on a partial answer would take the segments left unsearched for
    documents that do not exist and store a duplicate (issue 14)."""
    flushing = MergePolicy(flush_docs=300, idle_flush=0, idle_compact=3600, tier_factor=10)
    store = IndexStore.create(tmp_path / "i", policy=flushing)
    store.open()
    for start in (1, 301, 601):  # three file segments, never merged
        store.update([Insert(i, terms(i)) for i in range(start, start + 300)])
        while store.maintain():
            pass
    assert len(store.segments()) >= 2
    assert [h.id for h in store.search(terms(900), SearchOptions(limit=1))] == [900]
    with pytest.raises(SearchTimeoutError, match="segments"):
        store.search(terms(900), SearchOptions(limit=1, timeout=0.0))


def test_expected_version_enforces_optimistic_concurrency(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    assert store.update([Insert(1, terms(1))], expected_version=0) == 1
    with pytest.raises(ConflictError):
        store.update([Insert(2, terms(2))], expected_version=0)
    assert store.version == 1
    assert store.info().num_docs == 1


def test_snapshot_is_a_consistent_set_of_hard_links(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    store.update([Insert(i, terms(i)) for i in range(1, 50)])
    destination = tmp_path / "snap"
    names = store.snapshot(destination)
    store.update([Insert(100, terms(100))])  # after the snapshot: not part of it
    copy = IndexStore(destination, policy=LAZY)
    copy.open()
    assert names[0] == "manifest.json"
    assert copy.info().num_docs == 49
    assert copy.search(terms(100), SearchOptions()) == []


def flip_byte_in_second_record(wal_file: Path) -> tuple[int, bytes]:
    """Damage the second record of `wal_file`; (its offset, the damaged file's bytes)."""
    data = bytearray(wal_file.read_bytes())
    second = 12 + int.from_bytes(data[4:8], "little")
    data[second + 20] ^= 0xFF
    wal_file.write_bytes(bytes(data))
    return second, bytes(data)


def test_a_corrupt_wal_leaves_the_store_refusing_to_serve_with_every_record_kept(
    tmp_path: Path,
) -> None:
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    for i in range(1, 6):
        store.update([Insert(i, terms(i))])
    store.close()
    (wal_file,) = (tmp_path / "i" / "wal").iterdir()
    offset, damaged = flip_byte_in_second_record(wal_file)

    reopened = IndexStore(tmp_path / "i", policy=LAZY)
    with pytest.raises(CorruptIndexError) as raised:
        reopened.open()
    assert raised.value.status == 503
    assert str(raised.value) == reopened.corruption
    assert f"{wal_file}: the record at offset {offset} is damaged and a valid record follows" in (
        str(raised.value)
    )
    assert "`acoustid-stack index restore`" in str(raised.value)
    assert "`acoustid-stack index rebuild`" in str(raised.value)
    with pytest.raises(CorruptIndexError):
        reopened.search(terms(1), SearchOptions())
    with pytest.raises(CorruptIndexError):
        reopened.update([Insert(9, terms(9))])
    with pytest.raises(CorruptIndexError):
        reopened.snapshot(tmp_path / "snap")
    assert not reopened.maintain()
    assert wal_file.read_bytes() == damaged  # nothing truncated, nothing appended


def test_a_damaged_segment_file_leaves_the_store_corrupt(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    store.update([Insert(i, terms(i)) for i in range(1, 20)])
    store.checkpoint()
    store.close()
    (segment,) = (tmp_path / "i" / "segments").glob("*.fpseg")
    segment.write_bytes(segment.read_bytes()[:100])
    reopened = IndexStore(tmp_path / "i", policy=LAZY)
    with pytest.raises(CorruptIndexError, match=f"{segment}: "):
        reopened.open()
    with pytest.raises(CorruptIndexError):
        reopened.info()


def test_a_format_1_index_is_served_checked_and_rewritten_at_the_next_compaction(
    tmp_path: Path,
) -> None:
    documents = {i: terms(i) for i in range(1, 300)}
    fpseg001.write_index(tmp_path / "i", documents)
    assert check_index(tmp_path / "i").problems == []

    store = IndexStore(tmp_path / "i", policy=EAGER)
    store.open()
    (old,) = store.segments()
    assert isinstance(old, LegacySegment)
    assert [h.id for h in store.search(terms(7), SearchOptions(limit=1))] == [7]
    store.snapshot(tmp_path / "snap")  # still format 1, restorable as such
    assert verify_index_dir(tmp_path / "snap")["format"] == 1
    store.update([Delete(8)])
    while store.maintain():
        pass
    (new,) = store.segments()
    assert isinstance(new, FileSegment)
    assert new.num_docs == 298
    assert [h.id for h in store.search(terms(7), SearchOptions(limit=1))] == [7]
    assert store.search(terms(8), SearchOptions()) == []
    store.close()
    assert read_manifest(tmp_path / "i")["format"] == 2
    assert check_index(tmp_path / "i").problems == []
    reopened = IndexStore(tmp_path / "i", policy=LAZY)
    reopened.open()
    assert reopened.info().num_docs == 298


def test_postings_read_per_term_stay_bounded_for_low_bit_terms_and_common_ones_are_left_out(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(9)
    low_bit_terms = {i: rng.integers(0, 2**22, 100, dtype=np.uint32) for i in range(1, 4001)}
    common = np.uint32(12345)
    store = IndexStore.create(tmp_path / "i", policy=LAZY, max_postings_per_term=500)
    store.open()
    # one file segment and one memory segment, the common term in 4000 documents of both
    for ids in (range(1, 2001), range(2001, 4001)):
        store.update([Insert(i, np.append(low_bit_terms[i], common)) for i in ids])
        if ids.start == 1:
            store.checkpoint()
    assert store.stats().file_segments == 1
    stats = SearchStats()
    query = np.append(low_bit_terms[3000], common)
    hits = store.search(query, SearchOptions(limit=1), stats)
    assert [h.id for h in hits] == [3000]
    assert stats.segments == 2
    read = dict(zip(np.sort(query).tolist(), stats.postings_read.tolist(), strict=True))
    # held by 4000 documents, over the cap of 500: left out, none of its postings read
    assert stats.common_terms == 1
    assert read.pop(int(common)) == 0
    # of 400,000 postings; FPSEG001 put all of them in 2 buckets and read ~100,000 per term
    assert max(read.values()) <= 2 * 4 * BUCKET_POSTINGS
