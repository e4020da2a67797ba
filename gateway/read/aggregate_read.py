"""The aggregate read: a grouped count/sum/avg released with differential privacy.

Called by the service chokepoint after the decision allowed the aggregate profile. The
order is the audit-before-data rule plus the budget rule: validate, charge the grant's
and the org's epsilon atomically, record the query, compute, and refund the charge if
the computation fails. Nothing is released that did not go through OpenDP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Engine

from connectors import Connector, Scan
from gateway.access import budgets
from gateway.access.principals import Caller
from gateway.auditing.log import AuditLog, RequestMeta
from gateway.config import Config
from gateway.read.aggregation import plan_aggregate
from gateway.read.encoders import encoder_for, iter_encoded
from gateway.read.query import QueryRequest
from gateway.read.result import ReadResult
from gateway.read.stores import table_of
from gateway.read.views import DatasetView
from gateway.transforms import generalization
from gateway.transforms.privacy import exact_groups, release
from policies import Obligations


class AggregateReader:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        connectors: Mapping[str, Connector],
        audit: AuditLog,
        limits: budgets.LimitsCache,
    ) -> None:
        self.config = config
        self.engine = engine
        self.connectors = connectors
        self.audit = audit
        self.limits = limits

    def read(
        self,
        caller: Caller,
        name: str,
        request: QueryRequest,
        obligations: Obligations,
        view: DatasetView,
        media_type: str,
        meta: RequestMeta,
        reasons: Sequence[str],
    ) -> ReadResult:
        config = self.config
        dataset = config.datasets[name]
        plan = plan_aggregate(request, view)
        epsilon = budgets.check_epsilon(config, request.epsilon)
        limits = self.limits.get(obligations.grant_id, caller.version("grants"))
        org = caller.org if caller.kind == "partner" else None
        charges = budgets.epsilon_charges(config, obligations.grant_id, limits, org, epsilon)
        left = budgets.charge(self.engine, charges)
        try:
            seq = self.audit.append(
                "data.query",
                meta=meta,
                caller=caller,
                dataset=name,
                module=dataset.module,
                decision="allow",
                reasons=list(reasons),
                purpose=request.purpose,
                profile="aggregate",
                grant_id=obligations.grant_id,
                group_by=list(request.group_by),
                aggregates=[a.model_dump(by_alias=True) for a in request.aggregates],
                epsilon=epsilon,
                media_type=media_type,
            )
            # A count of every row names no column: one is read only for its rows, as
            # a scan of no columns has no rows to count.
            columns = tuple(plan.source_columns) or (next(iter(view.columns)),)
            batches = self.connectors[dataset.store].scan(table_of(dataset), Scan(columns=columns))
            exact = exact_groups(plan, batches)
            group_types = [
                generalization.output_type(rule, view.columns[col].source_type)
                if rule
                else view.columns[col].source_type
                for col, rule in plan.groups
            ]
            released = release(
                plan, exact, epsilon=epsilon, delta=config.budgets.delta, group_types=group_types
            )
        except BaseException:
            budgets.refund(self.engine, charges)
            raise
        header: dict[str, Any] = {
            "dataset": name,
            "profile": "aggregate",
            "epsilon": epsilon,
            "delta": released.delta,
            "threshold": released.threshold,
        }
        table = released.table
        encoder = encoder_for(media_type, table.schema, header)
        body = list(iter_encoded(encoder, iter(table.to_batches() or _empty(table.schema))))
        body.append(encoder.finish(None))
        digest = hashlib.sha256(b"".join(body)).hexdigest()
        self.audit.append(
            "data.read",
            meta=meta,
            caller=caller,
            dataset=name,
            decision="allow",
            query_seq=seq,
            rows=table.num_rows,
            digest="sha256:" + digest,
            complete=True,
        )
        headers = {"X-Kiteline-Audit-Seq": str(seq), "X-Kiteline-Profile": "aggregate"}
        headers["X-Kiteline-Epsilon-Spent"] = budgets.fmt(epsilon)
        headers.update(budgets.headers(left))
        # Already built whole.
        return ReadResult(media_type, iter(body), headers, small=True)


def _empty(schema: pa.Schema) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist([], schema=schema)]
