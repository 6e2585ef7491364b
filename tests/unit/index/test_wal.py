from __future__ import annotations

from pathlib import Path

import numpy as np

from acoustid_stack.index.interfaces import Delete, Insert
from acoustid_stack.index.wal import WriteAheadLog


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
