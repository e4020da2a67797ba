"""Grant requests: who may ask for what, on which terms, and the workflow's one face.

``GrantWorkflow`` gathers the steps of a grant's life, each in its own module: the
shared ground (``grant_ledger``), decisions (``grant_approvals``), hygiene
(``grant_sweep``) and the requests here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from gateway.access.grant_approvals import GrantApprovals
from gateway.access.grant_rows import invalid
from gateway.access.grant_separation import SeparationConflict, separation_conflict
from gateway.access.grant_sweep import GrantSweep
from gateway.access.permissions import ensure_may_request
from gateway.access.principals import Caller, now
from gateway.auditing.log import RequestMeta
from gateway.errors import AccessDenied
from gateway.read.query import Condition
from gateway.read.query import _typed_filter as typed_filter
from gateway.read.views import ColumnView
from gateway.state.models import Grant, Org, Principal
from policies import KIND_CEILING, PROFILE_ORDER, is_at_most

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


class GrantWorkflow(GrantApprovals, GrantSweep):
    """The request/approval workflow and grant hygiene, on the state database."""

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
                raise invalid("org", f"unknown org {subject!r}")
            conflict = separation_conflict(conn, self._config, subject_type, subject, module)
            if conflict is not None and body.break_glass_hours is None:
                raise AccessDenied(
                    conflict.detail, rule=conflict.rule, conflicting_grant=conflict.grant_id
                )
            grant_id = self._insert_request(
                conn, caller, body, (subject_type, subject), module, dataset, conflict
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

    def _insert_request(
        self,
        conn: Connection,
        caller: Caller,
        body: GrantRequestBody,
        holder: tuple[str, str],
        module: str,
        dataset: str | None,
        conflict: SeparationConflict | None,
    ) -> int:
        """Write the requested grant and the first line of its history; its id."""
        subject_type, subject = holder
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
        return grant_id

    def _validate_target(self, body: GrantRequestBody) -> tuple[str, str | None]:
        if body.dataset is None and body.module is None:
            raise invalid("dataset", "name a dataset or a whole module")
        if body.dataset is not None:
            if body.dataset not in self._config.datasets:
                raise invalid("dataset", f"unknown dataset {body.dataset!r}")
            owner = self._config.datasets[body.dataset].module
            if body.module is not None and body.module != owner:
                raise invalid("module", f"dataset {body.dataset!r} belongs to module {owner!r}")
            return owner, body.dataset
        assert body.module is not None
        if body.module not in self._config.modules:
            raise invalid("module", f"unknown module {body.module!r}")
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
            raise invalid("profile", f"{kind}s govern data and never hold read grants")
        if not is_at_most(body.profile, ceiling):
            raise invalid(
                "profile", f"{kind} principals may hold at most {ceiling!r}, not {body.profile!r}"
            )
        purpose = (body.purpose or "").strip()
        if not purpose and (kind in ("partner", "alumni") or subject_type == "org"):
            raise invalid("purpose", f"{kind} grants must state a purpose")
        longest = self._config.modules[module].max_days.get(body.profile, DEFAULT_MAX_DAYS)
        if not 0 < body.days <= longest:
            raise invalid(
                "days",
                f"must be between 1 and {longest} for a {body.profile!r} grant "
                f"on module {module!r}",
            )
        if body.break_glass_hours is not None and not (
            0 < body.break_glass_hours <= MAX_BREAK_GLASS_HOURS
        ):
            raise invalid("break_glass_hours", f"must be between 1 and {MAX_BREAK_GLASS_HOURS}")
        if (body.columns or body.row_filter) and dataset is None:
            field = "columns" if body.columns else "row_filter"
            raise invalid(field, "columns and row filters need a dataset, not a whole module")
        if dataset is not None:
            self._validate_dataset_terms(body, dataset)

    def _validate_dataset_terms(self, body: GrantRequestBody, dataset: str) -> None:
        """The columns and row filter of a dataset grant name its columns, with values
        of their types."""
        known = self._config.datasets[dataset].columns
        for column in body.columns or []:
            if column not in known:
                raise invalid("columns", f"unknown column {column!r} in dataset {dataset!r}")
        for i, raw in enumerate(body.row_filter or []):
            try:
                condition = Condition.model_validate(raw)
            except ValidationError as exc:
                message = "; ".join(e["msg"] for e in exc.errors())
                raise invalid(f"row_filter[{i}]", message) from None
            if condition.column not in known:
                raise invalid(
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


__all__ = ["GrantWorkflow", "GrantRequestBody", "ReasonBody", "PROFILE_ORDER"]
