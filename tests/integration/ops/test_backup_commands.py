"""`backup run|list|verify|status` against a real PostgreSQL archiving to pgBackRest."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from acoustid_stack.cli import cli
from acoustid_stack.config import load_settings
from acoustid_stack.db.migrate import upgrade
from acoustid_stack.local.process import free_port
from acoustid_stack.local.servers import grant_traversal, init_postgres, start_postgres
from acoustid_stack.local.stack import Layout, write_config
from acoustid_stack.ops.layout import BackupRepository, StackFiles
from acoustid_stack.ops.pgbackrest import Cluster, PgBackRest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A stack folder with only PostgreSQL (archiving to pgBackRest) and migrated databases.

    Outside pytest's basetemp, which concurrent pytest sessions prune, and short enough for
    PostgreSQL's 107-byte socket paths."""
    root = Path(tempfile.mkdtemp(prefix="acoustid-backup-"))
    root.chmod(0o755)
    grant_traversal(root)
    ports = {name: free_port() for name in ("postgresql", "redis", "nats", "index", "api", "web")}
    StackFiles(root).save_ports(ports)
    write_config(Layout(root), ports, database_prefix="acoustid")
    repo = BackupRepository(root / "backup")
    pgbackrest = PgBackRest.configure(
        repo.pgbackrest_config,
        repo.pgbackrest_repo,
        Cluster(root / "postgresql", ports["postgresql"]),
    )
    init_postgres(
        root / "postgresql",
        settings={"archive_mode": "on", "archive_command": pgbackrest.archive_command()},
    )
    process, _ = start_postgres(root / "postgresql", ports["postgresql"], log_path=root / "pg.log")
    try:
        settings = load_settings(str(root / "acoustid.conf"))
        for _ in upgrade(settings.database):
            pass
        with psycopg.connect(settings.database.get("app").conninfo()) as conn:
            conn.execute("INSERT INTO account (name, apikey) VALUES ('backup test', 'k1')")
        pgbackrest.stanza_create()
        yield root
    finally:
        process.stop()
        shutil.rmtree(root, ignore_errors=True)


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_backups_are_listed_unverified_until_verify_restores_and_counts_them(
    stack_dir: Path,
) -> None:
    data = ["--data-dir", str(stack_dir)]
    _invoke("backup", "run", *data, "--what", "postgresql,dump")
    assert "unverified" in _invoke("backup", "list", *data)

    verified = _invoke("backup", "verify", *data)
    assert "postgresql: ok" in verified
    assert "app.account: 1" in verified
    assert "dump: ok" in verified
    assert "unverified" not in _invoke("backup", "list", *data)

    metrics = (stack_dir / "backup" / "acoustid_backup.prom").read_text()
    assert 'acoustid_backup_last_success_timestamp_seconds{kind="postgresql"}' in metrics
    assert 'acoustid_backup_last_verified_timestamp_seconds{kind="dump"}' in metrics


def test_status_fails_while_a_kind_was_never_backed_up(stack_dir: Path) -> None:
    _invoke("backup", "run", "--data-dir", str(stack_dir), "--what", "dump")
    result = CliRunner().invoke(cli, ["backup", "status", "--data-dir", str(stack_dir)])
    assert result.exit_code != 0
    assert "never" in result.output
