"""Table `import_applied`: which submissions' fingerprint-side writes have committed.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LINK_IDS = ("track_mbid_id", "track_puid_id", "track_meta_id", "track_foreignid_id")


def upgrade() -> None:
    op.create_table(
        "import_applied",
        sa.Column("submission_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("fingerprint_id", sa.Integer, nullable=False),
        sa.Column("track_id", sa.Integer, nullable=False),
        sa.Column("meta_id", sa.Integer),
        sa.Column("foreignid_id", sa.Integer),
        *(sa.Column(name, sa.Integer) for name in _LINK_IDS),
        sa.Column(
            "created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("import_applied_idx_created", "import_applied", ["created"])


def downgrade() -> None:
    op.drop_table("import_applied")
