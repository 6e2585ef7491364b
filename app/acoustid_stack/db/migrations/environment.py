"""What `env.py` runs: migrate the connection `acoustid_stack.db.migrate` handed over."""

from __future__ import annotations

from typing import cast

from alembic import context
from sqlalchemy import Connection

from acoustid_stack.config import DatabaseName
from acoustid_stack.db.schema import METADATA
from acoustid_stack.errors import UserError


def run() -> None:
    """Run the pending migrations inside the caller's transaction.

    The connection comes from `acoustid_stack.db.migrate` (built from our settings, holding
    the migration lock); offline SQL generation is not offered.
    """
    config = context.config
    database = cast(DatabaseName, config.get_main_option("acoustid_database"))
    connection = config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise UserError("run migrations with `acoustid-stack db upgrade|downgrade`")
    context.configure(connection=connection, target_metadata=METADATA[database])
    with context.begin_transaction():
        context.run_migrations()
