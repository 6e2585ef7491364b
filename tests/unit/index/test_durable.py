"""What a power loss keeps: a name only once its directory was fsynced after it appeared.

No power loss can be simulated here, so os.fsync is wrapped: each directory fsync records
the names the directory (an inode: a renamed directory keeps them) held then, each file
fsync the inode whose bytes are now safe. A file survives a power loss if every directory
from it up to the test's folder held its name at its last fsync, and (for data files) its
inode was fsynced.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from acoustid_stack.index.commands import index as index_command
from acoustid_stack.index.interfaces import Delete, Insert
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.store import MANIFEST, IndexStore, manifest_files, read_manifest

# flushes and merges only when the test asks for them
MANUAL = MergePolicy(idle_flush=3600, max_memory_age=3600, idle_compact=0, tier_factor=2)


def terms(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, 60, dtype=np.uint32)


def inode(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


class PowerLoss:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.entries: dict[tuple[int, int], set[str]] = {}
        self.synced: set[tuple[int, int]] = set()
        real_fsync, real_fdatasync = os.fsync, os.fdatasync

        def record(fd: int) -> None:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                self.entries[inode(info)] = set(os.listdir(fd))
            else:
                self.synced.add(inode(info))

        def fsync(fd: int) -> None:
            real_fsync(fd)
            record(fd)

        def fdatasync(fd: int) -> None:
            real_fdatasync(fd)
            record(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "fdatasync", fdatasync)

    def assert_kept(self, path: Path, *, data: bool = True) -> None:
        for entry in (path, *path.parents):
            if entry == self.root:
                break
            assert entry.name in self.entries.get(inode(entry.parent.stat()), set()), (
                f"{entry.relative_to(self.root)} may vanish at a power loss"
            )
        if data:
            assert inode(path.stat()) in self.synced, f"{path} has unsynced bytes"

    def assert_index_kept(self, index_dir: Path) -> None:
        """The manifest, every file it names and every WAL file survive."""
        self.assert_kept(index_dir / MANIFEST)
        for name in manifest_files(read_manifest(index_dir)):
            self.assert_kept(index_dir / name)
        for wal_file in (index_dir / "wal").glob("wal-*.log"):
            # bytes: each record is fdatasynced before it is acknowledged
            self.assert_kept(wal_file, data=wal_file.stat().st_size > 0)


def test_wal_files_segments_tombstones_and_manifest_survive_a_power_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    power = PowerLoss(tmp_path, monkeypatch)
    index_dir = tmp_path / "data" / "i"
    store = IndexStore.create(index_dir, policy=MANUAL)
    store.open()
    power.assert_index_kept(index_dir)
    store.update([Insert(i, terms(i)) for i in range(1, 40)])
    power.assert_index_kept(index_dir)
    store.checkpoint()  # a segment, a manifest, a new WAL file
    power.assert_index_kept(index_dir)
    store.update([Delete(3), Insert(50, terms(50))])
    store.checkpoint()  # a tombstone file and a second segment
    assert any(".del-" in name for name in manifest_files(read_manifest(index_dir)))
    power.assert_index_kept(index_dir)
    while store.maintain():  # merges the two segments into a third
        pass
    assert len(read_manifest(index_dir)["segments"]) == 1
    power.assert_index_kept(index_dir)
    store.close()


def test_a_restored_index_survives_a_power_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = IndexStore.create(tmp_path / "source", policy=MANUAL)
    source.open()
    source.update([Insert(i, terms(i)) for i in range(1, 40)])
    names = source.snapshot(tmp_path / "snap")
    source.close()
    archive = tmp_path / "snapshot.tar"
    with tarfile.open(archive, "w") as tar:
        for name in names:
            tar.add(tmp_path / "snap" / name, arcname=name)

    power = PowerLoss(tmp_path, monkeypatch)
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(
        index_command, ["restore", str(archive), "--dir", str(data_dir), "--name", "i"]
    )
    assert result.exit_code == 0, result.output
    power.assert_index_kept(data_dir / "i")
    # the server then opens it: the WAL it starts must survive too
    restored = IndexStore(data_dir / "i", policy=MANUAL)
    restored.open()
    restored.update([Insert(100, terms(100))])
    power.assert_index_kept(data_dir / "i")
    restored.close()
