"""Verify's checks that need no server; restores are checked on real servers in
tests/integration/ops/test_backup_commands.py."""

import io
import json
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from acoustid_stack.config import load_settings
from acoustid_stack.ops.backups import checksums
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.verify import verify_all, verify_index_snapshot, verify_redis


def _backup(repo: BackupRepository, kind: str, name: str, content: bytes) -> Path:
    folder = repo.new_backup_dir(kind, datetime.now(UTC))
    (folder / name).write_bytes(content)
    meta = {"taken_at": datetime.now(UTC).isoformat(), "sha256": checksums(folder)}
    (folder / "meta.json").write_text(json.dumps(meta))
    (folder / "DONE").touch()
    return folder


def test_a_backup_file_changed_since_it_was_taken_fails_by_its_checksum(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    folder = _backup(repo, "redis", "dump.rdb", b"VALKEY080 whatever was saved")
    (folder / "dump.rdb").write_bytes(b"VALKEY080 whatever was saveD")
    [result] = verify_all(repo, StackFiles(tmp_path), load_settings(None, environ={}))
    assert not result.ok
    assert "checksum" in result.detail
    assert "dump.rdb" in result.detail


def test_redis_backup_that_is_not_rdb_is_reported_failed(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    _backup(repo, "redis", "dump.rdb", b"garbage")
    result = verify_redis(repo)
    assert not result.ok
    assert "not an RDB" in result.detail


def test_index_snapshot_without_a_manifest_is_reported_failed(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("unrelated.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    _backup(repo, "index-1", "snapshot.tar", buffer.getvalue())
    settings = load_settings(None, environ={})
    assert not verify_index_snapshot(repo, "index-1", settings).ok


def test_unfinished_backup_folder_is_not_listed(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    repo.new_backup_dir("dump", datetime.now(UTC))  # no DONE: interrupted
    assert repo.backups("dump") == []
