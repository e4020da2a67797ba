"""Grant hygiene: expire what has run out, revoke what goes unused, and tell each
custodian which of their module's grants are due for re-certification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from gateway.access.grant_ledger import GrantLedger
from gateway.access.grant_rows import aware, subject_label
from gateway.access.permissions import ensure_role
from gateway.access.principals import Caller, now
from gateway.auditing.log import RequestMeta
from gateway.state.database import bump_version
from gateway.state.models import Grant


@dataclass
class SweepFindings:
    expired: list[Row[Any]] = field(default_factory=list)
    unused: list[Row[Any]] = field(default_factory=list)
    due: dict[str, list[int]] = field(default_factory=dict)


class GrantSweep(GrantLedger):
    """The periodic sweep of active grants."""

    def sweep(
        self,
        *,
        caller: Caller | None = None,
        actor: str = "sweeper",
        meta: RequestMeta | None = None,
    ) -> dict[str, Any]:
        """Expire, revoke unused grants, and list those due for re-certification."""
        if caller is not None:
            ensure_role(caller, "grants.sweep")
            actor = caller.name
        reason = f"unused for {self._config.grants.revoke_unused_days} days"
        with self.transaction() as conn:
            found = self._sweep_findings(conn, now())
            for g in found.expired:
                conn.execute(update(Grant).where(Grant.id == g.id).values(status="expired"))
                self.event(conn, g.id, actor, "expired")
            for g in found.unused:
                conn.execute(update(Grant).where(Grant.id == g.id).values(status="revoked"))
                self.event(conn, g.id, actor, "revoked", reason)
            if found.expired or found.unused:
                bump_version(conn, "grants")
        self._record_sweep(found, reason, caller=caller, actor=actor, meta=meta)
        return {
            "expired": [g.id for g in found.expired],
            "revoked_unused": [g.id for g in found.unused],
            "recertify": found.due,
        }

    def _sweep_findings(self, conn: Connection, at: datetime) -> SweepFindings:
        """Sort the active grants into expired, unused and due for re-certification."""
        settings = self._config.grants
        table = Grant.__table__
        active = conn.execute(
            select(table).where(table.c.status == "active").order_by(table.c.id)
        ).all()
        custodians = self._custodian_map(conn)
        found = SweepFindings()
        for g in active:
            start = aware(g.activated_at) or aware(g.created_at) or at
            used = aware(g.last_used_at) or start
            if (aware(g.expires_at) or at) <= at:
                found.expired.append(g)
            elif settings.revoke_unused_days is not None and used < at - timedelta(
                days=settings.revoke_unused_days
            ):
                found.unused.append(g)
            elif start < at - timedelta(days=settings.recertify_after_days):
                for name in custodians.get(g.module, []):
                    found.due.setdefault(name, []).append(g.id)
        return found

    def _record_sweep(
        self,
        found: SweepFindings,
        reason: str,
        *,
        caller: Caller | None,
        actor: str,
        meta: RequestMeta | None,
    ) -> None:
        who = {"meta": meta, "caller": caller, "actor": actor}
        closed: list[tuple[str, Row[Any], dict[str, Any]]] = [
            ("grant.expired", g, {"subject": subject_label(g)}) for g in found.expired
        ]
        closed += [("grant.revoked", g, {"reasons": [reason]}) for g in found.unused]
        for action, g, why in closed:
            self.record(
                action,
                **who,
                dataset=g.dataset,
                module=g.module,
                decision="deny",
                grant_id=g.id,
                **why,
            )
        if found.due:
            self.record("grant.recertification_due", **who, custodians=found.due)
