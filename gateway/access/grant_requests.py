"""Grant requests, approvals, denials, revocations, break-glass exceptions and the sweep.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.engine import Connection, Row

from audit import AuditError
from gateway.access.permissions import (
    GrantFacts,
    ensure_may_break_glass,
    ensure_may_decide,
    ensure_may_request,
    ensure_may_revoke,
    ensure_role,
    has_role,
    is_custodian,
    is_party,
    may_view_grant,
)
from gateway.access.principals import Caller, now
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.errors import (
    AccessDenied,
    Conflict,
    GatewayError,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from gateway.read.query import Condition
from gateway.read.query import _typed_filter as typed_filter
from gateway.read.views import ColumnView
from gateway.state.database import bump_version
from gateway.state.models import CustodianRemoval, Grant, GrantApproval, GrantEvent, Org, Principal
from policies import KIND_CEILING, PROFILE_ORDER, is_at_most

log = logging.getLogger(__name__)

T = TypeVar("T")
_GRANTS_LOCK_ID = 0x6B6C_6772  # "klgr": every grant change takes it
MAX_BREAK_GLASS_HOURS = 24
DEFAULT_MAX_DAYS = 365


class GrantRequestBody(BaseModel):
    """``POST /v1/grants``."""

    # Strict: a number is never taken from a string ("days": "30" is refused).
    model_config = ConfigDict(extra="forbid", strict=True)

    dataset: str | None = Field(None, max_length=64)
    module: str | None = Field(None, max_length=64)
    profile: Literal["raw", "pseudonymized", "anonymized", "aggregate"]
    columns: list[str] | None = Field(None, max_length=200)
    row_filter: list[dict[str, Any]] | None = Field(None, max_length=20)
    purpose: str | None = Field(None, max_length=256)
    # The bound keeps any value within date arithmetic; the module's limit is checked later.
    days: int = Field(le=36_500)
    org: str | None = Field(None, max_length=64, description="Request for this partner org.")
    break_glass_hours: int | None = Field(
        None,
        le=10_000,
        description="Ask for a time-boxed (at most 24 h) exception to the separation rules; "
        "it needs an admin's and an officer's approval besides the custodians'.",
    )


class ReasonBody(BaseModel):
    """``POST /v1/grants/{id}/approve | deny | revoke | break-glass``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(min_length=1, max_length=512)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    aware = _aware(moment)
    return aware.isoformat() if aware else None


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"{field}: {message}", field=field, errors=[{"field": field, "message": message}]
    )


def _subject(row: Row[Any]) -> str:
    return ("user:" if row.subject_type == "principal" else "org:") + row.subject


def _facts(row: Row[Any]) -> GrantFacts:
    return GrantFacts(row.subject_type, row.subject, row.module, row.requested_by)


@dataclass(frozen=True, slots=True)
class SeparationConflict:
    rule: str
    grant_id: int
    detail: str


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


class GrantWorkflow:
    """The request/approval workflow and grant hygiene, on the state database."""

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
            if error.status >= 500:
                raise
            try:
                self._audit.append(
                    "grant.refused",
                    meta=meta,
                    caller=caller,
                    actor=actor,
                    decision="deny" if error.status in (403, 409) else "reject",
                    reasons=[error.detail],
                    attempted=action,
                    status=error.status,
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

    # -- requests ----------------------------------------------------------------------

    def request(self, caller: Caller, body: GrantRequestBody, meta: RequestMeta) -> dict[str, Any]:
        return self.audited(
            "grant.request", lambda: self._request(caller, body, meta), caller=caller, meta=meta
        )

    def _request(self, caller: Caller, body: GrantRequestBody, meta: RequestMeta) -> dict[str, Any]:
        subject_type, subject = ("org", body.org) if body.org else ("principal", caller.name)
        with self._engine.connect() as conn:
            org_admin = bool(
                conn.scalar(select(Principal.org_admin).where(Principal.name == caller.name))
            )
        ensure_may_request(caller, subject_type=subject_type, subject=subject, org_admin=org_admin)
        module, dataset = self._validate_target(body)
        kind = caller.kind if subject_type == "principal" else "partner"
        self._validate_terms(body, module, dataset, kind, subject_type)
        with self.transaction() as conn:
            if (
                subject_type == "org"
                and conn.scalar(select(Org.name).where(Org.name == subject)) is None
            ):
                raise _invalid("org", f"unknown org {subject!r}")
            conflict = self._separation_conflict(conn, subject_type, subject, module)
            if conflict is not None and body.break_glass_hours is None:
                raise AccessDenied(
                    conflict.detail, rule=conflict.rule, conflicting_grant=conflict.grant_id
                )
            created = now()
            inserted = conn.execute(
                insert(Grant).values(
                    subject_type=subject_type,
                    subject=subject,
                    module=module,
                    dataset=dataset,
                    profile=body.profile,
                    purpose=body.purpose,
                    status="requested",
                    columns=body.columns,
                    row_filter=body.row_filter,
                    approvals=0,
                    created_by=caller.name,
                    requested_by=caller.name,
                    created_at=created,
                    # Placeholder: the grant's clock starts when it becomes active.
                    expires_at=created + timedelta(days=body.days),
                    days=body.days,
                    break_glass_hours=body.break_glass_hours,
                )
            ).inserted_primary_key
            assert inserted is not None
            grant_id = int(inserted[0])
            self.event(
                conn,
                grant_id,
                caller.name,
                "requested",
                body.purpose,
                separation_conflict=conflict.detail if conflict else None,
            )
        self.record(
            "grant.requested",
            meta=meta,
            caller=caller,
            dataset=dataset,
            module=module,
            decision="pending",
            grant_id=grant_id,
            subject=f"{'user' if subject_type == 'principal' else 'org'}:{subject}",
            profile=body.profile,
            purpose=body.purpose,
            days=body.days,
            columns=body.columns,
            row_filter=self._hashed_filter(body.row_filter),
            break_glass_hours=body.break_glass_hours,
        )
        return self.show(caller, grant_id)

    def _validate_target(self, body: GrantRequestBody) -> tuple[str, str | None]:
        if body.dataset is None and body.module is None:
            raise _invalid("dataset", "name a dataset or a whole module")
        if body.dataset is not None:
            if body.dataset not in self._config.datasets:
                raise _invalid("dataset", f"unknown dataset {body.dataset!r}")
            owner = self._config.datasets[body.dataset].module
            if body.module is not None and body.module != owner:
                raise _invalid("module", f"dataset {body.dataset!r} belongs to module {owner!r}")
            return owner, body.dataset
        assert body.module is not None
        if body.module not in self._config.modules:
            raise _invalid("module", f"unknown module {body.module!r}")
        return body.module, None

    def _validate_terms(
        self,
        body: GrantRequestBody,
        module: str,
        dataset: str | None,
        kind: str,
        subject_type: str,
    ) -> None:
        ceiling = KIND_CEILING.get(kind)
        if ceiling is None:
            raise _invalid("profile", f"{kind}s govern data and never hold read grants")
        if not is_at_most(body.profile, ceiling):
            raise _invalid(
                "profile", f"{kind} principals may hold at most {ceiling!r}, not {body.profile!r}"
            )
        purpose = (body.purpose or "").strip()
        if not purpose and (kind in ("partner", "alumni") or subject_type == "org"):
            raise _invalid("purpose", f"{kind} grants must state a purpose")
        longest = self._config.modules[module].max_days.get(body.profile, DEFAULT_MAX_DAYS)
        if not 0 < body.days <= longest:
            raise _invalid(
                "days",
                f"must be between 1 and {longest} for a {body.profile!r} grant "
                f"on module {module!r}",
            )
        if body.break_glass_hours is not None and not (
            0 < body.break_glass_hours <= MAX_BREAK_GLASS_HOURS
        ):
            raise _invalid("break_glass_hours", f"must be between 1 and {MAX_BREAK_GLASS_HOURS}")
        if (body.columns or body.row_filter) and dataset is None:
            field = "columns" if body.columns else "row_filter"
            raise _invalid(field, "columns and row filters need a dataset, not a whole module")
        if dataset is None:
            return
        known = self._config.datasets[dataset].columns
        for column in body.columns or []:
            if column not in known:
                raise _invalid("columns", f"unknown column {column!r} in dataset {dataset!r}")
        for i, raw in enumerate(body.row_filter or []):
            try:
                condition = Condition.model_validate(raw)
            except ValidationError as exc:
                message = "; ".join(e["msg"] for e in exc.errors())
                raise _invalid(f"row_filter[{i}]", message) from None
            if condition.column not in known:
                raise _invalid(
                    f"row_filter[{i}].column",
                    f"unknown column {condition.column!r} in dataset {dataset!r}",
                )
            if self.schema_of is not None:
                # A value that cannot match the column's type would fail every read
                # under the grant: refused now, with the field named.
                source = self.schema_of(dataset).field(condition.column).type
                spec = known[condition.column]
                view = ColumnView(condition.column, spec, "value", source, source)
                typed_filter(view, condition, f"row_filter[{i}]")

    # -- separation of modules ---------------------------------------------------------

    def _separation_conflict(
        self,
        conn: Connection,
        subject_type: str,
        subject: str,
        module: str,
        *,
        exclude: int | None = None,
    ) -> SeparationConflict | None:
        rules = self._config.separation
        if rules.max_modules_per_principal is None and not rules.exclusive:
            return None
        at = now()
        table = Grant.__table__
        active = [
            g
            for g in conn.execute(select(table).where(table.c.status == "active")).all()
            if g.id != exclude and (_aware(g.expires_at) or at) > at
        ]
        # Who would hold the module: the principal (with their org's grants), or every
        # member of the org (each with their own grants) and the org itself.
        holders: list[tuple[str, set[str]]] = []
        if subject_type == "principal":
            org = conn.scalar(select(Principal.org).where(Principal.name == subject))
            holders.append((subject, {f"user:{subject}"} | ({f"org:{org}"} if org else set())))
        else:
            holders.append((f"org {subject}", {f"org:{subject}"}))
            for name in conn.scalars(select(Principal.name).where(Principal.org == subject)):
                holders.append((name, {f"user:{name}", f"org:{subject}"}))
        for who, subjects in holders:
            held: dict[str, int] = {}
            for g in sorted(active, key=lambda g: g.id):
                if _subject(g) in subjects:
                    held.setdefault(g.module, g.id)
            for a, b in rules.exclusive:
                if module in (a, b):
                    other = b if module == a else a
                    if other in held and other != module:
                        return SeparationConflict(
                            "separation.exclusive",
                            held[other],
                            f"modules {a!r} and {b!r} may not be held together "
                            f"(separation.exclusive); {who} holds {other!r} through grant "
                            f"{held[other]}",
                        )
            limit = rules.max_modules_per_principal
            if limit is not None and module not in held and len(held) + 1 > limit:
                first = min(held.values())
                return SeparationConflict(
                    "separation.max_modules_per_principal",
                    first,
                    f"{who} already holds {len(held)} module(s) "
                    f"({', '.join(sorted(held))}); separation.max_modules_per_principal is "
                    f"{limit} (conflicting grant {first})",
                )
        return None

    def separation_conflict(self, grant_id: int) -> SeparationConflict | None:
        """What approving pending ``grant_id`` would break, shown before a custodian
        decides (the approval itself checks again)."""
        with self._engine.connect() as conn:
            row = self._load(conn, grant_id)
            if row.break_glass_hours is not None:
                return None
            return self._separation_conflict(
                conn, row.subject_type, row.subject, row.module, exclude=grant_id
            )

    # -- decisions on a request --------------------------------------------------------

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
            ensure_may_decide(caller, _facts(row), self.custodians(conn, row.module))
        else:
            ensure_may_break_glass(caller, _facts(row))
        if row.status != "requested":
            raise Conflict(
                f"grant {row.id} is {row.status}, no longer pending", status_now=row.status
            )
        if kind != "custodian" and row.break_glass_hours is None:
            raise _invalid("reason", f"grant {row.id} did not ask for a break-glass exception")
        if row.break_glass_hours is None:
            conflict = self._separation_conflict(
                conn, row.subject_type, row.subject, row.module, exclude=row.id
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
            subject=_subject(row),
            profile=row.profile,
            approvals=count,
            expires_at=_iso(expires_at),
            **common,
        )
        if row.break_glass_hours:
            # The shipped `break-glass` alert rule watches for this event.
            self.record(
                "grant.break_glass",
                decision="allow",
                reasons=[f"separation exception for {_subject(row)} on {row.module!r}"],
                hours=row.break_glass_hours,
                **common,
            )

    def deny(self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta) -> dict[str, Any]:
        return self._transition(
            caller,
            grant_id,
            reason,
            meta,
            Transition(
                attempted="grant.deny",
                ensure=ensure_may_decide,
                allowed_from=("requested",),
                refusal=", no longer pending",
                to="denied",
                audit_action="grant.denied",
            ),
        )

    def revoke(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta
    ) -> dict[str, Any]:
        return self._transition(
            caller,
            grant_id,
            reason,
            meta,
            Transition(
                attempted="grant.revoke",
                ensure=ensure_may_revoke,
                allowed_from=("active", "requested"),
                refusal="; only active or pending grants can be revoked",
                to="revoked",
                audit_action="grant.revoked",
                changes_access=True,
            ),
        )

    def _transition(
        self, caller: Caller, grant_id: int, reason: str, meta: RequestMeta, move: Transition
    ) -> dict[str, Any]:
        """Move one grant to ``move.to``: check, change, record in its history, audit."""

        def run() -> dict[str, Any]:
            with self.transaction() as conn:
                row = self._load(conn, grant_id, lock=True)
                move.ensure(caller, _facts(row), self.custodians(conn, row.module))
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

    # -- reading -----------------------------------------------------------------------

    def _as_dict(self, row: Row[Any]) -> dict[str, Any]:
        return {
            "id": row.id,
            "subject": _subject(row),
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
            "created_at": _iso(row.created_at),
            "activated_at": _iso(row.activated_at),
            "expires_at": _iso(row.expires_at),
            "days": row.days,
            "break_glass_hours": row.break_glass_hours,
            "columns": row.columns,
            "row_filter": row.row_filter,
            "row_cap": row.row_cap,
            "last_used_at": _iso(row.last_used_at),
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
            or is_party(caller, _facts(row))
            or (row.status == "requested" and is_custodian(caller, custodians.get(row.module, [])))
        ]

    def show(self, caller: Caller, grant_id: int) -> dict[str, Any]:
        with self._engine.connect() as conn:
            row = self._load(conn, grant_id)
            if not may_view_grant(caller, _facts(row), self.custodians_or_empty(conn, row.module)):
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
            {"name": a.approver, "as": a.kind, "at": _iso(a.at)} for a in approvers
        ]
        body["history"] = [
            {
                "at": _iso(e.at),
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

    # -- hygiene -----------------------------------------------------------------------

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
        at = now()
        settings = self._config.grants
        expired: list[Row[Any]] = []
        unused: list[Row[Any]] = []
        due: dict[str, list[int]] = {}
        table = Grant.__table__
        with self.transaction() as conn:
            active = conn.execute(
                select(table).where(table.c.status == "active").order_by(table.c.id)
            ).all()
            custodians = self._custodian_map(conn)
            for g in active:
                start = _aware(g.activated_at) or _aware(g.created_at) or at
                used = _aware(g.last_used_at) or start
                if (_aware(g.expires_at) or at) <= at:
                    expired.append(g)
                elif settings.revoke_unused_days is not None and used < at - timedelta(
                    days=settings.revoke_unused_days
                ):
                    unused.append(g)
                elif start < at - timedelta(days=settings.recertify_after_days):
                    for name in custodians.get(g.module, []):
                        due.setdefault(name, []).append(g.id)
            for g in expired:
                conn.execute(update(Grant).where(Grant.id == g.id).values(status="expired"))
                self.event(conn, g.id, actor, "expired")
            reason = f"unused for {settings.revoke_unused_days} days"
            for g in unused:
                conn.execute(update(Grant).where(Grant.id == g.id).values(status="revoked"))
                self.event(conn, g.id, actor, "revoked", reason)
            if expired or unused:
                bump_version(conn, "grants")
        for g in expired:
            self.record(
                "grant.expired",
                meta=meta,
                caller=caller,
                actor=actor,
                dataset=g.dataset,
                module=g.module,
                decision="deny",
                grant_id=g.id,
                subject=_subject(g),
            )
        for g in unused:
            self.record(
                "grant.revoked",
                meta=meta,
                caller=caller,
                actor=actor,
                dataset=g.dataset,
                module=g.module,
                decision="deny",
                reasons=[reason],
                grant_id=g.id,
            )
        if due:
            self.record(
                "grant.recertification_due", meta=meta, caller=caller, actor=actor, custodians=due
            )
        return {
            "expired": [g.id for g in expired],
            "revoked_unused": [g.id for g in unused],
            "recertify": due,
        }


__all__ = ["GrantWorkflow", "GrantRequestBody", "ReasonBody", "PROFILE_ORDER"]
