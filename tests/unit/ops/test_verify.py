import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from acoustid_stack.ops.layout import BackupRepository
from acoustid_stack.ops.verify import verify_index_snapshot, verify_redis


def _backup(repo: BackupRepository, kind: str, name: str, content: bytes) -> Path:
    folder = repo.new_backup_dir(kind, datetime.now(UTC))
    (folder / name).write_bytes(content)
    (folder / "DONE").touch()
    return folder


def test_redis_backup_with_an_rdb_header_verifies(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    _backup(repo, "redis", "dump.rdb", b"REDIS0011rest")
    assert verify_redis(repo).ok


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
    assert not verify_index_snapshot(repo, "index-1").ok


def test_unfinished_backup_folder_is_not_listed(tmp_path: Path) -> None:
    repo = BackupRepository(tmp_path)
    repo.new_backup_dir("dump", datetime.now(UTC))  # no DONE: interrupted
    assert repo.backups("dump") == []
