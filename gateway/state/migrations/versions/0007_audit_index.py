"""audit log: search indexes move to a table filled after the append

Revision ID: 0007
Revises: 0006

Each index on ``audit_events`` cost every append one more page written at its commit
(a sizable share of a small governed read on SQLite). The
searchable fields now go to ``audit_index``, which holds the indexes and is filled in
batches, many events per transaction (see ``gateway.auditing.index``). The upgrade copies
every event logged so far.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXED = ("ts", "request_id", "actor", "actor_org", "action", "dataset", "module")
COLUMNS = "seq, ts, request_id, actor, actor_kind, actor_org, action, dataset, module, decision"


def upgrade() -> None:
    op.create_table(
        "audit_index",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=True),
        sa.Column("actor_org", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=True),
        sa.Column("module", sa.String(64), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
    )
    # Copied before the indexes exist: building each once is faster than growing it.
    op.execute(f"INSERT INTO audit_index ({COLUMNS}) SELECT {COLUMNS} FROM audit_events")
    for column in INDEXED:
        op.create_index(f"ix_audit_index_{column}", "audit_index", [column])
        op.drop_index(f"ix_audit_events_{column}", table_name="audit_events")


def downgrade() -> None:
    for column in INDEXED:
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.drop_table("audit_index")
