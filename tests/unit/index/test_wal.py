from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from acoustid_stack.index.interfaces import Delete, Insert
from acoustid_stack.index.wal import WalCorruptionError, WriteAheadLog


def test_replay_returns_records_after_the_checkpoint_in_order(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.open(1)
    wal.append(1, [Insert(5, np.array([1, 2], np.uint32))], None)
    wal.append(2, [Delete(5)], {"k": "v"})
    wal.rotate(3)
    wal.append(3, [Insert(6, np.array([2**32 - 1], np.uint32))], None)
    wal.close()
    records = list(WriteAheadLog(tmp_path).replay(after_version=1))
    assert [r.version for r in records] == [2, 3]
    assert records[0].changes == [Delete(5)]
    assert records[0].metadata == {"k": "v"}
    inserted = records[1].changes[0]
    assert isinstance(inserted, Insert)
    assert inserted.hashes.tolist() == [2**32 - 1]


def test_a_torn_tail_is_dropped_and_truncated(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.open(1)
    wal.append(1, [Insert(1, np.array([1], np.uint32))], None)
    wal.append(2, [Insert(2, np.array([2], np.uint32))], None)
    wal.close()
    (path,) = WriteAheadLog(tmp_path).files()
    intact = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(intact - 3)  # the last record was cut mid-write
    assert [r.version for r in WriteAheadLog(tmp_path).replay(0)] == [1]
    assert path.stat().st_size < intact - 3
    with path.open("ab") as f:
        f.write(b"\x00" * 7)  # garbage after a crash
    assert [r.version for r in WriteAheadLog(tmp_path).replay(0)] == [1]


def write_wal(directory: Path, files: list[list[int]]) -> None:
    """A WAL whose files hold the versions `files[k]` (one insert of that id each)."""
    wal = WriteAheadLog(directory)
    for versions in files:
        wal.rotate(versions[0])
        for version in versions:
            wal.append(version, [Insert(version, np.array([version], np.uint32))], None)
    wal.close()


def record_offsets(path: Path) -> list[int]:
    """Where each record of a pristine WAL file starts."""
    data = path.read_bytes()
    offsets, position = [], 0
    while position < len(data):
        offsets.append(position)
        position += 12 + struct.unpack_from("<I", data, position + 4)[0]
    return offsets


def replay_or_error(wal: WriteAheadLog) -> list[int] | WalCorruptionError:
    try:
        return [record.version for record in wal.replay(0)]
    except WalCorruptionError as exc:
        return exc


def test_a_flipped_byte_anywhere_never_drops_an_acknowledged_record_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pristine = tmp_path / "pristine"
    write_wal(pristine, [[1, 2, 3], [4, 5, 6]])
    names = [p.name for p in WriteAheadLog(pristine).files()]
    newest = names[-1]
    last_record = record_offsets(pristine / newest)[-1]
    outcomes = {"corruption": 0, "torn tail": 0}
    for name in names:
        starts = record_offsets(pristine / name)
        size = (pristine / name).stat().st_size
        for position in range(size):  # every boundary and every byte inside every record
            case = tmp_path / f"{name}-{position}"
            shutil.copytree(pristine, case)
            damaged = bytearray((case / name).read_bytes())
            damaged[position] ^= 0x01
            (case / name).write_bytes(damaged)
            record_start = max(s for s in starts if s <= position)
            caplog.clear()
            outcome = replay_or_error(WriteAheadLog(case))
            if isinstance(outcome, WalCorruptionError):
                # refused, naming file and offset, with every byte still on disk
                assert (outcome.path.name, outcome.offset) == (name, record_start)
                assert (case / name).read_bytes() == bytes(damaged)
                outcomes["corruption"] += 1
                continue
            # only the newest record can be taken for a torn tail, and never in silence
            assert (name, record_start) == (newest, last_record), position
            assert outcome == [1, 2, 3, 4, 5]
            assert f"torn tail at offset {last_record}" in caplog.text
            assert str(case / name) in caplog.text
            outcomes["torn tail"] += 1
    assert outcomes["torn tail"] == (pristine / newest).stat().st_size - last_record
    assert outcomes["corruption"] > outcomes["torn tail"]


def test_a_gap_in_versions_is_corruption(tmp_path: Path) -> None:
    write_wal(tmp_path / "in-file", [[1, 2, 4]])
    with pytest.raises(WalCorruptionError, match="version 4 where 3 is due"):
        list(WriteAheadLog(tmp_path / "in-file").replay(0))
    write_wal(tmp_path / "lost-file", [[1, 2], [3, 4], [5]])
    wal = WriteAheadLog(tmp_path / "lost-file")
    wal.files()[1].unlink()
    with pytest.raises(WalCorruptionError, match="version 5 where 3 is due"):
        list(wal.replay(0))
    # the checkpoint says 2; the WAL must go on at 3
    with pytest.raises(WalCorruptionError, match="version 5 where 3 is due"):
        list(wal.replay(2))
    assert [r.version for r in wal.replay(4)] == [5]


def test_files_covered_by_the_checkpoint_are_not_read(tmp_path: Path) -> None:
    write_wal(tmp_path, [[1, 2], [3, 4]])
    older = WriteAheadLog(tmp_path).files()[0]
    older.write_bytes(b"\x00" * 10 + older.read_bytes())  # damaged, but all of it is checkpointed
    assert [r.version for r in WriteAheadLog(tmp_path).replay(2)] == [3, 4]
    with pytest.raises(WalCorruptionError):
        list(WriteAheadLog(tmp_path).replay(1))


def test_a_failed_append_is_cut_off_so_later_records_stay_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = WriteAheadLog(tmp_path)
    wal.open(1)
    wal.append(1, [Insert(1, np.array([1], np.uint32))], None)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match="No space left"):
        wal.append(2, [Insert(2, np.array([2], np.uint32))], None)
    monkeypatch.undo()
    wal.append(2, [Insert(3, np.array([3], np.uint32))], None)  # acknowledged
    wal.close()
    records = list(WriteAheadLog(tmp_path).replay(0))
    assert [(r.version, r.changes[0].id) for r in records] == [(1, 1), (2, 3)]
