"""Initial schema of the fingerprint database, with the fpindex change log trigger.

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


def _created() -> sa.Column[Any]:
    return sa.Column(
        "created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _updated() -> sa.Column[Any]:
    return sa.Column("updated", sa.DateTime(timezone=True))


def _create_track_link(name: str, value: sa.Column[Any], *extra: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("track_id", sa.Integer, sa.ForeignKey("track.id"), nullable=False),
        value,
        sa.Column("submission_count", sa.Integer, nullable=False, server_default="1"),
        *extra,
        _created(),
        _updated(),
        sa.UniqueConstraint("track_id", value.name),
    )
    op.create_index(f"{name}_idx_{value.name}", name, [value.name])


def upgrade() -> None:
    op.create_table(
        "track",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("gid", UUID, nullable=False, unique=True),
        _created(),
        _updated(),
        sa.Column("new_id", sa.Integer, sa.ForeignKey("track.id")),
    )
    op.create_table(
        "fingerprint",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("fingerprint", postgresql.ARRAY(sa.Integer), nullable=False),
        sa.Column("length", sa.SmallInteger, nullable=False),
        sa.Column("bitrate", sa.SmallInteger),
        sa.Column("format_id", sa.Integer),
        sa.Column("track_id", sa.Integer, sa.ForeignKey("track.id"), nullable=False),
        sa.Column("submission_count", sa.Integer, nullable=False, server_default="1"),
        _created(),
        _updated(),
        sa.CheckConstraint("length > 0", name="length"),
        sa.CheckConstraint("bitrate > 0", name="bitrate"),
    )
    op.create_index("fingerprint_idx_track_id", "fingerprint", ["track_id"])
    op.create_table(
        "meta",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column(
            "gid", UUID, nullable=False, unique=True, server_default=sa.func.gen_random_uuid()
        ),
        sa.Column("track", sa.Text),
        sa.Column("artist", sa.Text),
        sa.Column("album", sa.Text),
        sa.Column("album_artist", sa.Text),
        sa.Column("track_no", sa.Integer),
        sa.Column("disc_no", sa.Integer),
        sa.Column("year", sa.Integer),
        _created(),
    )
    op.create_table(
        "foreignid_vendor",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.String, nullable=False, unique=True),
    )
    op.create_table(
        "foreignid",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("vendor_id", sa.Integer, sa.ForeignKey("foreignid_vendor.id"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.UniqueConstraint("vendor_id", "name"),
    )
    _create_track_link(
        "track_mbid",
        sa.Column("mbid", UUID, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("merged_into", sa.Integer, sa.ForeignKey("track_mbid.id")),
    )
    _create_track_link("track_puid", sa.Column("puid", UUID, nullable=False))
    _create_track_link(
        "track_meta", sa.Column("meta_id", sa.Integer, sa.ForeignKey("meta.id"), nullable=False)
    )
    _create_track_link(
        "track_foreignid",
        sa.Column("foreignid_id", sa.Integer, sa.ForeignKey("foreignid.id"), nullable=False),
    )
    op.create_table(
        "fpindex_changelog",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("fingerprint_id", sa.Integer, nullable=False),
        sa.Column("op", sa.String(1), nullable=False),
        sa.Column("xid", sa.BigInteger, nullable=False),
        _created(),
        sa.CheckConstraint("op IN ('I', 'U', 'D')", name="op"),
    )
    op.create_index("fpindex_changelog_idx_xid", "fpindex_changelog", ["xid"])
    op.create_index("fpindex_changelog_idx_created", "fpindex_changelog", ["created"])
    # Only changes that alter what the index holds are logged: new rows, new hashes, deletes.
    op.execute(
        """
        CREATE FUNCTION fpindex_changelog_record() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO fpindex_changelog (fingerprint_id, op, xid)
            VALUES (
                CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
                left(TG_OP, 1),
                pg_current_xact_id()::text::bigint
            );
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER fingerprint_fpindex_changelog
        AFTER INSERT OR DELETE OR UPDATE OF fingerprint ON fingerprint
        FOR EACH ROW EXECUTE FUNCTION fpindex_changelog_record()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER fingerprint_fpindex_changelog ON fingerprint")
    op.execute("DROP FUNCTION fpindex_changelog_record()")
    for table in (
        "fpindex_changelog",
        "track_foreignid",
        "track_meta",
        "track_puid",
        "track_mbid",
        "foreignid",
        "foreignid_vendor",
        "meta",
        "fingerprint",
        "track",
    ):
        op.drop_table(table)
