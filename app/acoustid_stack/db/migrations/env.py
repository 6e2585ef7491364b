"""Alembic environment shared by the three histories (see acoustid_stack.db.migrate)."""

from acoustid_stack.db.migrations.environment import run

run()
