"""The one chokepoint of data: authorize -> plan -> scan -> transform -> audit.

Every read of a dataset, rows or aggregate, in any format, is decided here once, and
what the decision obliges is frozen into a :class:`ReadPlan` before anything is
scanned. The row and aggregate readers run the plan; neither decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from connectors import decline_inline
from gateway import observability
from gateway.access import budgets, key_versions
from gateway.access.decisions import Decider
from gateway.access.keyring import Keyring
from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.auditing.outcomes import Outcomes
from gateway.config import Config
from gateway.errors import AccessDenied, InvalidRequest, NotFound, validation_errors
from gateway.read.aggregate_read import AggregateReader
from gateway.read.aggregation import plan_aggregate
from gateway.read.anonymity import ClassIndexCache, qi_spec
from gateway.read.encoders import negotiate
from gateway.read.plan import Reader, aggregate_plan, grant_filters, row_ceiling, row_plan
from gateway.read.query import CursorCodec, QueryRequest, plan_rows
from gateway.read.result import ReadResult
from gateway.read.rows import BUFFERED_READ_ROWS, RowRead, RowReader
from gateway.read.stores import table_of
from gateway.read.view_cache import ViewCache
from gateway.transforms.profile import BatchTransformer
from gateway.transforms.pseudonym_cache import PseudonymCache
from gateway.transforms.scrubbing import ScrubCache
from policies import Decision

MAX_QUERY_BYTES = 256 * 1024


def parse_query(body: bytes) -> QueryRequest:
    if len(body) > MAX_QUERY_BYTES:
        raise InvalidRequest(f"the query body exceeds {MAX_QUERY_BYTES} bytes")
    try:
        # Strict: "10" is not a limit, and no other value is coerced either.
        return QueryRequest.model_validate_json(body or b"{}", strict=True)
    except ValidationError as exc:
        raise InvalidRequest("the query is invalid", errors=validation_errors(exc)) from None


@dataclass(frozen=True, eq=False, kw_only=True)
class Chokepoint:
    config: Config
    decider: Decider
    views: ViewCache
    keyring: Keyring
    outcomes: Outcomes
    rows: RowReader
    aggregates: AggregateReader
    class_indexes: ClassIndexCache
    limits: budgets.LimitsCache
    pseudonyms: PseudonymCache
    scrub_cache: ScrubCache
    cursors: CursorCodec

    def read(
        self, caller: Caller, name: str, body: bytes, accept: str | None, meta: RequestMeta
    ) -> ReadResult:
        parsed: dict[str, QueryRequest] = {}
        decided: list[Decision] = []

        def run() -> ReadResult:
            media_type = negotiate(accept)
            request = parsed["request"] = parse_query(body)
            aggregate = bool(request.group_by or request.aggregates)
            reader = self.authorize(
                caller, name, request, media_type, aggregate=aggregate, decided=decided
            )
            if aggregate:
                plan, left = self.plan_aggregate(reader, request)
                return self.aggregates.read(plan, request, caller, meta, left)
            read = self.plan_rows(reader, request, meta)
            try:
                return self.rows.start(read)
            except BaseException:
                self.rows.settle(read.plan, 0)
                raise

        return self.outcomes.audited(
            run,
            caller=caller,
            meta=meta,
            dataset=name,
            action="data.query",
            details=lambda: {
                "where": self.redacted_where(parsed.get("request")),
                # A refused read records what its decision saw, for a later replay.
                "decision_basis": decided[0].basis if decided else None,
            },
        )

    def admit(self, caller: Caller, name: str, request: QueryRequest, media_type: str) -> Reader:
        """The decision on ``request`` and its plan checked against the caller's view
        (columns, filters, order, limits), with nothing charged, scanned or recorded:
        what a Flight ticket is issued on. Its read is decided again when it runs."""
        aggregate = bool(request.group_by or request.aggregates)
        reader = self.authorize(caller, name, request, media_type, aggregate=aggregate)
        if aggregate:
            plan_aggregate(request, reader.view)
            budgets.check_epsilon(self.config, request.epsilon)
            return reader
        obligations = reader.obligations
        limits = self.limits.get(obligations.grant_id, caller.version("grants"))
        plan_rows(
            request,
            reader.view,
            max_rows=row_ceiling(self.config, obligations, limits),
            default_limit=self.config.gateway.default_limit,
            row_filters=grant_filters(reader.view, obligations),
            cursors=self.cursors,
            principal=caller.name,
        )
        return reader

    def authorize(
        self,
        caller: Caller,
        name: str,
        request: QueryRequest,
        media_type: str,
        *,
        aggregate: bool,
        decided: list[Decision] | None = None,
    ) -> Reader:
        """The decision on ``request``, and what every plan of it starts from (the
        decision is also put in ``decided``, so a refusal's record can name its basis)."""
        dataset = self.config.datasets.get(name)
        if dataset is None:
            raise NotFound(f"no dataset named {name!r}", dataset=name)
        if aggregate:
            decline_inline("an aggregate query reads the whole dataset")
        started = observability.started()
        decision: Decision = self.decider.decide(
            caller=caller,
            dataset=name,
            at=datetime.now(UTC),
            purpose=request.purpose,
            # An aggregate query asks for the aggregate profile, never more.
            profile=request.profile or ("aggregate" if aggregate else None),
        )
        observability.decided(decision, dataset=name, started=started)
        if decided is not None:
            decided.append(decision)
        if not decision.allowed or decision.obligations is None:
            raise AccessDenied(decision.reasons[0], reasons=list(decision.reasons))
        obligations = decision.obligations
        return Reader(
            caller=caller,
            dataset=name,
            module=dataset.module,
            store=dataset.store,
            table=table_of(dataset),
            obligations=obligations,
            reasons=tuple(decision.reasons),
            view=self.views.view(name, obligations.profile, obligations.columns),
            media_type=media_type,
            key_version=caller.key_version or key_versions.current_version(self.rows.engine),
            basis=decision.basis,
        )

    def plan_aggregate(
        self, reader: Reader, request: QueryRequest
    ) -> tuple[Any, dict[str, float | None]]:
        aggregate = plan_aggregate(request, reader.view)
        epsilon = budgets.check_epsilon(self.config, request.epsilon)
        caller, grant_id = reader.caller, reader.obligations.grant_id
        limits = self.limits.get(grant_id, caller.version("grants"))
        org = caller.org if caller.kind == "partner" else None
        charges = budgets.epsilon_charges(self.config, grant_id, limits, org, epsilon)
        # The grant's row filters bound what is counted, exactly as they bound rows.
        filters = grant_filters(reader.view, reader.obligations)
        left = budgets.charge(self.rows.engine, charges)
        plan = aggregate_plan(
            reader, aggregate, filters=filters, epsilon=epsilon, charges=tuple(charges)
        )
        return plan, left

    def plan_rows(self, reader: Reader, request: QueryRequest, meta: RequestMeta) -> RowRead:
        obligations, view, gateway = reader.obligations, reader.view, self.config.gateway
        limits = self.limits.get(obligations.grant_id, reader.caller.version("grants"))
        granted = grant_filters(view, obligations)
        rows = plan_rows(
            request,
            view,
            max_rows=row_ceiling(self.config, obligations, limits),
            default_limit=gateway.default_limit,
            row_filters=granted,
            cursors=self.cursors,
            principal=reader.caller.name,
        )
        if rows.limit > BUFFERED_READ_ROWS:
            decline_inline("a large answer is streamed from worker threads")
        transformer = self.transformer(reader, rows.output)
        spec = qi_spec(view)
        columns = transformer.source_columns
        if spec is not None:
            columns += [c for c in spec.source_columns if c not in columns]
        plan = row_plan(
            reader,
            rows,
            columns=tuple(columns),
            granted=granted,
            k=spec.k if spec is not None else None,
        )
        # The classes of the rows this grant releases; built (or declined, to a worker
        # thread) before any budget is charged, so a retried read charges once.
        suppress = self.class_indexes.index(plan, spec) if spec is not None else None
        # Rows are reserved before any leave, and what is not sent is given back.
        reserved, charges, left = budgets.reserve_rows(
            self.rows.engine, obligations.grant_id, limits, rows.limit
        )
        plan = plan.reserved(reserved, tuple(charges))
        details = {
            "purpose": request.purpose,
            "where": self.redacted_where(request),
            "order_by": [o.model_dump() for o in request.orders()],
        }
        return RowRead(plan, reader.caller, meta, transformer, suppress, left, details)

    def transformer(self, reader: Reader, output: Any) -> BatchTransformer:
        return BatchTransformer(
            reader.view,
            output,
            keyring=self.keyring,
            recipient=reader.caller.recipient,
            key_version=reader.key_version,
            pseudonym_cache=self.pseudonyms,
            scrub_cache=self.scrub_cache,
        )

    def redacted_where(self, request: QueryRequest | None) -> list[dict[str, Any]]:
        if request is None:
            return []
        return [
            {"column": c.column, "op": c.op, "value": self.outcomes.audit.redactor.hash(c.value)}
            for c in request.where
        ]
