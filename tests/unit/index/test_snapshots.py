"""check_archive: a copied snapshot is accepted only with every file its manifest names."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.index.interfaces import Delete, FpindexError, Insert
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.snapshots import check_archive
from acoustid_stack.index.store import IndexStore

LAZY = MergePolicy(idle_flush=3600, idle_compact=3600, max_memory_age=3600)


def archive_of_a_snapshot(tmp_path: Path, *, leave_out: str | None = None) -> Path:
    """A tar of a real store's snapshot (segment + tombstones), as the server streams it."""
    store = IndexStore.create(tmp_path / "i", policy=LAZY)
    store.open()
    rng = np.random.default_rng(1)
    store.update([Insert(i, rng.integers(0, 2**32, 40, dtype=np.uint32)) for i in range(1, 60)])
    store.checkpoint()
    store.update([Delete(3)])
    names = store.snapshot(tmp_path / "snap")
    store.close()
    assert any(name.startswith("segments/") for name in names)
    archive = tmp_path / "snapshot.tar"
    with tarfile.open(archive, "w") as tar:
        for name in names:
            if name != leave_out:
                tar.add(tmp_path / "snap" / name, arcname=name)
    return archive


def test_a_whole_snapshot_passes(tmp_path: Path) -> None:
    check_archive(archive_of_a_snapshot(tmp_path), "shard-a")


def test_a_snapshot_cut_short_is_refused(tmp_path: Path) -> None:
    archive = archive_of_a_snapshot(tmp_path)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(FpindexError, match="snapshot of shard-a is not a complete archive"):
        check_archive(archive, "shard-a")


def test_a_snapshot_without_a_file_of_its_manifest_is_refused(tmp_path: Path) -> None:
    store_names = archive_of_a_snapshot(tmp_path / "probe")
    with tarfile.open(store_names) as tar:
        segment = next(n for n in tar.getnames() if n.startswith("segments/"))
    archive = archive_of_a_snapshot(tmp_path / "cut", leave_out=segment)
    with pytest.raises(FpindexError, match=f"snapshot of shard-a lacks {re.escape(segment)}"):
        check_archive(archive, "shard-a")


def test_a_tar_without_a_manifest_is_refused(tmp_path: Path) -> None:
    archive = archive_of_a_snapshot(tmp_path, leave_out="manifest.json")
    with pytest.raises(FpindexError, match=r"snapshot of shard-a has no manifest\.json"):
        check_archive(archive, "shard-a")
