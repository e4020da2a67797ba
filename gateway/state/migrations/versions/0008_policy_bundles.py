"""policy bundles kept by content address, so a past decision can be replayed

Revision ID: 0008
Revises: 0007

Audit events record the version (a content digest) of the policy files that decided
them; ``policy_bundles`` keeps the files of every version the gateway ever loaded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_bundles",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )


def downgrade() -> None:
    op.drop_table("policy_bundles")
