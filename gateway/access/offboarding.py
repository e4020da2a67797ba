"""Offboarding, suspension and reinstatement of principals and partner orgs.

Offboarding turns an employee into ``alumni`` in one transaction: raw and pseudonymized
grants are revoked (or downgraded to anonymized where configured and the grant names
a purpose), pending requests above the alumni ceiling are denied, custodianships are
removed (modules left with fewer than two custodians are flagged), and every API key
is revoked. Reads already streaming are cancelled, and the whole is recorded as one
audit event listing its consequences.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from gateway.access.grant_requests import GrantWorkflow
from gateway.access.permissions import ensure_role
from gateway.access.principals import Caller, now
from gateway.auditing.log import RequestMeta
from gateway.config import Config
from gateway.errors import Conflict, NotFound
from gateway.read.inflight import InflightReads
from gateway.state.database import bump_version
from gateway.state.models import ApiKey, CustodianRemoval, Grant, Org, Principal

log = logging.getLogger(__name__)

ABOVE_ALUMNI = ("raw", "pseudonymized")
MIN_CUSTODIANS = 2
# (kind, suspend) -> (the attempt audited, the change recorded)
_STATUS_ACTIONS = {
    ("principal", True): ("principal.suspend", "principal.suspended"),
    ("principal", False): ("principal.reinstate", "principal.reinstated"),
    ("org", True): ("org.suspend", "org.suspended"),
    ("org", False): ("org.reinstate", "org.reinstated"),
}


class Lifecycle:
    def __init__(self, workflow: GrantWorkflow, inflight: InflightReads) -> None:
        self._workflow = workflow
        self._inflight = inflight

    @property
    def _config(self) -> Config:
        return self._workflow.config

    def _principal(self, conn: Connection, ref: str) -> Row[Any]:
        table = Principal.__table__
        # A number is an id only within the database's 64-bit range; anything else
        # (2**63, or digits of another script) can only be a name.
        numeric = ref.isascii() and ref.isdigit() and len(ref) <= 19 and int(ref) < 2**63
        where = table.c.id == int(ref) if numeric else table.c.name == ref
        row = conn.execute(select(table).where(where)).first()
        if row is None:
            raise NotFound(f"no principal {ref!r}", principal=ref)
        return row

    # -- offboarding -------------------------------------------------------------------

    def offboard(
        self,
        ref: str,
        *,
        reason: str,
        caller: Caller | None = None,
        actor: str | None = None,
        meta: RequestMeta | None = None,
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            if caller is not None:
                ensure_role(caller, "principals.offboard")
            who = caller.name if caller else (actor or "system")
            return self._offboard(ref, reason=reason, who=who, caller=caller, meta=meta)

        return self._workflow.audited(
            "principal.offboard", run, caller=caller, meta=meta, actor=actor
        )

    def _offboard(
        self,
        ref: str,
        *,
        reason: str,
        who: str,
        caller: Caller | None,
        meta: RequestMeta | None,
    ) -> dict[str, Any]:
        at = now()
        with self._workflow.transaction() as conn:
            person = self._principal(conn, ref)
            if person.kind != "employee":
                raise Conflict(
                    f"{person.name!r} is {person.kind}; only employees are offboarded",
                    principal=person.name,
                )
            name = person.name
            conn.execute(
                update(Principal)
                .where(Principal.id == person.id)
                .values(kind="alumni", departed_at=at)
            )
            revoked, downgraded, withdrawn = self._settle_grants(conn, name, who, reason)
            custodianships, flagged = self._leave_custodianships(conn, name, who, reason, at)
            keys = self._live_keys(conn, person.id)
            conn.execute(
                update(ApiKey)
                .where(ApiKey.principal_id == person.id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            bump_version(conn, "grants")
            bump_version(conn, "principals")
        cancelled = self._inflight.cancel(principal=name)
        result = {
            "principal": name,
            "kind": "alumni",
            "departed_at": at.isoformat(),
            "grants_revoked": revoked,
            "grants_downgraded": downgraded,
            "requests_denied": withdrawn,
            "custodianships_removed": custodianships,
            "modules_below_two_custodians": flagged,
            "keys_revoked": keys,
            "reads_cancelled": cancelled,
        }
        self._workflow.record(
            "principal.offboarded",
            meta=meta,
            caller=caller,
            actor=who,
            decision="allow",
            reasons=[reason],
            alert=bool(flagged),
            **result,
        )
        if flagged:
            log.warning("modules below two custodians after offboarding: %s", sorted(flagged))
        return result

    def _settle_grants(
        self, conn: Connection, name: str, who: str, reason: str
    ) -> tuple[list[int], list[int], list[int]]:
        """Revoke, downgrade or deny each grant above what alumni may hold: the ids
        revoked, downgraded and of the requests denied."""
        downgrade = self._config.grants.downgrade_on_offboarding
        revoked: list[int] = []
        downgraded: list[int] = []
        withdrawn: list[int] = []
        for g in self._grants_above_alumni(conn, name):
            if g.status == "requested":
                values, action, bucket = {"status": "denied"}, "denied", withdrawn
            elif downgrade and g.purpose:
                values, action, bucket = {"profile": "anonymized"}, "downgraded", downgraded
            else:
                values, action, bucket = {"status": "revoked"}, "revoked", revoked
            conn.execute(update(Grant).where(Grant.id == g.id).values(**values))
            self._workflow.event(conn, g.id, who, action, f"offboarding: {reason}")
            bucket.append(g.id)
        return revoked, downgraded, withdrawn

    def _leave_custodianships(
        self, conn: Connection, name: str, who: str, reason: str, at: datetime
    ) -> tuple[list[str], dict[str, list[str]]]:
        """Remove ``name`` as a custodian everywhere: the modules, and those left with
        fewer than the minimum (with who remains)."""
        custodianships: list[str] = []
        flagged: dict[str, list[str]] = {}
        for module in self._config.modules:
            if name not in self._workflow.custodians(conn, module):
                continue
            conn.execute(
                insert(CustodianRemoval).values(
                    module=module, principal=name, removed_at=at, removed_by=who, reason=reason
                )
            )
            custodianships.append(module)
            left = self._workflow.custodians(conn, module)
            if len(left) < MIN_CUSTODIANS:
                flagged[module] = left
        return custodianships, flagged

    def offboard_preview(self, caller: Caller, ref: str) -> dict[str, Any]:
        """What offboarding ``ref`` would change, for a confirmation (admins); changes
        nothing. The same queries as the offboarding itself."""
        ensure_role(caller, "principals.offboard")
        downgrade = self._config.grants.downgrade_on_offboarding
        with self._workflow.transaction() as conn:
            person = self._principal(conn, ref)
            grants = self._grants_above_alumni(conn, person.name)
            modules = [
                m for m in self._config.modules if person.name in self._workflow.custodians(conn, m)
            ]
            keys = self._live_keys(conn, person.id)
        return {
            "principal": person.name,
            "kind": person.kind,
            "grants_revoked": [
                g.id for g in grants if g.status == "active" and not (downgrade and g.purpose)
            ],
            "grants_downgraded": [
                g.id for g in grants if g.status == "active" and downgrade and g.purpose
            ],
            "requests_denied": [g.id for g in grants if g.status == "requested"],
            "custodianships_removed": modules,
            "keys_revoked": keys,
        }

    @staticmethod
    def _grants_above_alumni(conn: Connection, name: str) -> list[Row[Any]]:
        table = Grant.__table__
        return list(
            conn.execute(
                select(table).where(
                    table.c.subject_type == "principal",
                    table.c.subject == name,
                    table.c.status.in_(("active", "requested")),
                    table.c.profile.in_(ABOVE_ALUMNI),
                )
            ).all()
        )

    @staticmethod
    def _live_keys(conn: Connection, principal_id: int) -> list[str]:
        return list(
            conn.scalars(
                select(ApiKey.key_id).where(
                    ApiKey.principal_id == principal_id, ApiKey.revoked_at.is_(None)
                )
            )
        )

    # -- suspension --------------------------------------------------------------------

    def set_principal_status(
        self, caller: Caller, ref: str, *, suspend: bool, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        def change(status: str) -> dict[str, Any]:
            ensure_role(caller, "principals.suspend")
            with self._workflow.transaction() as conn:
                person = self._principal(conn, ref)
                if person.name == caller.name:
                    raise Conflict("nobody suspends or reinstates themselves")
                if person.status == status:
                    raise Conflict(f"{person.name!r} is already {status}")
                conn.execute(
                    update(Principal).where(Principal.id == person.id).values(status=status)
                )
                bump_version(conn, "principals")
            cancelled = self._inflight.cancel(principal=person.name) if suspend else 0
            return {"principal": person.name, "status": status, "reads_cancelled": cancelled}

        return self._status_change(
            "principal", change, suspend=suspend, reason=reason, caller=caller, meta=meta
        )

    def set_org_status(
        self, caller: Caller, org: str, *, suspend: bool, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        def change(status: str) -> dict[str, Any]:
            ensure_role(caller, "orgs.suspend")
            with self._workflow.transaction() as conn:
                current = conn.scalar(select(Org.status).where(Org.name == org))
                if current is None:
                    raise NotFound(f"no org {org!r}", org=org)
                if current == status:
                    raise Conflict(f"org {org!r} is already {status}")
                conn.execute(update(Org).where(Org.name == org).values(status=status))
                members = list(conn.scalars(select(Principal.name).where(Principal.org == org)))
                bump_version(conn, "principals")
            cancelled = self._inflight.cancel(org=org) if suspend else 0
            return {
                "org": org,
                "status": status,
                "members": sorted(members),
                "reads_cancelled": cancelled,
            }

        return self._status_change(
            "org", change, suspend=suspend, reason=reason, caller=caller, meta=meta
        )

    def _status_change(
        self,
        kind: str,
        change: Callable[[str], dict[str, Any]],
        *,
        suspend: bool,
        reason: str,
        caller: Caller,
        meta: RequestMeta,
    ) -> dict[str, Any]:
        """Suspend or reinstate under audit: the attempt is audited as a whole, and the
        change made is recorded as allowed with its reason and result."""
        attempt, done = _STATUS_ACTIONS[kind, suspend]
        status = "suspended" if suspend else "active"

        def run() -> dict[str, Any]:
            result = change(status)
            self._workflow.record(
                done, meta=meta, caller=caller, decision="allow", reasons=[reason], **result
            )
            return result

        return self._workflow.audited(attempt, run, caller=caller, meta=meta)
