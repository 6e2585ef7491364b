from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.index.interfaces import (
    ConflictError,
    CorruptIndexError,
    Delete,
    Insert,
    SearchOptions,
)
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.store import IndexStore

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
