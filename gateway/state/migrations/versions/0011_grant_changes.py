"""A change log of grants, written by triggers

Revision ID: 0011
Revises: 0010

Every change to a grant row that can alter a decision (insert, delete, an update of
anything but its last use) bumps the grants version and records the grant and its
subject under that version, in the same transaction, whichever process or tool made
it. A decider holding the decision state at an older grants version re-derives only
the subjects recorded since. The triggers take the versions row's lock before the log
row is written, so log rows become visible in version order.

SQLite drops a table's triggers when ``batch_alter_table`` recreates it: a later
migration that alters ``grants`` that way must create them again (``create_triggers``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Columns a decision reads; a change to any other (last_used_at, activated_at, the
# request's bookkeeping) changes no decision and is not logged.
DECIDING = (
    "subject_type",
    "subject",
    "module",
    "dataset",
    "profile",
    "purpose",
    "status",
    "columns",
    "row_filter",
    "row_cap",
    "window",
    "approvals",
    "expires_at",
    "break_glass_hours",
)

_SQLITE_LOG = """
    UPDATE versions SET value = value + 1 WHERE name = 'grants';
    INSERT INTO grant_changes (version, grant_id, subject_type, subject)
        SELECT value, {row}.id, {row}.subject_type, {row}.subject
        FROM versions WHERE name = 'grants';
"""

_PG_FUNCTION = """
CREATE FUNCTION grant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at_version bigint;
BEGIN
    UPDATE versions SET value = value + 1 WHERE name = 'grants'
        RETURNING value INTO at_version;
    IF TG_OP = 'TRUNCATE' THEN
        -- No rows to name: a log row without a subject asks for a full reload.
        INSERT INTO grant_changes (version) VALUES (at_version);
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO grant_changes (version, grant_id, subject_type, subject)
            VALUES (at_version, OLD.id, OLD.subject_type, OLD.subject);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR OLD.subject_type <> NEW.subject_type
            OR OLD.subject <> NEW.subject) THEN
        INSERT INTO grant_changes (version, grant_id, subject_type, subject)
            VALUES (at_version, NEW.id, NEW.subject_type, NEW.subject);
    END IF;
    RETURN NULL;
END
$$
"""


def _quoted(column: str) -> str:
    return f'"{column}"'


def create_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        differs = " OR ".join(f"OLD.{_quoted(c)} IS NOT NEW.{_quoted(c)}" for c in DECIDING)
        moved = "OLD.subject_type IS NOT NEW.subject_type OR OLD.subject IS NOT NEW.subject"
        op.execute(
            "CREATE TRIGGER grant_changes_insert AFTER INSERT ON grants BEGIN"
            + _SQLITE_LOG.format(row="NEW")
            + "END"
        )
        op.execute(
            "CREATE TRIGGER grant_changes_delete AFTER DELETE ON grants BEGIN"
            + _SQLITE_LOG.format(row="OLD")
            + "END"
        )
        op.execute(
            f"CREATE TRIGGER grant_changes_update AFTER UPDATE ON grants WHEN {differs} BEGIN"
            + _SQLITE_LOG.format(row="OLD")
            + "END"
        )
        # A grant moved to another subject changes both subjects' decisions.
        op.execute(
            f"CREATE TRIGGER grant_changes_move AFTER UPDATE ON grants WHEN {moved} BEGIN"
            + _SQLITE_LOG.format(row="NEW")
            + "END"
        )
        return
    # json has no equality operator; its text does.
    differs = " OR ".join(
        f"OLD.{_quoted(c)}::text IS DISTINCT FROM NEW.{_quoted(c)}::text" for c in DECIDING
    )
    op.execute(_PG_FUNCTION)
    op.execute(
        "CREATE TRIGGER grant_changes_row AFTER INSERT OR DELETE ON grants "
        "FOR EACH ROW EXECUTE FUNCTION grant_changed()"
    )
    op.execute(
        "CREATE TRIGGER grant_changes_update AFTER UPDATE ON grants FOR EACH ROW "
        f"WHEN ({differs}) EXECUTE FUNCTION grant_changed()"
    )
    op.execute(
        "CREATE TRIGGER grant_changes_truncate AFTER TRUNCATE ON grants "
        "FOR EACH STATEMENT EXECUTE FUNCTION grant_changed()"
    )


def upgrade() -> None:
    op.create_table(
        "grant_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("subject_type", sa.String(length=16), nullable=True),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_grant_changes_version", "grant_changes", ["version"])
    # The triggers log under the grants version: its row must exist before any grant.
    op.execute(
        "INSERT INTO versions (name, value) SELECT 'grants', 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM versions WHERE name = 'grants')"
    )
    create_triggers(op.get_bind().dialect.name)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update", "move"):
            op.execute(f"DROP TRIGGER IF EXISTS grant_changes_{name}")
    else:
        for name in ("row", "update", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS grant_changes_{name} ON grants")
        op.execute("DROP FUNCTION IF EXISTS grant_changed()")
    op.drop_index("ix_grant_changes_version", table_name="grant_changes")
    op.drop_table("grant_changes")
