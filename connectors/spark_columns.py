"""Filters and aggregates of the Spark store as DataFrame ``Column`` expressions.

Values become typed literals, checked against the column's type first: a mistyped
value never reaches Spark, whose cast error would quote it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa

from connectors.base import Aggregate, ConnectorError, Filter

# pyspark types the Connect client's frames and columns as its classic ones.
DataFrame = Any
Column = Any


def _fits(value: Any, kind: pa.DataType) -> bool:
    """Whether a filter value has a Python type Spark compares with ``kind`` as is.

    Checked here so that a mistyped value never reaches Spark, whose cast error would
    quote it."""
    if pa.types.is_boolean(kind):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if pa.types.is_integer(kind):
        return isinstance(value, int)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return isinstance(value, int | float | Decimal)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return isinstance(value, str)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return isinstance(value, bytes)
    if pa.types.is_timestamp(kind):
        return isinstance(value, dt.datetime)
    if pa.types.is_date(kind):
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    return False


def _literal(functions: Any, value: Any, kind: pa.DataType, column: str) -> Column:
    if not _fits(value, kind):
        raise ConnectorError(f"a filter value on {column!r} does not fit the column's type")
    if pa.types.is_timestamp(kind):
        # A datetime literal would be converted through the client's local time zone;
        # its ISO text, cast on the server to the column's own type, is unambiguous.
        if kind.tz is not None:
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return functions.lit(value.isoformat()).cast("timestamp")
        if value.tzinfo is not None:
            raise ConnectorError(f"a filter value on {column!r} must not carry a time zone")
        return functions.lit(value.isoformat()).cast("timestamp_ntz")
    if isinstance(value, Decimal) and (pa.types.is_floating(kind)):
        value = float(value)
    return functions.lit(value)


def _predicate(functions: Any, item: Filter, kind: pa.DataType) -> Column:
    column = functions.col(item.column)
    op, value = item.op, item.value
    if op == "is_null":
        return column.isNull() if value else column.isNotNull()
    if op == "in":
        values = [v for v in value if v is not None]
        if not values:
            return functions.lit(False)
        return column.isin(*[_literal(functions, v, kind, item.column) for v in values])
    if op == "between":
        low, high = value
        return column.between(
            _literal(functions, low, kind, item.column),
            _literal(functions, high, kind, item.column),
        )
    if op == "like":
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ConnectorError(f"filter 'like' on {item.column!r} needs a text column")
        return column.like(value)
    literal = _literal(functions, value, kind, item.column)
    if op == "=":
        return column == literal
    if op == "!=":
        return column != literal
    if op == "<":
        return column < literal
    if op == "<=":
        return column <= literal
    if op == ">":
        return column > literal
    if op == ">=":
        return column >= literal
    raise ConnectorError(f"unsupported filter operator {op!r}")


def _condition(functions: Any, filters: tuple[Filter, ...], schema: pa.Schema) -> Any:
    condition: Any = None
    for item in filters:
        predicate = _predicate(functions, item, schema.field(item.column).type)
        condition = predicate if condition is None else condition & predicate
    return condition


def aggregate_column(functions: Any, item: Aggregate, result: pa.DataType) -> Column:
    if item.column is None:
        expression = functions.count(functions.lit(1))
    else:
        column = functions.col(item.column)
        if item.function == "count":
            expression = functions.count(column)
        elif item.function == "avg":
            expression = functions.avg(column).cast("double")
        elif item.function == "sum":
            expression = functions.sum(column)
            if pa.types.is_integer(result):
                expression = expression.cast("bigint")
            elif pa.types.is_floating(result):
                expression = expression.cast("double")
            elif pa.types.is_decimal(result):
                expression = expression.cast(f"decimal({result.precision},{result.scale})")
        elif item.function == "min":
            expression = functions.min(column)
        else:
            expression = functions.max(column)
    return expression.alias(item.alias)


def filtered(
    functions: Any, frame: DataFrame, filters: tuple[Filter, ...], schema: pa.Schema
) -> DataFrame:
    """``frame`` with the conjunction of ``filters`` applied (itself without any)."""
    condition = _condition(functions, filters, schema)
    return frame if condition is None else frame.filter(condition)
