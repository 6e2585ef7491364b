"""Column and naming helpers shared by the three schemas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, MetaData, func

# Deterministic constraint names, so migrations and the metadata agree on them and a later
# migration can drop or alter a constraint by name.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_fk_%(column_0_name)s",
    "uq": "%(table_name)s_uniq_%(column_0_N_name)s",
    "ix": "%(table_name)s_idx_%(column_0_N_name)s",
    "ck": "%(table_name)s_check_%(constraint_name)s",
}


def new_metadata() -> MetaData:
    """An empty MetaData using the project's naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def created_column() -> Column[Any]:
    """`created timestamptz NOT NULL DEFAULT now()`."""
    return Column("created", DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_column() -> Column[Any]:
    """`updated timestamptz`, set by the writer when a row changes."""
    return Column("updated", DateTime(timezone=True))
