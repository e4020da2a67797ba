"""grant requests, approvals, history, custodian removals

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("break_glass_hours", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("org_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "grant_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("grant_id", "approver", "kind"),
    )
    op.create_index("ix_grant_approvals_grant_id", "grant_approvals", ["grant_id"])
    op.create_table(
        "grant_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_grant_events_grant_id", "grant_events", ["grant_id"])
    op.create_table(
        "custodian_removals",
        sa.Column("module", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("module", "principal"),
    )


def downgrade() -> None:
    op.drop_table("custodian_removals")
    op.drop_index("ix_grant_events_grant_id", table_name="grant_events")
    op.drop_table("grant_events")
    op.drop_index("ix_grant_approvals_grant_id", table_name="grant_approvals")
    op.drop_table("grant_approvals")
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.drop_column("org_admin")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("activated_at")
        batch_op.drop_column("break_glass_hours")
        batch_op.drop_column("days")
        batch_op.drop_column("requested_by")
