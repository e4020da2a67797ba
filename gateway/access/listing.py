"""Who can read what, as the decision engine answers it.

A listing is never recomputed from the grants table: for every candidate principal
(one holding a grant that covers the dataset, directly or through its org) and every
purpose its grants name, it asks the decider exactly what a read would ask (casbin and
Rego, both must allow). It reports what that read would get: the profile, the grant,
the row filters and time window it carries, the columns returned, or the reasons for
the refusal. Two views: by dataset (custodians of its module and officers) and by
principal (officers): everything principal X can read today, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from gateway.access.decisions import Decider
from gateway.access.grant_requests import GrantWorkflow
from gateway.access.grants import GrantRecord
from gateway.access.permissions import ensure_may_see_access, ensure_role
from gateway.access.principals import Caller, caller_by_name, now
from gateway.auditing.log import RequestMeta
from gateway.config import Config
from gateway.errors import NotFound
from gateway.state.models import Principal
from policies import Decision, Profile, treatment


@dataclass(frozen=True, eq=False)
class AccessListing:
    engine: Engine
    config: Config
    decider: Decider
    workflow: GrantWorkflow

    def for_dataset(self, caller: Caller, dataset: str, meta: RequestMeta) -> dict[str, Any]:
        """Every candidate principal of ``dataset`` and what a read of theirs would get."""
        return self.workflow.audited(
            "access.list",
            lambda: self._for_dataset(caller, dataset, meta),
            caller=caller,
            meta=meta,
        )

    def for_principal(self, caller: Caller, ref: str, meta: RequestMeta) -> dict[str, Any]:
        """Every dataset ``ref`` holds a grant on, and what a read of it would get."""
        return self.workflow.audited(
            "access.principal",
            lambda: self._for_principal(caller, ref, meta),
            caller=caller,
            meta=meta,
        )

    def _for_dataset(self, caller: Caller, dataset: str, meta: RequestMeta) -> dict[str, Any]:
        if dataset not in self.config.datasets:
            raise NotFound(f"no dataset named {dataset!r}", dataset=dataset)
        module = self.config.datasets[dataset].module
        with self.engine.connect() as conn:
            custodians = self.workflow.custodians(conn, module)
        ensure_may_see_access(caller, module, custodians)
        at = now()
        holders = self.decider.holders(dataset, at)
        entries = [
            entry
            for subject in self._candidates(holders)
            for entry in self._decisions(subject, dataset, at)
        ]
        self.workflow.record(
            "access.list",
            meta=meta,
            caller=caller,
            dataset=dataset,
            module=module,
            decision="allow",
            entries=len(entries),
            allowed=sum(1 for e in entries if e["allowed"]),
        )
        return {"dataset": dataset, "module": module, "at": at.isoformat(), "access": entries}

    def _for_principal(self, caller: Caller, ref: str, meta: RequestMeta) -> dict[str, Any]:
        ensure_role(caller, "access.see_all")
        subject = caller_by_name(self.engine, ref)
        if subject is None:
            raise NotFound(f"no principal named {ref!r}")
        at = now()
        entries = [
            entry
            for dataset in self.config.datasets
            for entry in self._decisions(subject, dataset, at)
        ]
        self.workflow.record(
            "access.principal",
            meta=meta,
            caller=caller,
            decision="allow",
            subject=subject.name,
            entries=len(entries),
            readable=sorted({e["dataset"] for e in entries if e["allowed"]}),
        )
        return {
            "principal": subject.name,
            "kind": subject.kind,
            "status": subject.status,
            "org": subject.org,
            "org_status": subject.org_status,
            "at": at.isoformat(),
            "access": entries,
        }

    def _candidates(self, holders: set[str]) -> list[Caller]:
        users = {s.removeprefix("user:") for s in holders if s.startswith("user:")}
        orgs = {s.removeprefix("org:") for s in holders if s.startswith("org:")}
        table = Principal.__table__
        with self.engine.connect() as conn:
            names = conn.scalars(
                select(table.c.name)
                .where(table.c.name.in_(users) | table.c.org.in_(orgs))
                .order_by(table.c.name)
            ).all()
        found = (caller_by_name(self.engine, name) for name in names)
        return [c for c in found if c is not None]

    def _decisions(self, subject: Caller, dataset: str, at: datetime) -> list[dict[str, Any]]:
        """One entry per purpose the covering grants name (no purpose for a grant without
        one), each the decider's answer for a read stating that purpose."""
        grants = self.decider.covering_grants(caller=subject, dataset=dataset, at=at)
        purposes = sorted({g.purpose for g in grants}, key=lambda p: (p is not None, p or ""))
        entries = []
        for purpose in purposes:
            decision = self.decider.decide(caller=subject, dataset=dataset, at=at, purpose=purpose)
            entries.append(self._entry(subject, dataset, purpose, decision, grants))
        return entries

    def _entry(
        self,
        subject: Caller,
        dataset: str,
        purpose: str | None,
        decision: Decision,
        grants: list[GrantRecord],
    ) -> dict[str, Any]:
        obligations = decision.obligations
        grant = next((g for g in grants if obligations and g.id == obligations.grant_id), None)
        entry: dict[str, Any] = {
            "principal": subject.name,
            "kind": subject.kind,
            "status": subject.status,
            "org": subject.org,
            "dataset": dataset,
            "purpose": purpose,
            "allowed": decision.allowed,
            "reasons": list(decision.reasons),
            "grants": sorted(g.id for g in grants if g.purpose == purpose),
            "via": sorted({g.subject for g in grants if g.purpose == purpose}),
            "grant_id": None,
            "profile": None,
            "columns": None,
            "row_filters": [],
            "row_cap": None,
            "window": None,
            "expires_at": None,
        }
        if obligations is not None and grant is not None:
            entry.update(
                grant_id=obligations.grant_id,
                profile=obligations.profile,
                columns=self._columns(dataset, obligations.profile, obligations.columns),
                row_filters=list(obligations.row_filters),
                row_cap=obligations.row_cap,
                window=grant.window,
                expires_at=grant.expires_at.isoformat(),
            )
        return entry

    def _columns(
        self, dataset: str, profile: Profile, granted: tuple[str, ...] | None
    ) -> list[str]:
        spec = self.config.datasets[dataset].columns
        return [
            name
            for name, column in spec.items()
            if (granted is None or name in granted)
            and treatment(column.classification, profile) != "drop"
        ]
