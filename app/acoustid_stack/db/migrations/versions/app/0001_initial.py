"""Initial schema of the app database.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("apikey", sa.Text, nullable=False, unique=True),
        sa.Column("mbuser", sa.Text, unique=True),
        sa.Column("anonymous", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("lastlogin", sa.DateTime(timezone=True)),
        sa.Column("submission_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("application_id", sa.Integer),
        sa.Column("application_version", sa.Text),
        sa.Column("created_from", postgresql.INET),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "application",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("apikey", sa.Text, nullable=False, unique=True),
        sa.Column(
            "created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("website", sa.Text),
    )
    op.create_index("application_idx_account_id", "application", ["account_id"])
    op.create_foreign_key(
        "account_fk_application_id", "account", "application", ["application_id"], ["id"]
    )
    op.create_table(
        "source",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("application.id"), nullable=False),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("account.id"), nullable=False),
        sa.Column("version", sa.Text),
        sa.UniqueConstraint(
            "application_id", "account_id", "version", postgresql_nulls_not_distinct=True
        ),
    )
    op.create_index("source_idx_account_id", "source", ["account_id"])
    op.create_table(
        "format",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
    )
    op.create_table(
        "stats",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("date", sa.Date, nullable=False, server_default=sa.func.current_date()),
        sa.Column("value", sa.Integer, nullable=False),
        sa.UniqueConstraint("name", "date"),
    )
    op.create_index("stats_idx_date", "stats", ["date"])
    op.create_table(
        "stats_lookups",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("hour", sa.SmallInteger, nullable=False),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("application.id"), nullable=False),
        sa.Column("count_hits", sa.Integer, nullable=False, server_default="0"),
        sa.Column("count_nohits", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("date", "hour", "application_id"),
    )
    op.create_table(
        "stats_user_agents",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("application_id", sa.Integer, sa.ForeignKey("application.id"), nullable=False),
        sa.Column("user_agent", sa.Text, nullable=False),
        sa.Column("ip", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("date", "application_id", "user_agent", "ip"),
    )


def downgrade() -> None:
    for table in ("stats_user_agents", "stats_lookups", "stats", "format", "source"):
        op.drop_table(table)
    op.drop_constraint("account_fk_application_id", "account", type_="foreignkey")
    op.drop_table("application")
    op.drop_table("account")
