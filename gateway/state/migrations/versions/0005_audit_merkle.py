"""audit log: Merkle leaf hashes, searchable actor columns, tree head, checkpoints

Revision ID: 0005
Revises: 0004
"""

import hashlib

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _backfill(conn: sa.engine.Connection) -> tuple[int, str, str]:
    """Fill the new columns of events written before this revision; return the head."""
    # The RFC 6962 tree is rebuilt here with the stdlib alone: migrations must not
    # depend on code that may change after they are written.
    size, chain_head, frontier = 0, "0" * 64, list[bytes]()
    rows = conn.execute(sa.text("SELECT seq, body, hash FROM audit_events ORDER BY seq"))
    for seq, body, chain_hash in rows:
        raw = body.encode()
        leaf = hashlib.sha256(b"\x00" + raw).digest()
        event = orjson.loads(raw)
        conn.execute(
            sa.text(
                "UPDATE audit_events SET leaf_hash = :leaf, actor_kind = :kind, "
                "actor_org = :org, module = :module WHERE seq = :seq"
            ),
            {
                "leaf": leaf.hex(),
                "kind": event.get("actor_kind"),
                "org": event.get("actor_org"),
                "module": event.get("module"),
                "seq": seq,
            },
        )
        carry, value = size, leaf
        while carry & 1:
            value = hashlib.sha256(b"\x01" + frontier.pop() + value).digest()
            carry >>= 1
        frontier.append(value)
        size, chain_head = seq, chain_hash
    return size, chain_head, b"".join(frontier).hex()


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leaf_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("actor_kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("actor_org", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("module", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_audit_events_actor_org", ["actor_org"], unique=False)
        batch_op.create_index("ix_audit_events_module", ["module"], unique=False)
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chain_head", sa.String(length=64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    conn = op.get_bind()
    size, chain_head, frontier = _backfill(conn)
    conn.execute(
        sa.text(
            "INSERT INTO audit_head (id, size, chain_head, frontier) "
            "VALUES (1, :size, :head, :frontier)"
        ),
        {"size": size, "head": chain_head, "frontier": frontier},
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_module")
        batch_op.drop_index("ix_audit_events_actor_org")
        batch_op.drop_column("module")
        batch_op.drop_column("actor_org")
        batch_op.drop_column("actor_kind")
        batch_op.drop_column("leaf_hash")
