"""Database `fingerprint`: tracks, their fingerprints and the identifiers linked to them.

`format_id` points into the app database, so it carries no foreign key.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from acoustid_stack.db.schema.base import created_column, new_metadata, updated_column

metadata = new_metadata()


track = Table(
    "track",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("gid", UUID(as_uuid=True), nullable=False, unique=True),
    created_column(),
    updated_column(),
    # Set when the track was merged into another one; lookups follow it.
    Column("new_id", Integer, ForeignKey("track.id")),
)

fingerprint = Table(
    "fingerprint",
    metadata,
    # int4, not int8: the index stores fingerprint ids as 32-bit document ids.
    Column("id", Integer, Identity(), primary_key=True),
    Column("fingerprint", ARRAY(Integer), nullable=False),
    Column("length", SmallInteger, nullable=False),
    Column("bitrate", SmallInteger),
    Column("format_id", Integer),
    Column("track_id", Integer, ForeignKey("track.id"), nullable=False, index=True),
    Column("submission_count", Integer, nullable=False, server_default="1"),
    created_column(),
    updated_column(),
    CheckConstraint("length > 0", name="length"),
    CheckConstraint("bitrate > 0", name="bitrate"),
)


def _track_link(name: str, value: Column[Any], *extra: Column[Any]) -> Table:
    """A `track_<x>` table: how often a value was submitted together with a track."""
    return Table(
        name,
        metadata,
        Column("id", Integer, Identity(), primary_key=True),
        Column("track_id", Integer, ForeignKey("track.id"), nullable=False),
        value,
        Column("submission_count", Integer, nullable=False, server_default="1"),
        *extra,
        created_column(),
        updated_column(),
        UniqueConstraint("track_id", value.name),
        Index(None, value.name),
    )


meta = Table(
    "meta",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column(
        "gid",
        UUID(as_uuid=True),
        nullable=False,
        unique=True,
        server_default=func.gen_random_uuid(),
    ),
    Column("track", Text),
    Column("artist", Text),
    Column("album", Text),
    Column("album_artist", Text),
    Column("track_no", Integer),
    Column("disc_no", Integer),
    Column("year", Integer),
    created_column(),
)

foreignid_vendor = Table(
    "foreignid_vendor",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("name", String, nullable=False, unique=True),
)

foreignid = Table(
    "foreignid",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("vendor_id", Integer, ForeignKey("foreignid_vendor.id"), nullable=False),
    Column("name", Text, nullable=False),
    UniqueConstraint("vendor_id", "name"),
)

track_mbid = _track_link(
    "track_mbid",
    Column("mbid", UUID(as_uuid=True), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("merged_into", Integer, ForeignKey("track_mbid.id")),
)
track_puid = _track_link("track_puid", Column("puid", UUID(as_uuid=True), nullable=False))
track_meta = _track_link(
    "track_meta", Column("meta_id", Integer, ForeignKey("meta.id"), nullable=False)
)
track_foreignid = _track_link(
    "track_foreignid",
    Column("foreignid_id", Integer, ForeignKey("foreignid.id"), nullable=False),
)

# Every insert, hash change or delete of a fingerprint, written by a trigger (see the
# migration), so the index can catch up after a snapshot restore: reload the hashes and
# re-extract the query in Python. Ids are handed out before commit, so a reader must not
# trust `id` order alone: it takes rows whose `xid` (the writing transaction) is below
# `pg_snapshot_xmin(pg_current_snapshot())`, i.e. whose writer can no longer be in flight.
# Cron trims old rows by `created`.
fpindex_changelog = Table(
    "fpindex_changelog",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("fingerprint_id", Integer, nullable=False),
    Column("op", String(1), nullable=False),
    Column("xid", BigInteger, nullable=False),
    created_column(),
    CheckConstraint("op IN ('I', 'U', 'D')", name="op"),
    Index(None, "xid"),
    Index(None, "created"),
)

# One row per imported submission, written in the fingerprint transaction that applied it:
# the fingerprint and ingest databases cannot commit together, so a retry after a crash
# between their commits finds this row and redoes only the ingest side from the ids here
# (see `worker.applied`). Cron prunes rows by `created`, long after any retry.
import_applied = Table(
    "import_applied",
    metadata,
    Column("submission_id", BigInteger, primary_key=True, autoincrement=False),
    Column("fingerprint_id", Integer, nullable=False),
    Column("track_id", Integer, nullable=False),
    Column("meta_id", Integer),
    Column("foreignid_id", Integer),
    Column("track_mbid_id", Integer),
    Column("track_puid_id", Integer),
    Column("track_meta_id", Integer),
    Column("track_foreignid_id", Integer),
    created_column(),
    Index(None, "created"),
)
