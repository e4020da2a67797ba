"""The aggregate read: a grouped count/sum/avg released with differential privacy.

Called by the chokepoint with the decided plan of an aggregate read. The
order is the audit-before-data rule plus the budget rule: validate, charge the grant's
and the org's epsilon atomically, record the query, compute, and refund the charge if
the computation fails. Nothing is released that did not go through OpenDP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine

from connectors import Connector
from gateway.access import budgets
from gateway.access.principals import Caller
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.read.encoders import encoder_for, iter_encoded
from gateway.read.plan import ReadPlan, scan_of
from gateway.read.query import QueryRequest
from gateway.read.result import ReadResult
from gateway.transforms import generalization
from gateway.transforms.privacy import Release, exact_groups, release


@dataclass(frozen=True, eq=False)
class AggregateReader:
    """Runs an aggregate :class:`ReadPlan`; its dependencies are given, never looked up."""

    engine: Engine
    connectors: Mapping[str, Connector]
    audit: AuditLog
    _: KW_ONLY
    delta: float

    def read(
        self,
        plan: ReadPlan,
        request: QueryRequest,
        caller: Caller,
        meta: RequestMeta,
        left: dict[str, float | None],
    ) -> ReadResult:
        """Run ``plan``, whose epsilon is already charged; the charge is refunded if the
        computation fails."""
        try:
            seq = self.audit.append(
                "data.query",
                meta=meta,
                caller=caller,
                dataset=plan.dataset,
                module=plan.module,
                decision="allow",
                reasons=list(plan.reasons),
                purpose=request.purpose,
                profile="aggregate",
                grant_id=plan.grant_id,
                decision_basis=plan.decision_basis,
                group_by=list(request.group_by),
                aggregates=[a.model_dump(by_alias=True) for a in request.aggregates],
                epsilon=plan.epsilon,
                media_type=plan.media_type,
            )
            released = self._release(plan)
        except BaseException:
            budgets.refund(self.engine, list(plan.charges))
            raise
        body = self._encode(plan, released)
        digest = hashlib.sha256(b"".join(body)).hexdigest()
        self.audit.append(
            "data.read",
            meta=meta,
            caller=caller,
            dataset=plan.dataset,
            module=plan.module,
            decision="allow",
            query_seq=seq,
            rows=released.table.num_rows,
            digest="sha256:" + digest,
            complete=True,
        )
        headers = {"X-Kiteline-Audit-Seq": str(seq), "X-Kiteline-Profile": "aggregate"}
        headers["X-Kiteline-Epsilon-Spent"] = budgets.fmt(plan.epsilon or 0.0)
        headers.update(budgets.headers(left))
        # Already built whole.
        return ReadResult(plan.media_type, iter(body), headers, small=True)

    def _release(self, plan: ReadPlan) -> Release:
        aggregate, view = plan.aggregate, plan.view
        assert aggregate is not None and plan.epsilon is not None
        batches = self.connectors[plan.store].scan(plan.table, scan_of(plan, windowed=False))
        exact = exact_groups(aggregate, batches)
        group_types = [
            generalization.output_type(rule, view.columns[col].source_type)
            if rule
            else view.columns[col].source_type
            for col, rule in aggregate.groups
        ]
        return release(
            aggregate, exact, epsilon=plan.epsilon, delta=self.delta, group_types=group_types
        )

    def _encode(self, plan: ReadPlan, released: Release) -> list[bytes]:
        header: dict[str, Any] = {
            "dataset": plan.dataset,
            "profile": "aggregate",
            "epsilon": plan.epsilon,
            "delta": released.delta,
            "threshold": released.threshold,
        }
        table = released.table
        encoder = encoder_for(plan.media_type, table.schema, header)
        body = list(iter_encoded(encoder, iter(table.to_batches() or _empty(table.schema))))
        body.append(encoder.finish(None))
        return body


def _empty(schema: pa.Schema) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist([], schema=schema)]
