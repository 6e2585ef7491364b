"""`acoustid-stack db upgrade|downgrade|status`."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from acoustid_stack.config import DatabaseName, settings_from_context
from acoustid_stack.db import migrate
from acoustid_stack.db.schema import DATABASE_NAMES

_database_argument = click.argument(
    "databases", nargs=-1, type=click.Choice(DATABASE_NAMES), metavar="[DATABASE]..."
)


@click.group()
def db() -> None:
    """Create and migrate the app, fingerprint and ingest databases."""


@db.command()
@_database_argument
@click.pass_context
def upgrade(ctx: click.Context, databases: tuple[str, ...]) -> None:
    """Create missing databases and extensions, then migrate to the newest revision.

    DATABASE is app, fingerprint or ingest (default: all three). Safe to run again (a
    database at head is left untouched) and concurrently (one run migrates, the others wait
    for it). The configured user needs CREATEDB if a database does not exist yet.
    """
    settings = settings_from_context(ctx)
    console = Console()
    with console.status("migrating…") as progress:
        for change in migrate.upgrade(settings.database, _selected(databases)):
            progress.update(f"migrated {change.database}…")
            if change.changed:
                console.print(
                    f"{change.database}: upgraded {_revision(change.before)} → "
                    f"{_revision(change.after)}"
                )
            else:
                console.print(f"{change.database}: already at head {_revision(change.after)}")


@db.command()
@_database_argument
@click.pass_context
def downgrade(ctx: click.Context, databases: tuple[str, ...]) -> None:
    """Undo the newest migration of each DATABASE (default: all three), without asking.

    One step only; run again to go further back. Stepping back from the first revision
    drops every table of that database and its data: take a backup first.
    """
    settings = settings_from_context(ctx)
    console = Console()
    with console.status("downgrading…"):
        for change in migrate.downgrade(settings.database, _selected(databases)):
            if change.changed:
                console.print(
                    f"{change.database}: downgraded {_revision(change.before)} → "
                    f"{_revision(change.after)}"
                )
            else:
                console.print(f"{change.database}: nothing to undo (at base)")


@db.command()
@_database_argument
@click.pass_context
def status(ctx: click.Context, databases: tuple[str, ...]) -> None:
    """Show the current and head revision of each DATABASE (default: all three)."""
    settings = settings_from_context(ctx)
    table = Table("database", "name", "server", "current", "head", "state")
    for row in migrate.status(settings.database, _selected(databases)):
        if not row.exists:
            state = "[red]missing[/] (run db upgrade)"
        elif row.up_to_date:
            state = "[green]up to date[/]"
        else:
            state = "[yellow]behind[/] (run db upgrade)"
        table.add_row(
            row.database,
            row.target.name,
            f"{row.target.host}:{row.target.port}",
            _revision(row.current) if row.exists else "-",
            _revision(row.head),
            state,
        )
    Console().print(table)


def _selected(databases: tuple[str, ...]) -> tuple[DatabaseName, ...]:
    chosen = set(databases) or set(DATABASE_NAMES)
    return tuple(name for name in DATABASE_NAMES if name in chosen)


def _revision(revision: str | None) -> str:
    return revision or "base"
