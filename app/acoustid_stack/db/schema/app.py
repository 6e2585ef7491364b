"""Database `app`: accounts, applications (API keys), submission sources, formats, statistics."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import INET

from acoustid_stack.db.schema.base import created_column, new_metadata

metadata = new_metadata()

account = Table(
    "account",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("apikey", Text, nullable=False, unique=True),
    Column("mbuser", Text, unique=True),
    Column("anonymous", Boolean, nullable=False, server_default=false()),
    created_column(),
    Column("lastlogin", DateTime(timezone=True)),
    Column("submission_count", Integer, nullable=False, server_default="0"),
    # The application the account was created from; account and application reference
    # each other, so this key is added after both tables exist.
    Column("application_id", Integer, ForeignKey("application.id", use_alter=True)),
    Column("application_version", Text),
    Column("created_from", INET),
    Column("is_admin", Boolean, nullable=False, server_default=false()),
)

application = Table(
    "application",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("apikey", Text, nullable=False, unique=True),
    created_column(),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("account_id", Integer, ForeignKey("account.id"), nullable=False, index=True),
    Column("email", Text),
    Column("website", Text),
)

# One row per (application, account, version) that ever submitted; NULLS NOT DISTINCT so a
# NULL version still dedupes and the importer can find-or-insert with ON CONFLICT.
source = Table(
    "source",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("application_id", Integer, ForeignKey("application.id"), nullable=False),
    Column("account_id", Integer, ForeignKey("account.id"), nullable=False, index=True),
    Column("version", Text),
    UniqueConstraint("application_id", "account_id", "version", postgresql_nulls_not_distinct=True),
)

format = Table(
    "format",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)

# Daily counters (`update_stats`): one value per (name, day).
stats = Table(
    "stats",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    Column("date", Date, nullable=False, server_default=func.current_date()),
    Column("value", Integer, nullable=False),
    UniqueConstraint("name", "date"),
    Index(None, "date"),
)

# Flushed from Redis `lookups:<xx>` hashes; unique key so a flush is an upsert.
stats_lookups = Table(
    "stats_lookups",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("date", Date, nullable=False),
    Column("hour", SmallInteger, nullable=False),
    Column("application_id", Integer, ForeignKey("application.id"), nullable=False),
    Column("count_hits", Integer, nullable=False, server_default="0"),
    Column("count_nohits", Integer, nullable=False, server_default="0"),
    UniqueConstraint("date", "hour", "application_id"),
)

# Flushed from Redis `ua:<xx>` hashes; unique key so a flush is an upsert.
stats_user_agents = Table(
    "stats_user_agents",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("date", Date, nullable=False),
    Column("application_id", Integer, ForeignKey("application.id"), nullable=False),
    Column("user_agent", Text, nullable=False),
    Column("ip", Text, nullable=False),
    Column("count", Integer, nullable=False, server_default="0"),
    UniqueConstraint("date", "application_id", "user_agent", "ip"),
)
