"""Validation of aggregate queries against the caller's aggregate view.

Under the aggregate profile a caller names ``group_by`` columns and ``aggregates``
(``count``, ``sum``, ``avg``); nothing else. Every refusal names the column and the
rule: grouping is allowed only on columns the profile marks groupable (quasi-identifiers
after generalization, public columns), sums and averages only on numeric columns with
declared clamping bounds, and filters, ordering, cursors and row columns not at all
(a filter is the first step of a differencing attack).
"""

from __future__ import annotations

import pyarrow as pa

from gateway.errors import AccessDenied, InvalidRequest
from gateway.read.query import QueryRequest
from gateway.read.views import ColumnView, DatasetView, default_generalization
from gateway.transforms.privacy import AggregatePlan, Measure, Output


def _column(view: DatasetView, name: str, where: str) -> ColumnView:
    column = view.columns.get(name)
    if column is None:
        raise InvalidRequest(f"{where}: unknown column {name!r} in dataset {view.name!r}")
    return column


def _refuse(column: ColumnView, where: str, what: str, rule: str) -> AccessDenied:
    return AccessDenied(
        f"{where}: column {column.name!r} ({column.spec.classification}) {what} under the "
        "aggregate profile",
        column=column.name,
        rule=rule,
    )


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def plan_aggregate(request: QueryRequest, view: DatasetView) -> AggregatePlan:
    _check_shape(request, view)
    groups = _groups(request, view)
    measures: list[Measure] = []
    outputs: list[Output] = []
    taken = {name for name, _ in groups}
    for i, agg in enumerate(request.aggregates):
        where = f"aggregates[{i}]"
        alias = agg.alias or (agg.fn if agg.column is None else f"{agg.fn}_{agg.column}")
        if alias in taken:
            raise InvalidRequest(f"{where}: output name {alias!r} is used twice; set 'as'")
        taken.add(alias)
        if agg.column is None:
            if agg.fn != "count":
                raise InvalidRequest(f"{where}: {agg.fn} needs a column")
            outputs.append(Output(alias, "count", None))
            continue
        column = _column(view, agg.column, where)
        measure = _measure(agg.fn, column, where)
        if measure not in measures:
            measures.append(measure)
        outputs.append(Output(alias, agg.fn, column.name))
    return AggregatePlan(
        tuple(groups), tuple(measures), tuple(outputs), view.dataset.min_group_size
    )


def _check_shape(request: QueryRequest, view: DatasetView) -> None:
    """Refuse what an aggregate query may not carry: only groups and aggregates."""
    if view.profile != "aggregate":
        raise AccessDenied(
            f"aggregate queries run under the aggregate profile, not {view.profile!r}",
            rule="aggregate profile",
        )
    if request.columns is not None:
        raise InvalidRequest(
            "columns: an aggregate query names group_by and aggregates, not columns",
            rule="aggregate query shape",
        )
    if request.where:
        raise AccessDenied(
            f"where[0]: filters are not offered under the aggregate profile (column "
            f"{request.where[0].column!r}); group by a groupable column instead",
            column=request.where[0].column,
            rule="no filters under aggregate",
        )
    if request.order_by or request.cursor:
        raise InvalidRequest(
            "order_by and cursor do not apply to aggregate queries", rule="aggregate query shape"
        )
    if not request.aggregates:
        raise InvalidRequest("aggregates: name at least one of count, sum, avg")


def _groups(request: QueryRequest, view: DatasetView) -> list[tuple[str, str | None]]:
    """The group keys, each with the generalization a quasi-identifier is grouped under."""
    groups: list[tuple[str, str | None]] = []
    for i, name in enumerate(request.group_by):
        where = f"group_by[{i}]"
        column = _column(view, name, where)
        if column.treatment != "group":
            rule = f"{column.spec.classification} is not groupable"
            raise _refuse(column, where, "cannot be grouped by", rule)
        rule_name = None
        if column.spec.classification == "quasi_identifier":
            rule_name = column.spec.generalize or default_generalization(column.source_type)
        if (name, rule_name) not in groups:
            groups.append((name, rule_name))
    return groups


def _measure(fn: str, column: ColumnView, where: str) -> Measure:
    """What ``fn`` of ``column`` needs measured, or the refusal: a count of values, or a
    sum clamped to the column's declared bounds."""
    if column.treatment == "drop":
        raise _refuse(column, where, "is not available", f"{column.spec.classification} dropped")
    if fn == "count":
        return Measure("nonnull", column.name)
    if column.treatment == "count_only":
        raise _refuse(column, where, "can only be counted", "identifier count only")
    if not _numeric(column.source_type):
        raise InvalidRequest(
            f"{where}: {fn} needs a numeric column; {column.name!r} is {column.source_type}",
            column=column.name,
            rule="numeric column",
        )
    if column.spec.bounds is None:
        raise InvalidRequest(
            f"{where}: column {column.name!r} has no declared clamping bounds, so "
            f"its {fn} cannot be released with differential privacy; an admin "
            "must set columns.<column>.bounds",
            column=column.name,
            rule="bounds required",
        )
    low, high = column.spec.bounds
    return Measure("sum", column.name, (float(low), float(high)))
