"""API keys may expire

Revision ID: 0010
Revises: 0009

A key issued with an expiry (``kiteline keys issue NAME --expires 90d``) is refused
from that moment on; keys issued before, or without one, never expire.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
