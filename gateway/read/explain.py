"""Explain a read before it is made, or a past decision after it was made.

``POST /v1/decisions/explain`` takes the full query a read would send (columns,
filters, order, limit, group_by, aggregates, epsilon) and answers what that read would
get, running the read's own steps without scanning or charging anything: the decision
(casbin and Rego), the caller's view of the dataset, the row or aggregate planner that
validates the query, the grant's row filters, and the budgets the read would charge.
Where the read stops at its first refusal, explain goes on and names each one: every
column, filter, order, grouping and aggregate the planner refuses, the decision's
reasons (purpose, window, separation, status) and any budget that cannot pay.

With ``{"event": SEQ}`` (officers) it replays the decision recorded by audit event SEQ
under the policy version that event names, from the decision basis the event recorded
(the casbin lines and the Rego input), and says whether the replay agrees.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine

from gateway.access import budgets
from gateway.access.decisions import Decider, Explanation
from gateway.access.policy_bundles import ReplayEngines
from gateway.access.principals import Caller, caller_by_name
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.errors import AccessDenied, GatewayError, InvalidRequest, NotFound
from gateway.read.aggregation import plan_aggregate
from gateway.read.anonymity import qi_spec
from gateway.read.plan import grant_filters, row_ceiling
from gateway.read.query import Aggregation, CursorCodec, QueryRequest, plan_rows
from gateway.read.view_cache import ViewCache
from gateway.read.views import DatasetView
from policies import Decision, Obligations, PolicyLine

EXPLAIN_FIELDS = frozenset({"principal", "dataset", "action", "event"})
# A planner's refusal names the part of the query it refers to: "where[0]: ...".
# The status a refusal is answered with (the HTTP wing's table, through the audit log).
StatusOf = Callable[[GatewayError], int | None]
_PLACE = re.compile(r"^(columns|where|order_by|group_by|aggregates)\[0\]")


class ExplainRequest(QueryRequest):
    """The read to explain (every field of a query, plus whose and which dataset), or
    the audit event whose decision to replay."""

    model_config = ConfigDict(extra="forbid")

    principal: str | None = Field(None, max_length=64, description="Default: yourself.")
    dataset: str | None = Field(None, max_length=64)
    action: Literal["read"] = "read"
    event: int | None = Field(
        None, ge=1, description="Replay the decision of this audit event (officers)."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> ExplainRequest:
        if (self.dataset is None) == (self.event is None):
            raise ValueError("name either a dataset (and the query) or an audit event")
        return self


@dataclasses.dataclass(eq=False, kw_only=True)
class Explainer:
    config: Config
    engine: Engine
    decider: Decider
    audit: AuditLog
    limits: budgets.LimitsCache
    cursors: CursorCodec
    views: ViewCache
    policy_version: Callable[[], str]
    _replays: ReplayEngines = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self._replays = ReplayEngines(self.engine, timeout_s=self.config.policy.timeout_s)

    # -- the request -------------------------------------------------------------------

    @staticmethod
    def parse(body: bytes) -> tuple[ExplainRequest, QueryRequest]:
        """The explain request, and the query in it validated as the read validates it."""
        try:
            request = ExplainRequest.model_validate_json(body or b"{}", strict=True)
            raw = orjson.loads(body or b"{}")
            query = QueryRequest.model_validate(
                {k: v for k, v in raw.items() if k not in EXPLAIN_FIELDS}
            )
        except ValidationError as exc:
            raise InvalidRequest(
                "the explain request is invalid",
                errors=[
                    {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                    for e in exc.errors()
                ],
            ) from None
        return request, query

    def explain(self, caller: Caller, body: bytes, meta: RequestMeta) -> dict[str, Any]:
        request, query = self.parse(body)
        if request.event is not None:
            return self.replay(caller, request.event, meta)
        assert request.dataset is not None
        name = request.dataset
        subject = self._subject(caller, request.principal)
        if name not in self.config.datasets:
            raise NotFound(f"no dataset named {name!r}", dataset=name)
        at = datetime.now(UTC)
        aggregate = bool(query.group_by or query.aggregates)
        explanation = self.decider.explain(
            caller=subject,
            dataset=name,
            at=at,
            purpose=query.purpose,
            profile=query.profile or ("aggregate" if aggregate else None),
        )
        decision = explanation.decision
        refusals: list[dict[str, Any]] = []
        obligations = None
        if not decision.allowed or decision.obligations is None:
            refusals += [{"kind": "decision", "detail": r} for r in decision.reasons]
        else:
            obligations, found = self._plan(subject, name, query, decision, aggregate, at)
            refusals += found
        self.audit.append(
            "decision.explain",
            meta=meta,
            caller=caller,
            dataset=name,
            module=self.config.datasets[name].module,
            decision="allow",
            subject=subject.name,
            outcome="allow" if decision.allowed and not refusals else "deny",
            decision_basis=decision.basis,
        )
        return {
            "principal": subject.name,
            "dataset": name,
            "action": request.action,
            "allowed": decision.allowed and not refusals,
            "decision": {"allowed": decision.allowed, "reasons": list(decision.reasons)},
            # What the read would answer: each refusal, or why it is allowed.
            "reasons": [r["detail"] for r in refusals] or list(decision.reasons),
            "refusals": refusals,
            "policy_version": self.policy_version(),
            "engines": _engines(explanation),
            "obligations": obligations,
        }

    def _subject(self, caller: Caller, principal: str | None) -> Caller:
        if principal in (None, caller.name):
            return caller
        if caller.kind != "officer":
            raise AccessDenied(
                "only security officers may explain another principal's access",
                rule="explain others",
            )
        found = caller_by_name(self.engine, principal or "")
        if found is None:
            raise NotFound(f"no principal named {principal!r}")
        return found

    # -- the read's own steps, without the scan --------------------------------------

    def _plan(
        self,
        subject: Caller,
        name: str,
        query: QueryRequest,
        decision: Decision,
        aggregate: bool,
        at: datetime,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        granted = decision.obligations
        assert granted is not None
        view = self.views.view(name, granted.profile, granted.columns)
        limits = self.limits.get(granted.grant_id, subject.version("grants"))
        grant = next(
            (
                g
                for g in self.decider.covering_grants(caller=subject, dataset=name, at=at)
                if g.id == granted.grant_id
            ),
            None,
        )
        out: dict[str, Any] = {
            "profile": granted.profile,
            "grant_id": granted.grant_id,
            "purpose": granted.purpose,
            "row_filters": list(granted.row_filters),
            "row_cap": granted.row_cap,
            "window": grant.window if grant is not None else None,
            "expires_at": grant.expires_at.isoformat() if grant is not None else None,
        }
        if aggregate:
            return out, self._plan_aggregate(subject, query, view, granted, limits, out)
        return out, self._plan_rows(query, view, granted, limits, out)

    def _plan_rows(
        self,
        query: QueryRequest,
        view: DatasetView,
        granted: Obligations,
        limits: budgets.Limits,
        out: dict[str, Any],
    ) -> list[dict[str, Any]]:
        max_rows = row_ceiling(self.config, granted, limits)
        refusals: list[dict[str, Any]] = []
        try:
            row_filters = grant_filters(view, granted)
        except GatewayError as error:
            return [_refusal("grant", error, self.audit.status_of)]

        def plan(request: QueryRequest) -> Any:
            return plan_rows(
                request,
                view,
                max_rows=max_rows,
                default_limit=self.config.gateway.default_limit,
                row_filters=row_filters,
                cursors=self.cursors,
            )

        try:
            planned = plan(query)
        except GatewayError as error:
            return _planner_refusals(query, plan, error, self.audit.status_of)
        spec = qi_spec(view)
        out.update(
            columns=[c.describe() for c in planned.output],
            limit=planned.limit,
            max_rows=max_rows,
            k=spec.k if spec is not None else None,
        )
        if limits.rows_per_day is not None or limits.rows_total is not None:
            charges = budgets.row_charges(granted.grant_id, limits, planned.limit, budgets.today())
            left = budgets.remaining(self.engine, charges)
            out["budgets"] = left
            room = [v for v in left.values() if v is not None]
            if room and min(room) <= 0:
                exhausted = next(label for label, v in left.items() if v is not None and v <= 0)
                refusals.append(
                    {
                        "kind": "budget",
                        "detail": f"the {exhausted} budget is exhausted: 0 left",
                        "budget": exhausted,
                    }
                )
            elif room and min(room) < planned.limit:
                out["limit"] = int(min(room))
        return refusals

    def _plan_aggregate(
        self,
        subject: Caller,
        query: QueryRequest,
        view: DatasetView,
        granted: Obligations,
        limits: budgets.Limits,
        out: dict[str, Any],
    ) -> list[dict[str, Any]]:
        refusals: list[dict[str, Any]] = []
        try:
            plan_aggregate(query, view)
        except GatewayError as error:
            refusals = _planner_refusals(
                query, lambda r: plan_aggregate(r, view), error, self.audit.status_of
            )
        try:
            epsilon = budgets.check_epsilon(self.config, query.epsilon)
        except GatewayError as error:
            return refusals + [_refusal("budget", error, self.audit.status_of)]
        org = subject.org if subject.kind == "partner" else None
        charges = budgets.epsilon_charges(self.config, granted.grant_id, limits, org, epsilon)
        left = budgets.remaining(self.engine, charges)
        out.update(
            columns=[c.describe() for c in view.columns.values() if c.treatment != "drop"],
            epsilon=epsilon,
            delta=self.config.budgets.delta,
            min_group_size=view.dataset.min_group_size,
            budgets=left,
        )
        for charge in charges:
            room = left.get(charge.label)
            if room is not None and room + 1e-9 < epsilon:
                refusals.append(
                    {
                        "kind": "budget",
                        "detail": f"the {charge.label} budget is exhausted: "
                        f"{budgets.fmt(room)} left, {budgets.fmt(epsilon)} needed",
                        "budget": charge.label,
                    }
                )
        return refusals

    # -- replay ------------------------------------------------------------------------

    def replay(self, caller: Caller, seq: int, meta: RequestMeta) -> dict[str, Any]:
        if caller.kind != "officer":
            raise AccessDenied(
                "only security officers may replay a past decision", rule="explain events"
            )
        event = self.audit.event(seq)
        if event is None:
            raise NotFound(f"no audit event {seq}")
        basis = event.get("decision_basis")
        if not isinstance(basis, dict):
            raise InvalidRequest(
                f"audit event {seq} ({event.get('action')}) records no decision basis: it is "
                "not a decision, or it was recorded before decisions kept one"
            )
        version = str(event.get("policy_version"))
        lines = [
            PolicyLine("p", tuple(v.strip() for v in line.split(","))) for line in basis["lines"]
        ]
        explanation = self.decider.replay(
            basis,
            rego=self._replays.rego(version),
            casbin=self._replays.casbin(version, lines),
        )
        decision = explanation.decision
        recorded = basis.get("decided") or {}
        obligations = decision.obligations
        replayed = {
            "allowed": decision.allowed,
            "reasons": list(decision.reasons),
            "profile": obligations.profile if obligations else None,
            "grant_id": obligations.grant_id if obligations else None,
        }
        self.audit.append(
            "decision.replay",
            meta=meta,
            caller=caller,
            dataset=event.get("dataset"),
            module=event.get("module"),
            decision="allow",
            event_seq=seq,
            replayed_policy_version=version,
            matches=replayed == recorded,
        )
        return {
            "event": seq,
            "action": event.get("action"),
            "actor": event.get("actor"),
            "dataset": event.get("dataset"),
            "ts": event.get("ts"),
            "outcome": {"decision": event.get("decision"), "reasons": event.get("reasons")},
            "policy_version": version,
            "current_policy_version": self.policy_version(),
            "recorded": recorded,
            "replayed": replayed,
            "matches": replayed == recorded,
            "engines": _engines(explanation),
        }


def _engines(explanation: Explanation) -> dict[str, Any]:
    return {
        "casbin": {
            "allowed": explanation.casbin_allowed,
            "matched": list(explanation.casbin_lines),
        },
        "rego": {
            "allowed": explanation.rego_allowed,
            "reasons": list(explanation.rego_reasons),
            "obligations": explanation.rego_obligations,
        },
    }


def _kind(error: GatewayError) -> str:
    place = re.match(r"^(\w+)", error.detail)
    name = place.group(1) if place else ""
    return {
        "columns": "column",
        "where": "filter",
        "order_by": "order",
        "group_by": "group_by",
        "aggregates": "aggregate",
        "limit": "limit",
        "cursor": "cursor",
        "epsilon": "budget",
    }.get(name, "query")


def _refusal(
    kind: str, error: GatewayError, status_of: StatusOf, place: str | None = None
) -> dict[str, Any]:
    detail = error.detail if place is None else _PLACE.sub(place, error.detail, count=1)
    out: dict[str, Any] = {"kind": kind, "detail": detail, "status": status_of(error)}
    for key in ("column", "rule", "budget"):
        if error.extensions.get(key) is not None:
            out[key] = error.extensions[key]
    return out


def _planner_refusals(
    query: QueryRequest,
    plan: Callable[[QueryRequest], Any],
    first: GatewayError,
    status_of: StatusOf,
) -> list[dict[str, Any]]:
    """The refusal ``first`` the whole query met, then that of each part of ``query``
    on its own: the same planner, given one column, filter, order, grouping or aggregate
    at a time (the read stops at the first)."""
    count = Aggregation.model_validate({"fn": "count"})
    empty: dict[str, Any] = {
        "columns": None,
        "where": [],
        "order_by": [],
        "cursor": None,
        "group_by": [],
        "aggregates": [count] if query.aggregates or query.group_by else [],
    }
    parts: list[tuple[str, int, dict[str, Any]]] = []
    for field in ("columns", "where", "order_by", "group_by", "aggregates"):
        for i, item in enumerate(getattr(query, field) or []):
            parts.append((field, i, {**empty, field: [item]}))
    found = [_refusal(_kind(first), first, status_of)]
    seen = {first.detail}
    for field, i, update in parts:
        try:
            plan(query.model_copy(update=update))
        except GatewayError as error:
            refusal = _refusal(_kind(error), error, status_of, place=f"{field}[{i}]")
            if refusal["detail"] not in seen:
                seen.add(refusal["detail"])
                found.append(refusal)
    return found
