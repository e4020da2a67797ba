"""egress and privacy budgets, pseudonym key versions

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_usage",
        sa.Column("account", sa.String(length=96), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("used", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account", "period"),
    )
    op.create_table(
        "grant_limits",
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("rows_per_request", sa.Integer(), nullable=True),
        sa.Column("rows_per_day", sa.BigInteger(), nullable=True),
        sa.Column("rows_total", sa.BigInteger(), nullable=True),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.PrimaryKeyConstraint("grant_id"),
    )
    op.create_table(
        "pseudonym_keys",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def downgrade() -> None:
    op.drop_table("pseudonym_keys")
    op.drop_table("grant_limits")
    op.drop_table("budget_usage")
