"""Alembic script location: `env.py`, the revision template and one history per database."""
