"""The decided plan of a read: one frozen value holding every obligation of the decision.

A read is authorized once; what the decision obliges (which dataset and store, which
columns under which profile, the grant's row filters and the caller's own, the window
and row cap, the budgets charged, k, epsilon, the recipient whose pseudonyms are used)
is written into a :class:`ReadPlan` and never recomputed. The connector scan of any
released data is built by :func:`scan_of` alone, from the plan, and the scan that
counts its quasi-identifier classes by :func:`class_scan_of`, so neither can scan without
the grant's row filters (``tests/test_architecture.py`` keeps ``Scan(`` here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from connectors import Derived, Filter, OrderBy, Scan, Table
from gateway.access import budgets
from gateway.access.budgets import Charge
from gateway.access.principals import Caller
from gateway.config import Config
from gateway.errors import Unavailable
from gateway.read.query import Condition, Plan, _typed_filter
from gateway.read.views import ColumnView, DatasetView
from gateway.transforms.kanonymity import QiSpec
from gateway.transforms.privacy import AggregatePlan
from policies import Obligations, Profile


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Everything a read must obey, decided before any byte is scanned."""

    dataset: str
    module: str
    store: str
    table: Table
    # Who reads: pseudonyms are keyed for the recipient; the watch re-checks the principal.
    principal: str
    org: str | None
    recipient: str
    key_version: int
    # What the decision allowed, and why.
    grant_id: int
    profile: Profile
    purpose: str | None
    reasons: tuple[str, ...]
    view: DatasetView
    media_type: str
    # What is scanned: source columns, the grant's row filters then the caller's own.
    columns: tuple[str, ...]
    filters: tuple[Filter, ...]
    # The grant's row filters alone: they make the table it releases, where k is counted.
    grant_filters: tuple[Filter, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    # The window released: at most ``limit`` rows (the rows reserved) from ``offset``.
    limit: int = 0
    offset: int = 0
    fingerprint: str = ""
    output: tuple[ColumnView, ...] = ()
    # Budgets charged before the scan (rows reserved, or epsilon), settled afterwards.
    charges: tuple[Charge, ...] = ()
    k: int | None = None
    epsilon: float | None = None
    aggregate: AggregatePlan | None = None
    # What the decision saw (lines, Rego input, verdict), recorded for a later replay.
    decision_basis: Mapping[str, Any] | None = None

    @property
    def rows_reserved(self) -> int:
        return self.limit

    def reserved(self, rows: int, charges: tuple[Charge, ...]) -> ReadPlan:
        """This plan narrowed to the ``rows`` its budgets reserved, with their charges."""
        return replace(self, limit=rows, charges=charges)


def scan_of(
    plan: ReadPlan,
    *,
    dictionary: tuple[str, ...] = (),
    derived: tuple[Derived, ...] = (),
    windowed: bool = True,
) -> Scan:
    """The connector scan of ``plan``: the only way released data is scanned.

    ``windowed`` reads the plan's window plus one row (to tell whether a next page
    exists); without it the scan reads on from the offset (a suppressing read stops
    when its page is full, an aggregate reads every row the filters let through)."""
    return Scan(
        columns=plan.columns,
        filters=plan.filters,
        order_by=plan.order_by,
        limit=plan.limit + 1 if windowed else None,
        offset=plan.offset,
        dictionary=dictionary,
        derived=derived,
    )


def class_scan_of(plan: ReadPlan, spec: QiSpec) -> Scan:
    """The scan that counts the quasi-identifier classes of ``plan``'s released table:
    every row the grant's row filters admit, whatever the caller's own filters select
    from it (those choose rows of the released table; they do not make a new one)."""
    return Scan(columns=tuple(spec.source_columns), filters=plan.grant_filters)


def grant_filters(view: DatasetView, obligations: Obligations) -> tuple[Filter, ...]:
    """The grant's row filters, typed against the view's columns."""
    filters = []
    for i, raw in enumerate(obligations.row_filters):
        condition = Condition.model_validate(raw)
        column = view.columns.get(condition.column)
        if column is None:
            # A grant filter on a column the store lacks cannot be enforced: refuse.
            raise Unavailable(f"grant row filter {i} names a missing column")
        filters.append(_typed_filter(column, condition, f"grant.row_filter[{i}]"))
    return tuple(filters)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads and what the decision said, common to every kind of read."""

    caller: Caller
    dataset: str
    module: str
    store: str
    table: Table
    obligations: Obligations
    reasons: tuple[str, ...]
    view: DatasetView
    media_type: str
    key_version: int
    basis: Mapping[str, Any] | None = None

    def plan(self, **fields: object) -> ReadPlan:
        return ReadPlan(
            dataset=self.dataset,
            module=self.module,
            store=self.store,
            table=self.table,
            principal=self.caller.name,
            org=self.caller.org,
            recipient=self.caller.recipient,
            key_version=self.key_version,
            grant_id=self.obligations.grant_id,
            profile=self.view.profile,
            purpose=self.obligations.purpose,
            reasons=self.reasons,
            view=self.view,
            media_type=self.media_type,
            decision_basis=self.basis,
            **fields,  # type: ignore[arg-type]
        )


def row_plan(
    reader: Reader,
    rows: Plan,
    *,
    columns: tuple[str, ...],
    granted: tuple[Filter, ...],
    k: int | None,
) -> ReadPlan:
    """The plan of a row read, before its rows are reserved (see ``ReadPlan.reserved``):
    ``rows`` already holds the grant's filters (``granted``) then the caller's."""
    if rows.filters[: len(granted)] != granted:
        raise AssertionError("a row plan's filters start with the grant's own")
    return reader.plan(
        columns=columns,
        filters=rows.filters,
        grant_filters=granted,
        order_by=rows.order_by,
        limit=rows.limit,
        offset=rows.offset,
        fingerprint=rows.fingerprint,
        output=tuple(rows.output),
        k=k,
    )


def aggregate_plan(
    reader: Reader,
    aggregate: AggregatePlan,
    *,
    filters: tuple[Filter, ...],
    epsilon: float,
    charges: tuple[Charge, ...],
) -> ReadPlan:
    # A count of every row names no column: one is read only for its rows, as a scan
    # of no columns has no rows to count.
    columns = tuple(aggregate.source_columns) or (next(iter(reader.view.columns)),)
    return reader.plan(
        columns=columns,
        filters=filters,
        grant_filters=filters,
        aggregate=aggregate,
        epsilon=epsilon,
        charges=charges,
    )


def row_ceiling(config: Config, obligations: Obligations, limits: budgets.Limits) -> int:
    """The most rows one read may return under a grant: its row cap, the gateway's
    maximum and the grant's per-request limit, whichever is least."""
    most = config.gateway.max_rows_per_request
    return min(obligations.row_cap or most, most, limits.rows_per_request or most)
