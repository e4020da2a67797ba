"""audit log: on SQLite, the sequence number is the table's own row key

Revision ID: 0006
Revises: 0005

A ``BIGINT`` primary key is not SQLite's row key: the events were stored by a hidden
rowid, with a separate unique index on ``seq``, and every search index ended in that
rowid. A search such as ``actor = ? ORDER BY seq DESC LIMIT 101`` then had to sort every
matching event. Declared ``INTEGER``, ``seq`` is the row key itself, each search index
is ordered by it, and the same page is read straight off the index. PostgreSQL is unaffected.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _retype_seq(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot change a primary key in place: the table is copied into one of the
    # new shape (in the migration's transaction), and its indexes are rebuilt.
    with op.batch_alter_table("audit_events", recreate="always") as batch_op:
        batch_op.alter_column("seq", existing_type=old, type_=new, existing_nullable=False)


def upgrade() -> None:
    _retype_seq(sa.BigInteger(), sa.Integer())


def downgrade() -> None:
    _retype_seq(sa.Integer(), sa.BigInteger())
