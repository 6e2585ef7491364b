"""pg_basebackup repository bookkeeping: which base backups and WAL files are kept, and
which base backup a restore to a time starts from. Real backups and restores run in
tests/integration/ops and the pip drills."""

import json
import shutil
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acoustid_stack.errors import UserError
from acoustid_stack.local.servers import unprivileged_user
from acoustid_stack.ops.basebackup import BaseBackups
from acoustid_stack.ops.interfaces import Cluster
from acoustid_stack.ops.layout import BackupRepository
from acoustid_stack.ops.pgbackrest import RETENTION_FULL
from acoustid_stack.ops.restore import restore_postgresql

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _repo(tmp_path: Path) -> BaseBackups:
    tool = BaseBackups(tmp_path / "basebackup.json")
    tool.config.write_text(json.dumps({"data_dir": str(tmp_path / "pg"), "port": 1}))
    tool.wal_dir.mkdir(parents=True)
    tool.base_dir.mkdir(parents=True)
    return tool


def _base(tool: BaseBackups, label: str, start_wal: str, stopped: datetime) -> None:
    folder = tool.base_dir / label
    folder.mkdir()
    (folder / "backup_label").write_text(
        f"START WAL LOCATION: 0/{start_wal[-2:]}000028 (file {start_wal})\n"
        "CHECKPOINT LOCATION: 0/2000060\n"
    )
    meta = {"label": label, "kind": "full", "stopped_at": stopped.isoformat(), "size": 1}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_expiry_keeps_the_newest_base_backups_and_the_wal_from_the_oldest_kept_one(
    tmp_path: Path,
) -> None:
    tool = _repo(tmp_path)
    for n in range(1, 9):
        (tool.wal_dir / f"0000000100000000000000{n:02X}").touch()
    (tool.wal_dir / "000000020000000000000007").touch()  # after a restore: timeline 2
    (tool.wal_dir / "00000002.history").touch()
    (tool.wal_dir / "000000010000000000000004.00000028.backup").touch()
    (tool.base_dir / ".20260101T040000Z.partial").mkdir()  # one being taken right now
    _base(tool, "20260101T010000Z", "000000010000000000000002", T0)
    _base(tool, "20260101T020000Z", "000000010000000000000004", T0 + timedelta(hours=1))
    _base(tool, "20260101T030000Z", "000000020000000000000007", T0 + timedelta(hours=2))

    tool._expire()

    kept = [b.label for b in tool.backups()]
    assert kept == ["20260101T020000Z", "20260101T030000Z"]
    assert len(kept) == RETENTION_FULL
    assert (tool.base_dir / ".20260101T040000Z.partial").is_dir()
    wal = sorted(p.name for p in tool.wal_dir.iterdir())
    assert wal == [
        "000000010000000000000004",
        "000000010000000000000004.00000028.backup",
        "000000010000000000000005",
        "000000010000000000000006",
        "000000010000000000000007",
        "000000010000000000000008",
        "00000002.history",
        "000000020000000000000007",
    ]
    assert tool.wal_range() == ("000000010000000000000004", "000000010000000000000008")


def test_a_restore_to_a_time_before_every_base_backup_says_so(tmp_path: Path) -> None:
    tool = _repo(tmp_path)
    _base(tool, "20260101T010000Z", "000000010000000000000002", T0)
    with pytest.raises(UserError, match="no base backup that ended before 2025"):
        tool.restore(tmp_path / "pg", target_time=T0.replace(year=2025))


@pytest.mark.parametrize(
    ("text", "reason"),
    [("yesterday", "is not a timestamp"), ("2026-01-01 12:00:00", "has no UTC offset")],
)
def test_restore_time_must_be_a_timestamp_with_its_offset(
    tmp_path: Path, text: str, reason: str
) -> None:
    repo = BackupRepository(tmp_path)
    _repo(tmp_path)
    with pytest.raises(UserError, match=reason):
        restore_postgresql(repo, target_time=text)


def test_cluster_is_read_back_from_the_repository() -> None:
    # not under pytest's basetemp (0700): as root, configure opens the repository to
    # PostgreSQL's user, and refuses parents that user cannot pass
    root = Path(tempfile.mkdtemp(prefix="acoustid-basebackup-"))
    try:
        tool = BaseBackups.configure(root / "basebackup.json", Cluster(root / "pg", 15432))
        assert BaseBackups(tool.config).cluster() == Cluster(root / "pg", 15432)
        assert tool.archive_settings()["basic_archive.archive_directory"] == str(tool.wal_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_configuring_a_repository_changes_no_folder_above_it(tmp_path: Path) -> None:
    closed = tmp_path.parent.parent  # pytest's basetemp root, 0700
    config = tmp_path / "backup" / "basebackup.json"
    if unprivileged_user() is None:  # PostgreSQL runs as us: nothing to cross
        BaseBackups.configure(config, Cluster(tmp_path / "pg", 15432))
    else:
        with pytest.raises(UserError, match=f"chmod o\\+x {closed}"):
            BaseBackups.configure(config, Cluster(tmp_path / "pg", 15432))
    assert stat.S_IMODE(closed.stat().st_mode) == 0o700
