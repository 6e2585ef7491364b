"""Initial schema of the ingest database.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UUID = postgresql.UUID(as_uuid=True)
TRACK_LINKS = ("track_mbid", "track_puid", "track_meta", "track_foreignid")


def _created() -> sa.Column[Any]:
    return sa.Column(
        "created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "submission",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _created(),
        sa.Column("handled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("handled_at", sa.DateTime(timezone=True)),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("application_id", sa.Integer, nullable=False),
        sa.Column("application_version", sa.Text),
        sa.Column("source_id", sa.Integer),
        sa.Column("fingerprint", postgresql.ARRAY(sa.Integer), nullable=False),
        sa.Column("length", sa.SmallInteger, nullable=False),
        sa.Column("bitrate", sa.SmallInteger),
        sa.Column("format", sa.Text),
        sa.Column("format_id", sa.Integer),
        sa.Column("meta", postgresql.JSONB),
        sa.Column("meta_id", sa.Integer),
        sa.Column("meta_gid", UUID),
        sa.Column("mbid", UUID),
        sa.Column("puid", UUID),
        sa.Column("foreignid", sa.Text),
        sa.Column("foreignid_id", sa.Integer),
        sa.CheckConstraint("length > 0", name="length"),
        sa.CheckConstraint("bitrate > 0", name="bitrate"),
    )
    op.create_index(
        "submission_idx_unhandled",
        "submission",
        ["id"],
        postgresql_where=sa.text("handled IS false"),
    )
    op.create_table(
        "pending_submission",
        sa.Column(
            "id",
            sa.BigInteger,
            sa.ForeignKey("submission.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
    )
    op.create_table(
        "submission_result",
        sa.Column(
            "submission_id",
            sa.BigInteger,
            sa.ForeignKey("submission.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        _created(),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("application_id", sa.Integer, nullable=False),
        sa.Column("application_version", sa.Text),
        sa.Column("fingerprint_id", sa.Integer, nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("track_gid", UUID),
        sa.Column("meta_id", sa.Integer),
        sa.Column("meta_gid", UUID),
        sa.Column("mbid", UUID),
        sa.Column("puid", UUID),
        sa.Column("foreignid", sa.Text),
    )
    op.create_table(
        "fingerprint_source",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("fingerprint_id", sa.Integer, nullable=False),
        sa.Column("submission_id", sa.BigInteger, nullable=False),
        sa.Column("source_id", sa.Integer, nullable=False),
        _created(),
    )
    op.create_index(
        "fingerprint_source_idx_fingerprint_id", "fingerprint_source", ["fingerprint_id"]
    )
    op.create_index("fingerprint_source_idx_submission_id", "fingerprint_source", ["submission_id"])
    for link in TRACK_LINKS:
        table = f"{link}_source"
        op.create_table(
            table,
            sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
            sa.Column(f"{link}_id", sa.Integer, nullable=False),
            sa.Column("submission_id", sa.BigInteger),
            sa.Column("source_id", sa.Integer, nullable=False),
            _created(),
        )
        op.create_index(f"{table}_idx_{link}_id", table, [f"{link}_id"])
        op.create_index(f"{table}_idx_submission_id", table, ["submission_id"])
    op.create_table(
        "track_mbid_change",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("track_mbid_id", sa.Integer, nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text),
        _created(),
    )
    op.create_index("track_mbid_change_idx_track_mbid_id", "track_mbid_change", ["track_mbid_id"])


def downgrade() -> None:
    op.drop_table("track_mbid_change")
    for link in reversed(TRACK_LINKS):
        op.drop_table(f"{link}_source")
    for table in ("fingerprint_source", "submission_result", "pending_submission", "submission"):
        op.drop_table(table)
