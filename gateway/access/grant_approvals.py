"""Decisions on a grant: custodians' approvals, break-glass approvals, denials and
revocations, each a move from one status to another under the workflow's lock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from gateway.access.grant_ledger import GrantLedger
from gateway.access.grant_rows import facts, invalid, iso, subject_label
from gateway.access.grant_separation import separation_conflict
from gateway.access.permissions import (
    GrantFacts,
    ensure_may_break_glass,
    ensure_may_decide,
    ensure_may_revoke,
)
from gateway.access.principals import Caller, now
from gateway.auditing.log import RequestMeta
from gateway.errors import AccessDenied, Conflict
from gateway.state.database import bump_version
from gateway.state.models import Grant, GrantApproval


@dataclass(frozen=True, slots=True)
class Transition:
    """A custodian's or an admin's move of a grant from one status to another."""

    attempted: str
    ensure: Callable[[Caller, GrantFacts, list[str]], None]
    allowed_from: tuple[str, ...]
    refusal: str
    to: str
    audit_action: str
    changes_access: bool = False


DENIAL = Transition(
    attempted="grant.deny",
    ensure=ensure_may_decide,
    allowed_from=("requested",),
    refusal=", no longer pending",
    to="denied",
    audit_action="grant.denied",
)
REVOCATION = Transition(
    attempted="grant.revoke",
    ensure=ensure_may_revoke,
    allowed_from=("active", "requested"),
    refusal="; only active or pending grants can be revoked",
    to="revoked",
    audit_action="grant.revoked",
    changes_access=True,
)


class GrantApprovals(GrantLedger):
    """Approvals, break-glass approvals, denials and revocations of grants."""

    def approve(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        return self.audited(
            "grant.approve",
            lambda: self._approve(caller, grant_id, reason, meta, kind="custodian"),
            caller=caller,
            meta=meta,
            grant_id=grant_id,
        )

    def break_glass(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        return self.audited(
            "grant.break_glass",
            lambda: self._approve(caller, grant_id, reason, meta, kind=caller.kind),
            caller=caller,
            meta=meta,
            grant_id=grant_id,
        )

    def _approve(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta, *, kind: str
    ) -> dict[str, Any]:
        with self.transaction() as conn:
            row = self._load(conn, grant_id, lock=True)
            self._ensure_approvable(conn, caller, row, kind)
            added = self._add_approval(conn, caller, row, reason, kind)
            count, ready = self._tally(conn, row)
            values: dict[str, Any] = {"approvals": count}
            if ready:
                values.update(self._activation(row))
                self.event(conn, grant_id, caller.name, "activated", None, approvals=count)
                bump_version(conn, "grants")
            conn.execute(update(Grant).where(Grant.id == grant_id).values(**values))
        common = dict(
            meta=meta, caller=caller, dataset=row.dataset, module=row.module, grant_id=grant_id
        )
        if added:
            self.record(
                "grant.approved" if kind == "custodian" else "grant.break_glass_approved",
                decision="allow",
                reasons=[reason],
                approvals=count,
                approvals_needed=self.approvals_needed(row.module, row.profile),
                **common,
            )
        if ready:
            self._record_activation(row, count, values["expires_at"], common)
        return self.show(caller, grant_id)

    def _ensure_approvable(
        self, conn: Connection, caller: Caller, row: Row[Any], kind: str
    ) -> None:
        """Refuse an approval this caller may not give, or that this grant cannot take."""
        if kind == "custodian":
            ensure_may_decide(caller, facts(row), self.custodians(conn, row.module))
        else:
            ensure_may_break_glass(caller, facts(row))
        if row.status != "requested":
            raise Conflict(
                f"grant {row.id} is {row.status}, no longer pending", status_now=row.status
            )
        if kind != "custodian" and row.break_glass_hours is None:
            raise invalid("reason", f"grant {row.id} did not ask for a break-glass exception")
        if row.break_glass_hours is None:
            conflict = separation_conflict(
                conn, self._config, row.subject_type, row.subject, row.module, exclude=row.id
            )
            if conflict is not None:
                raise AccessDenied(
                    conflict.detail, rule=conflict.rule, conflicting_grant=conflict.grant_id
                )

    def _add_approval(
        self, conn: Connection, caller: Caller, row: Row[Any], reason: str, kind: str
    ) -> bool:
        """Record the caller's approval once; whether it was new."""
        approvals = GrantApproval.__table__
        already = conn.scalar(
            select(approvals.c.id).where(
                approvals.c.grant_id == row.id,
                approvals.c.approver == caller.name,
                approvals.c.kind == kind,
            )
        )
        if already is not None:
            return False
        conn.execute(
            insert(GrantApproval).values(grant_id=row.id, approver=caller.name, kind=kind, at=now())
        )
        action = "approved" if kind == "custodian" else f"break_glass_{kind}"
        self.event(conn, row.id, caller.name, action, reason)
        return True

    def _tally(self, conn: Connection, row: Row[Any]) -> tuple[int, bool]:
        """Custodian approvals so far, and whether the grant may now become active."""
        approvals = GrantApproval.__table__
        count = int(
            conn.scalar(
                select(func.count())
                .select_from(approvals)
                .where(approvals.c.grant_id == row.id, approvals.c.kind == "custodian")
            )
            or 0
        )
        glass = set(
            conn.scalars(
                select(approvals.c.kind).where(
                    approvals.c.grant_id == row.id, approvals.c.kind != "custodian"
                )
            )
        )
        ready = count >= self.approvals_needed(row.module, row.profile) and (
            row.break_glass_hours is None or {"admin", "officer"} <= glass
        )
        return count, ready

    @staticmethod
    def _activation(row: Row[Any]) -> dict[str, Any]:
        activated = now()
        span = (
            timedelta(hours=row.break_glass_hours)
            if row.break_glass_hours
            else timedelta(days=row.days or 1)
        )
        return {"status": "active", "activated_at": activated, "expires_at": activated + span}

    def _record_activation(
        self, row: Row[Any], count: int, expires_at: datetime, common: dict[str, Any]
    ) -> None:
        self.record(
            "grant.activated",
            decision="allow",
            subject=subject_label(row),
            profile=row.profile,
            approvals=count,
            expires_at=iso(expires_at),
            **common,
        )
        if row.break_glass_hours:
            # The shipped `break-glass` alert rule watches for this event.
            self.record(
                "grant.break_glass",
                decision="allow",
                reasons=[f"separation exception for {subject_label(row)} on {row.module!r}"],
                hours=row.break_glass_hours,
                **common,
            )

    def deny(self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta) -> dict[str, Any]:
        return self._transition(caller, grant_id, reason, meta, DENIAL)

    def revoke(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        return self._transition(caller, grant_id, reason, meta, REVOCATION)

    def _transition(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta, move: Transition
    ) -> dict[str, Any]:
        """Move one grant to ``move.to``: check, change, record in its history, audit."""

        def run() -> dict[str, Any]:
            with self.transaction() as conn:
                row = self._load(conn, grant_id, lock=True)
                move.ensure(caller, facts(row), self.custodians(conn, row.module))
                if row.status not in move.allowed_from:
                    raise Conflict(
                        f"grant {grant_id} is {row.status}{move.refusal}",
                        status_now=row.status,
                    )
                conn.execute(update(Grant).where(Grant.id == grant_id).values(status=move.to))
                self.event(conn, grant_id, caller.name, move.to, reason)
                if move.changes_access:
                    bump_version(conn, "grants")
            self.record(
                move.audit_action,
                meta=meta,
                caller=caller,
                dataset=row.dataset,
                module=row.module,
                decision="deny",
                reasons=[reason],
                grant_id=grant_id,
            )
            return self.show(caller, grant_id)

        return self.audited(move.attempted, run, caller=caller, meta=meta, grant_id=grant_id)
