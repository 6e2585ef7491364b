"""`db upgrade` on a real PostgreSQL: creation, idempotence, concurrency."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import Result
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from acoustid_stack.config import DatabaseName, Settings
from acoustid_stack.db.migrate import EXTENSIONS, MIGRATION_LOCK_KEY, head_revision
from acoustid_stack.db.schema import DATABASE_NAMES, METADATA

pytestmark = pytest.mark.integration

RunDb = Callable[..., Result]
Connect = Callable[[DatabaseName], psycopg.Connection[tuple[Any, ...]]]
StartCli = Callable[..., subprocess.Popen[str]]


def _revision(conn: psycopg.Connection[tuple[Any, ...]]) -> str | None:
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def test_upgrade_creates_the_three_databases_with_extensions_and_every_table(
    run_db: RunDb, connect: Connect, fresh_settings: Settings
) -> None:
    run_db("upgrade")

    for database in DATABASE_NAMES:
        conn = connect(database)
        extensions = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        tables = {
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert set(EXTENSIONS) <= extensions
        assert tables == set(METADATA[database].tables) | {"alembic_version"}
        assert _revision(conn) == head_revision(database)


def test_migrated_schema_matches_the_sqlalchemy_tables_exactly(
    run_db: RunDb, fresh_settings: Settings
) -> None:
    run_db("upgrade")

    for database in DATABASE_NAMES:
        engine = create_engine(
            fresh_settings.database.get(database).sqlalchemy_url(), poolclass=NullPool
        )
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, METADATA[database]) == [], database


def test_second_upgrade_keeps_revisions_and_issues_no_ddl(run_db: RunDb, connect: Connect) -> None:
    run_db("upgrade")
    revisions = {}
    for database in DATABASE_NAMES:
        conn = connect(database)
        revisions[database] = _revision(conn)
        # Record every DDL command that even starts in this database from now on.
        conn.execute("CREATE TABLE ddl_seen (tag text, at timestamptz DEFAULT now())")
        conn.execute(
            """
            CREATE FUNCTION ddl_seen_record() RETURNS event_trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO ddl_seen (tag) VALUES (tg_tag); END $$
            """
        )
        conn.execute(
            "CREATE EVENT TRIGGER ddl_seen ON ddl_command_start EXECUTE FUNCTION ddl_seen_record()"
        )

    output = run_db("upgrade").output

    for database in DATABASE_NAMES:
        conn = connect(database)
        assert conn.execute("SELECT tag FROM ddl_seen").fetchall() == []
        assert _revision(conn) == revisions[database]
        assert f"{database}: already at head {revisions[database]}" in output


def test_two_concurrent_upgrades_both_succeed_and_each_database_migrates_once(
    start_cli: StartCli, connect: Connect
) -> None:
    first, second = start_cli("db", "upgrade"), start_cli("db", "upgrade")
    outputs = [process.communicate(timeout=120) for process in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    stdout = "".join(out for out, _ in outputs)
    for database in DATABASE_NAMES:
        head = head_revision(database)
        assert stdout.count(f"{database}: upgraded base → {head}") == 1, stdout
        assert stdout.count(f"{database}: already at head {head}") == 1, stdout
        assert _revision(connect(database)) == head


def test_upgrade_waits_while_another_migration_holds_the_lock(
    run_db: RunDb, start_cli: StartCli, connect: Connect
) -> None:
    run_db("upgrade", "app")
    holder = connect("app")
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))

    waiting = start_cli("db", "upgrade", "app")
    # Bounded wait until PostgreSQL shows the second run queued behind our lock.
    for _ in range(600):
        queued = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        if (queued and queued[0] == 1) or waiting.poll() is not None:
            break
        holder.execute("SELECT pg_sleep(0.05)")
    assert waiting.poll() is None, "upgrade finished while the migration lock was held"

    holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    out, err = waiting.communicate(timeout=60)

    assert waiting.returncode == 0, err
    assert f"app: already at head {head_revision('app')}" in out
