"""`db downgrade` goes back exactly one step, and `db upgrade` comes forward again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory
from click.testing import Result

from acoustid_stack.config import DatabaseName
from acoustid_stack.db.migrate import alembic_config, head_revision
from acoustid_stack.db.schema import DATABASE_NAMES

pytestmark = pytest.mark.integration

RunDb = Callable[..., Result]
Connect = Callable[[DatabaseName], psycopg.Connection[tuple[Any, ...]]]


def _tables(conn: psycopg.Connection[tuple[Any, ...]]) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


def _previous(database: DatabaseName) -> str:
    """The revision one step before the head ("base" before the first)."""
    script = ScriptDirectory.from_config(alembic_config(database))
    revision = head_revision(database)
    assert revision is not None
    head = script.get_revision(revision)
    assert head is not None
    previous = head.down_revision
    assert previous is None or isinstance(previous, str), "a linear history"
    return previous or "base"


def _revision(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return "base" if row is None else str(row[0])


def test_downgrade_undoes_one_migration_of_the_named_database_only(
    run_db: RunDb, connect: Connect
) -> None:
    run_db("upgrade")
    head = head_revision("fingerprint")

    output = run_db("downgrade", "fingerprint").output

    assert f"fingerprint: downgraded {head} → {_previous('fingerprint')}" in output
    assert _revision(connect("fingerprint")) == _previous("fingerprint")
    assert "submission" in _tables(connect("ingest"))
    assert "account" in _tables(connect("app"))


def test_upgrade_after_downgrade_restores_every_database_to_head(
    run_db: RunDb, connect: Connect
) -> None:
    run_db("upgrade")
    run_db("downgrade")

    output = run_db("upgrade").output

    for database in DATABASE_NAMES:
        assert f"{database}: upgraded {_previous(database)} → {head_revision(database)}" in output
        assert "alembic_version" in _tables(connect(database))
        assert len(_tables(connect(database))) > 1


def test_downgrade_at_base_changes_nothing_and_succeeds(run_db: RunDb) -> None:
    output = run_db("downgrade", "ingest").output

    assert "ingest: nothing to undo (at base)" in output
