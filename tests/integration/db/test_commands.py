"""`db status` output and how `db` commands fail when PostgreSQL is out of reach."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import psycopg
import pytest
from click.testing import Result

from acoustid_stack.config import Settings
from acoustid_stack.db.migrate import head_revision
from acoustid_stack.local.process import free_port

pytestmark = pytest.mark.integration

RunDb = Callable[..., Result]
StartCli = Callable[..., subprocess.Popen[str]]


def _status_rows(output: str) -> dict[str, str]:
    return {line.split()[1]: line for line in output.splitlines() if line.startswith("│ ")}


def test_status_reports_missing_databases_before_the_first_upgrade(
    run_db: RunDb, fresh_settings: Settings
) -> None:
    rows = _status_rows(run_db("status").output)

    assert set(rows) == {"app", "fingerprint", "ingest"}
    assert "missing" in rows["ingest"]
    assert fresh_settings.database.ingest.name in rows["ingest"]


def test_status_reports_current_and_head_revision_per_database(run_db: RunDb) -> None:
    run_db("upgrade")
    run_db("downgrade", "app")

    rows = _status_rows(run_db("status").output)

    assert "behind" in rows["app"]
    assert "base" in rows["app"]
    for database in ("fingerprint", "ingest"):
        assert rows[database].count(str(head_revision(database))) == 2
        assert "up to date" in rows[database]


@pytest.mark.parametrize("command", ["upgrade", "downgrade", "status"])
def test_unreachable_server_gives_one_line_naming_host_port_and_the_setting(
    start_cli: StartCli, command: str
) -> None:
    port = free_port()

    process = start_cli("db", command, ACOUSTID_DATABASE_PORT=str(port))
    out, err = process.communicate(timeout=60)

    assert process.returncode != 0
    assert len(err.strip().splitlines()) == 1, err
    assert f"127.0.0.1:{port}" in err
    assert "ACOUSTID_DATABASE_HOST" in err
    assert "Traceback" not in out + err


def test_database_migrated_by_a_newer_release_gives_one_line_and_exit_1(
    run_db: RunDb, start_cli: StartCli, fresh_settings: Settings
) -> None:
    run_db("upgrade", "ingest")
    with psycopg.connect(fresh_settings.database.ingest.conninfo(), autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")

    process = start_cli("db", "upgrade", "ingest")
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "'9999'" in err
    assert "Traceback" not in out + err
