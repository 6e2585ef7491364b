"""A damaged WAL on a real server: refused loudly, nothing truncated, the runbook repairs it."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from index_servers import INDEX, IndexServer

from acoustid_stack.index.interfaces import Insert
from acoustid_stack.index.merge import MergePolicy
from acoustid_stack.index.store import IndexStore

LAZY = MergePolicy(idle_flush=3600, idle_compact=3600, max_memory_age=3600)


def terms(doc_id: int) -> list[int]:
    return np.random.default_rng(doc_id).integers(0, 2**32, 30, dtype=np.uint32).tolist()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("acoustid-stack") or "acoustid-stack", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def index_with_a_damaged_wal(data_dir: Path, snapshot: Path) -> tuple[Path, int, bytes]:
    """Version 1 in a snapshot, 2..5 only in the WAL, one byte of version 3 flipped.

    Returns the WAL file, the offset of the damaged record and the file's bytes.
    """
    store = IndexStore.create(data_dir / INDEX, policy=LAZY)
    store.open()
    store.update([Insert(1, np.array(terms(1), np.uint32))])
    names = store.snapshot(snapshot.parent / "snap")
    with tarfile.open(snapshot, "w") as tar:
        for name in names:
            tar.add(snapshot.parent / "snap" / name, arcname=name)
    for doc_id in range(2, 6):
        store.update([Insert(doc_id, np.array(terms(doc_id), np.uint32))])
    store.close()  # as after kill -9: versions 2..5 are only in the WAL
    (wal_file,) = (data_dir / INDEX / "wal").glob("wal-*.log")
    data = bytearray(wal_file.read_bytes())
    second = 12 + int.from_bytes(data[4:8], "little")
    data[second + 20] ^= 0xFF
    wal_file.write_bytes(bytes(data))
    return wal_file, second, bytes(data)


def test_a_corrupt_wal_is_refused_loudly_and_restore_repairs_it(
    start_server: Callable[..., IndexServer], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    snapshot = tmp_path / "fingerprints.tar"
    wal_file, offset, damaged = index_with_a_damaged_wal(data_dir, snapshot)

    server = start_server(data_dir, health=b"CORRUPT\n")
    assert server.call("GET", f"/{INDEX}/_health") == (503, b"CORRUPT\n")
    status, body = server.call("POST", f"/{INDEX}/_search", {"query": terms(1)})
    assert (status, body["error"]) == (503, "IndexNotReady")  # upstream's name, our detail
    assert "is corrupt and refuses to serve" in body["detail"]
    status, body = server.call(
        "POST", f"/{INDEX}/_update", {"changes": [{"insert": {"id": 9, "hashes": terms(9)}}]}
    )
    assert status == 503
    assert server.call("GET", "/_health")[0] == 200  # other indexes would still serve
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert f'fpindex_index_corrupt{{index="{INDEX}"}} 1.0' in metrics
    errors = [line for line in server.process.log_tail(200).splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, errors
    # records 2..5 are of one size: the next valid record is at twice the damaged one's offset
    damage = f"{wal_file}: the record at offset {offset} is damaged and a valid record follows"
    assert f"{damage} at offset {2 * offset};" in errors[0]
    assert "`acoustid-stack index restore`" in errors[0]
    assert "`acoustid-stack index rebuild`" in errors[0]
    assert "Traceback" not in server.process.log_tail(200)
    assert wal_file.read_bytes() == damaged

    check = cli("index", "check", "--dir", str(data_dir))
    assert check.returncode == 1
    assert check.stdout.splitlines() == [f"{damage} at offset {2 * offset}"]
    assert check.stderr.startswith("error: 1 problem(s) under")

    server.stop()
    restored = cli("index", "restore", str(snapshot), "--dir", str(data_dir), "--force")
    assert restored.returncode == 0, restored.stderr
    assert cli("index", "check", "--dir", str(data_dir)).stdout.startswith(
        f"ok: {INDEX} at version 1 (1 segments, 0 WAL records)"
    )
    server.start()
    status, body = server.call("POST", f"/{INDEX}/_search", {"query": terms(1)})
    assert (status, body["results"]) == (200, [{"id": 1, "score": 30}])
