"""Database `ingest`: submissions as received, their import results and provenance.

Ids of rows in the app and fingerprint databases (account, source, fingerprint, track…) are
plain columns: foreign keys cannot cross databases.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from acoustid_stack.db.schema.base import created_column, new_metadata

metadata = new_metadata()

submission = Table(
    "submission",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    created_column(),
    Column("handled", Boolean, nullable=False, server_default=false()),
    Column("handled_at", DateTime(timezone=True)),
    Column("account_id", Integer, nullable=False),
    Column("application_id", Integer, nullable=False),
    Column("application_version", Text),
    Column("source_id", Integer),
    Column("fingerprint", ARRAY(Integer), nullable=False),
    Column("length", SmallInteger, nullable=False),
    Column("bitrate", SmallInteger),
    Column("format", Text),
    Column("format_id", Integer),
    Column("meta", JSONB),
    Column("meta_id", Integer),
    Column("meta_gid", UUID(as_uuid=True)),
    Column("mbid", UUID(as_uuid=True)),
    Column("puid", UUID(as_uuid=True)),
    Column("foreignid", Text),
    Column("foreignid_id", Integer),
    CheckConstraint("length > 0", name="length"),
    CheckConstraint("bitrate > 0", name="bitrate"),
)

# The outbox re-publisher scans unhandled submissions; the partial index stays as small
# as the backlog.
Index(
    "submission_idx_unhandled",
    submission.c.id,
    postgresql_where=submission.c.handled.is_(False),
)

pending_submission = Table(
    "pending_submission",
    metadata,
    Column(
        "id",
        BigInteger,
        ForeignKey("submission.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
)

submission_result = Table(
    "submission_result",
    metadata,
    Column(
        "submission_id",
        BigInteger,
        ForeignKey("submission.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    created_column(),
    Column("account_id", Integer, nullable=False),
    Column("application_id", Integer, nullable=False),
    Column("application_version", Text),
    Column("fingerprint_id", Integer, nullable=False),
    Column("track_id", Integer, nullable=False),
    Column("track_gid", UUID(as_uuid=True)),
    Column("meta_id", Integer),
    Column("meta_gid", UUID(as_uuid=True)),
    Column("mbid", UUID(as_uuid=True)),
    Column("puid", UUID(as_uuid=True)),
    Column("foreignid", Text),
)

fingerprint_source = Table(
    "fingerprint_source",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("fingerprint_id", Integer, nullable=False, index=True),
    Column("submission_id", BigInteger, nullable=False, index=True),
    Column("source_id", Integer, nullable=False),
    created_column(),
)


def _track_link_source(link: str) -> Table:
    """`track_<x>_source`: which submission (NULL for a manual edit) added to `track_<x>`."""
    return Table(
        f"{link}_source",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column(f"{link}_id", Integer, nullable=False, index=True),
        Column("submission_id", BigInteger, index=True),
        Column("source_id", Integer, nullable=False),
        created_column(),
    )


track_mbid_source = _track_link_source("track_mbid")
track_puid_source = _track_link_source("track_puid")
track_meta_source = _track_link_source("track_meta")
track_foreignid_source = _track_link_source("track_foreignid")

# Moderation history of MBID links (disable/enable by an account).
track_mbid_change = Table(
    "track_mbid_change",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("track_mbid_id", Integer, nullable=False, index=True),
    Column("account_id", Integer, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("note", Text),
    created_column(),
)
