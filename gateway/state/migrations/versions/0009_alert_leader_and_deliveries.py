"""alerts: one evaluating process per state database, and webhook deliveries that persist

Revision ID: 0009
Revises: 0008

``alert_cursor`` holds the last audit event the rules have seen and the lease of the
gateway process evaluating them, so that several processes on one database raise each
alert once. ``webhook_deliveries`` keeps every alert's delivery to every webhook until
the receiver accepts it, retried with backoff across restarts.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("seq", "url", name="uq_webhook_deliveries_seq_url"),
    )
    op.create_index(
        "ix_webhook_deliveries_pending", "webhook_deliveries", ["delivered_at", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("alert_cursor")
