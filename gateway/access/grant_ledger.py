"""The grant workflow's ground: its serialized transaction, history, audit and reads.

Every change to a grant runs in one serialized transaction (``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL): the pending check, the
approval count, the separation rules and the activation are read and written under
the same lock, so two custodians approving at once produce one active grant and an
exact count. The grant's history is written in that transaction (``grant_events``),
and every change is appended to the audit log once it is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.engine import Connection, Row

from audit import AuditError
from gateway.access.grant_rows import facts, iso, subject_label
from gateway.access.grant_separation import SeparationConflict, separation_conflict
from gateway.access.permissions import has_role, is_custodian, is_party, may_view_grant
from gateway.access.principals import Caller, now
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.errors import (
    AccessDenied,
    Conflict,
    GatewayError,
    NotFound,
    Unavailable,
    is_failure,
)
from gateway.state.models import CustodianRemoval, Grant, GrantApproval, GrantEvent

log = logging.getLogger(__name__)

T = TypeVar("T")
_GRANTS_LOCK_ID = 0x6B6C_6772  # "klgr": every grant change takes it


class GrantLedger:
    """The state every step of the grant workflow shares, and the reads of grants."""

    def __init__(self, engine: Engine, config: Config, audit: AuditLog) -> None:
        self._engine = engine
        self._config = config
        self._audit = audit
        self._postgres = engine.dialect.name == "postgresql"
        # The source schema of a dataset, to check a row filter's values against its
        # columns' types when a grant is requested (set by the service).
        self.schema_of: Callable[[str], Any] | None = None

    @property
    def config(self) -> Config:
        return self._config

    # -- plumbing ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One serialized write transaction for grant changes."""
        with self._engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                if self._postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _GRANTS_LOCK_ID})
                yield conn

    def audited(
        self,
        action: str,
        run: Callable[[], T],
        *,
        caller: Caller | None,
        meta: RequestMeta | None,
        actor: str | None = None,
        grant_id: int | None = None,
    ) -> T:
        """Run ``run()``; a refusal is recorded as ``grant.refused`` before it is raised."""
        try:
            return run()
        except GatewayError as error:
            if is_failure(error):
                raise
            try:
                self._audit.append(
                    "grant.refused",
                    meta=meta,
                    caller=caller,
                    actor=actor,
                    decision="deny" if isinstance(error, AccessDenied | Conflict) else "reject",
                    reasons=[error.detail],
                    attempted=action,
                    status=self._audit.status_of(error),
                    grant_id=grant_id,
                    rule=error.extensions.get("rule"),
                )
            except AuditError as exc:
                raise Unavailable("the audit log could not record this request") from exc
            raise

    def record(self, action: str, **fields: Any) -> None:
        """Append an audit event for a committed change; failing closed means a 503."""
        try:
            self._audit.append(action, **fields)
        except AuditError as exc:
            log.error("grant change committed but not audited: %s", action)
            raise Unavailable("the audit log could not record this change") from exc

    def custodians(self, conn: Connection, module: str) -> list[str]:
        """Custodians from kiteline.yaml, minus those removed at run time."""
        declared = self._config.modules[module].custodians
        removed = set(
            conn.scalars(
                select(CustodianRemoval.principal).where(CustodianRemoval.module == module)
            )
        )
        return [c for c in declared if c not in removed]

    def approvals_needed(self, module: str, profile: str) -> int:
        required = self._config.modules[module].approvals_required
        # Raw always needs two custodians, whatever the module says.
        return max(required, 2) if profile == "raw" else required

    def _load(self, conn: Connection, grant_id: int, *, lock: bool = False) -> Row[Any]:
        query = select(Grant.__table__).where(Grant.id == grant_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no grant {grant_id}", grant_id=grant_id)
        return row

    def event(
        self,
        conn: Connection,
        grant_id: int,
        actor: str,
        action: str,
        reason: str | None = None,
        **detail: Any,
    ) -> None:
        conn.execute(
            insert(GrantEvent).values(
                grant_id=grant_id,
                at=now(),
                actor=actor,
                action=action,
                reason=reason,
                detail=detail or None,
            )
        )

    def _hashed_filter(self, row_filter: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        # Filter literals may hold PII: the audit log gets keyed hashes only.
        return [
            {**f, "value": self._audit.redactor.hash(f.get("value"))} for f in (row_filter or [])
        ]

    # -- separation of modules ---------------------------------------------------------

    def separation_conflict(self, grant_id: int) -> SeparationConflict | None:
        """What approving pending ``grant_id`` would break, shown before a custodian
        decides (the approval itself checks again)."""
        with self._engine.connect() as conn:
            row = self._load(conn, grant_id)
            if row.break_glass_hours is not None:
                return None
            return separation_conflict(
                conn, self._config, row.subject_type, row.subject, row.module, exclude=grant_id
            )

    # -- reading -----------------------------------------------------------------------

    def _as_dict(self, row: Row[Any]) -> dict[str, Any]:
        return {
            "id": row.id,
            "subject": subject_label(row),
            "module": row.module,
            "dataset": row.dataset,
            "profile": row.profile,
            "purpose": row.purpose,
            "status": row.status,
            "approvals": row.approvals,
            "approvals_needed": self.approvals_needed(row.module, row.profile)
            if row.module in self._config.modules
            else None,
            "requested_by": row.requested_by or row.created_by,
            "created_at": iso(row.created_at),
            "activated_at": iso(row.activated_at),
            "expires_at": iso(row.expires_at),
            "days": row.days,
            "break_glass_hours": row.break_glass_hours,
            "columns": row.columns,
            "row_filter": row.row_filter,
            "row_cap": row.row_cap,
            "last_used_at": iso(row.last_used_at),
        }

    def _custodian_map(self, conn: Connection) -> dict[str, list[str]]:
        return {m: self.custodians(conn, m) for m in self._config.modules}

    def list_grants(self, caller: Caller, status: str | None = None) -> list[dict[str, Any]]:
        """Mine; custodians also see pending requests for their modules; officers see all."""
        table = Grant.__table__
        query = select(table).order_by(table.c.id)
        if status is not None:
            query = query.where(table.c.status == status)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            custodians = self._custodian_map(conn)
        see_all = has_role(caller, "grants.see_all")
        return [
            self._as_dict(row)
            for row in rows
            if see_all
            or is_party(caller, facts(row))
            or (row.status == "requested" and is_custodian(caller, custodians.get(row.module, [])))
        ]

    def show(self, caller: Caller, grant_id: int) -> dict[str, Any]:
        with self._engine.connect() as conn:
            row = self._load(conn, grant_id)
            if not may_view_grant(caller, facts(row), self.custodians_or_empty(conn, row.module)):
                # Not yours to see: indistinguishable from a grant that does not exist.
                raise NotFound(f"no grant {grant_id}", grant_id=grant_id)
            events = conn.execute(
                select(GrantEvent.__table__)
                .where(GrantEvent.grant_id == grant_id)
                .order_by(GrantEvent.id)
            ).all()
            approvers = conn.execute(
                select(GrantApproval.approver, GrantApproval.kind, GrantApproval.at)
                .where(GrantApproval.grant_id == grant_id)
                .order_by(GrantApproval.id)
            ).all()
        body = self._as_dict(row)
        body["approved_by"] = [
            {"name": a.approver, "as": a.kind, "at": iso(a.at)} for a in approvers
        ]
        body["history"] = [
            {
                "at": iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "reason": e.reason,
                **({"detail": e.detail} if e.detail else {}),
            }
            for e in events
        ]
        return body

    def custodians_or_empty(self, conn: Connection, module: str) -> list[str]:
        return self.custodians(conn, module) if module in self._config.modules else []
