"""The state database's tables: principals, orgs, keys, grants, audit events, versions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Org(Base):
    __tablename__ = "orgs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Principal(Base):
    __tablename__ = "principals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    org: Mapped[str | None] = mapped_column(ForeignKey("orgs.name"), nullable=True)
    department: Mapped[str | None] = mapped_column(String(128), nullable=True)
    departed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A partner who may request grants for the whole org.
    org_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # principal | org
    subject: Mapped[str] = mapped_column(String(64))
    module: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: whole module
    profile: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    columns: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    row_filter: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)
    row_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # {"days": ["mon", ...], "start": "08:00", "end": "20:00", "timezone": "Asia/Shanghai"}
    window: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The request workflow (grant_requests.py): who asked, for how long, and when the
    # grant became active and was last used.
    requested_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    break_glass_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_grants_subject", "subject_type", "subject", "status"),)


class GrantApproval(Base):
    """One person's approval of one request; the unique key makes a second one count once."""

    __tablename__ = "grant_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), index=True)
    approver: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # custodian | admin | officer (break-glass)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("grant_id", "approver", "kind"),)


class GrantEvent(Base):
    """A grant's history: requested, approved, activated, denied, revoked, expired..."""

    __tablename__ = "grant_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    detail: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)


class CustodianRemoval(Base):
    """A custodianship declared in kiteline.yaml and removed at run time (offboarding)."""

    __tablename__ = "custodian_removals"

    module: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    removed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(512), nullable=True)


class AuditEvent(Base):
    """One hash-chained event. ``body`` is the canonical JSON that the hash covers;
    the other columns copy fields out of it, and verify checks they agree. Searches
    go through ``AuditIndexEntry``: an index here would cost every append a page."""

    __tablename__ = "audit_events"

    # On SQLite an INTEGER primary key is the row key itself (revision 0006); elsewhere
    # a BIGINT.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # RFC 6962 leaf hash of ``body`` (hex), and more copied fields (revision 0005).
    leaf_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor_org: Mapped[str | None] = mapped_column(String(64), nullable=True)
    module: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditIndexEntry(Base):
    """The searchable fields of one event, copied from ``audit_events`` in batches after
    the append (see ``gateway.auditing.index``), with the search indexes (revision 0007).
    Each index is ordered by ``seq`` (the row key on SQLite), so a search reads a page
    of newest events straight off it."""

    __tablename__ = "audit_index"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    actor_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor_org: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    dataset: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    module: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AuditHead(Base):
    """The one row that says where the log ends: its size, the chain's last hash and
    the Merkle frontier (hex roots of its perfect subtrees), moved by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    chain_head: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[str] = mapped_column(Text)


class AuditCheckpoint(Base):
    """A signed checkpoint (C2SP signed note) over the first ``tree_size`` events."""

    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Version(Base):
    """Counters bumped by every change that can alter a decision; caches key on them."""

    __tablename__ = "versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class GrantChange(Base):
    """One change to a grant row, under the grants version it bumped: written only by
    the triggers of migration 0011, read by the decider to re-derive what changed."""

    __tablename__ = "grant_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    # None (with no subject): a change that names no rows, such as a TRUNCATE.
    grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)


class BudgetUsage(Base):
    """What one budget account has spent in one period (``total`` or a UTC day).

    Accounts are ``grant:<id>:rows``, ``grant:<id>:epsilon``, ``org:<name>:epsilon``.
    Charges are conditional updates (``used + cost <= cap``), so concurrent requests
    can never overspend."""

    __tablename__ = "budget_usage"

    account: Mapped[str] = mapped_column(String(96), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    used: Mapped[float] = mapped_column(Float, default=0.0)


class GrantLimits(Base):
    """Per-grant overrides of the configured egress and privacy budgets."""

    __tablename__ = "grant_limits"

    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), primary_key=True)
    rows_per_request: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rows_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)


class PseudonymKey(Base):
    """Versions of the pseudonym key. The newest is current; older ones stay for tracing."""

    __tablename__ = "pseudonym_keys"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class PolicyBundle(Base):
    """The policy files of one version, keyed by their digest (the version audit
    events record): what ``explain --event`` replays a past decision under."""

    __tablename__ = "policy_bundles"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    files: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertCursor(Base):
    """How far the alert rules have read the audit log, and which gateway process holds
    the lease to read on (revision 0009): one evaluator per state database."""

    __tablename__ = "alert_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDelivery(Base):
    """One alert event to one webhook, kept until the receiver accepts it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("seq", "url", name="uq_webhook_deliveries_seq_url"),
        Index("ix_webhook_deliveries_pending", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    url: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
