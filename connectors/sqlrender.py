"""Rules that every connector applies the same way, and DuckDB SQL for the file stores.

Two connectors over the same rows must return the same answer, so the checks on a
:class:`~connectors.base.Scan`, the NULL ordering and the types of aggregate results
live here once:

* NULLs sort last in both directions, so a "top N" page is never filled with
  missing values.
* ``count`` is int64; ``sum`` is int64 over integers, float64 over floats and
  decimal128(38, scale) over decimals; ``avg`` is float64; ``min``/``max`` keep the
  column's type.
* Groups come back ordered by their keys, so repeated calls page identically.

The DuckDB helpers only ever place quoted identifiers and fixed keywords into SQL;
values are passed to DuckDB as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from connectors.base import (
    FILTER_OPS,
    Aggregate,
    AggregateScan,
    ConnectorError,
    Filter,
    OrderBy,
    Scan,
)

NUMERIC_FUNCTIONS = ("sum", "avg")


def check_filters(filters: Iterable[Filter], columns: Sequence[str]) -> None:
    """Refuse a filter on an unknown column or with a value of the wrong shape.

    Messages name the column and operator but never the value: filter literals may
    hold personal data and error text tends to end up in logs.
    """
    known = set(columns)
    for item in filters:
        if item.column not in known:
            raise ConnectorError(f"unknown column {item.column!r}")
        if item.op not in FILTER_OPS:
            raise ConnectorError(f"unsupported filter operator {item.op!r}")
        value = item.value
        if item.op == "in":
            if not isinstance(value, tuple | list | frozenset | set):
                raise ConnectorError(f"filter 'in' on {item.column!r} needs a tuple of values")
        elif item.op == "between":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ConnectorError(f"filter 'between' on {item.column!r} needs (low, high)")
            if value[0] is None or value[1] is None:
                raise ConnectorError(f"filter 'between' on {item.column!r} needs two bounds")
        elif item.op == "is_null":
            if not isinstance(value, bool):
                raise ConnectorError(f"filter 'is_null' on {item.column!r} needs True or False")
        elif item.op == "like":
            if not isinstance(value, str):
                raise ConnectorError(f"filter 'like' on {item.column!r} needs a string pattern")
        elif value is None:
            # "x = NULL" is never true in SQL and always true nowhere else; refusing it
            # keeps the stores from disagreeing and points the caller at is_null.
            raise ConnectorError(f"filter {item.op!r} on {item.column!r} has no value; use is_null")


def check_scan(scan: Scan, schema: pa.Schema) -> None:
    """Refuse a scan the stores would answer differently or not at all."""
    names = schema.names
    if not scan.columns:
        raise ConnectorError("a scan needs at least one column")
    if len(set(scan.columns)) != len(scan.columns):
        raise ConnectorError("a scan lists a column twice")
    for column in scan.columns:
        if column not in names:
            raise ConnectorError(f"unknown column {column!r}")
    for order in scan.order_by:
        if order.column not in names:
            raise ConnectorError(f"unknown column {order.column!r}")
    if scan.limit is not None and scan.limit < 0:
        raise ConnectorError("limit must not be negative")
    if scan.offset < 0:
        raise ConnectorError("offset must not be negative")
    check_filters(scan.filters, names)


def check_aggregate_scan(scan: AggregateScan, schema: pa.Schema) -> None:
    names = schema.names
    if not scan.aggregates and not scan.group_by:
        raise ConnectorError("an aggregate needs a group-by column or an aggregate")
    for column in scan.group_by:
        if column not in names:
            raise ConnectorError(f"unknown column {column!r}")
    outputs = list(scan.group_by) + [item.alias for item in scan.aggregates]
    if len(set(outputs)) != len(outputs):
        raise ConnectorError("aggregate output names must be unique")
    for item in scan.aggregates:
        if item.column is None:
            if item.function != "count":
                raise ConnectorError(f"{item.function} needs a column")
            continue
        if item.column not in names:
            raise ConnectorError(f"unknown column {item.column!r}")
        if item.function in NUMERIC_FUNCTIONS and not is_numeric(schema.field(item.column).type):
            raise ConnectorError(f"{item.function} needs a numeric column, not {item.column!r}")
    check_filters(scan.filters, names)


def is_numeric(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
    )


def aggregate_type(function: str, input_type: pa.DataType | None) -> pa.DataType:
    """The Arrow type every connector returns for ``function`` over ``input_type``."""
    if function == "count" or input_type is None:
        return pa.int64()
    if function == "avg":
        return pa.float64()
    if function == "sum":
        if pa.types.is_integer(input_type):
            return pa.int64()
        if pa.types.is_decimal(input_type):
            return pa.decimal128(38, input_type.scale)
        return pa.float64()
    return input_type


def aggregate_schema(scan: AggregateScan, schema: pa.Schema) -> pa.Schema:
    fields = [pa.field(name, schema.field(name).type) for name in scan.group_by]
    for item in scan.aggregates:
        input_type = schema.field(item.column).type if item.column is not None else None
        fields.append(pa.field(item.alias, aggregate_type(item.function, input_type)))
    return pa.schema(fields)


# --- DuckDB ------------------------------------------------------------------------------


def duckdb_identifier(name: str) -> str:
    """A DuckDB double-quoted identifier; embedded quotes are doubled, as SQL prescribes."""
    if "\x00" in name:
        raise ConnectorError("identifiers cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def duckdb_order_clause(order_by: Sequence[OrderBy]) -> str:
    if not order_by:
        return ""
    keys = [
        f"{duckdb_identifier(item.column)} {'DESC' if item.descending else 'ASC'} NULLS LAST"
        for item in order_by
    ]
    return " ORDER BY " + ", ".join(keys)


def duckdb_select(source: str, scan: Scan) -> tuple[str, list[object]]:
    """``SELECT columns FROM source ORDER BY ... LIMIT ? OFFSET ?`` over a registered source.

    Filters are not rendered: the file connectors push them into the Arrow scan that
    feeds DuckDB, where partitions and row groups are pruned before any byte is read.
    """
    columns = ", ".join(duckdb_identifier(name) for name in scan.columns)
    text = f"SELECT {columns} FROM {duckdb_identifier(source)}"
    text += duckdb_order_clause(scan.order_by)
    params: list[object] = []
    if scan.limit is not None:
        text += " LIMIT ?"
        params.append(scan.limit)
    if scan.offset:
        text += " OFFSET ?"
        params.append(scan.offset)
    return text, params


def _duckdb_aggregate_expression(item: Aggregate, schema: pa.Schema) -> str:
    if item.column is None:
        return "count(*)"
    column = duckdb_identifier(item.column)
    input_type = schema.field(item.column).type
    if item.function == "count":
        return f"count({column})"
    if item.function == "avg":
        return f"CAST(avg({column}) AS DOUBLE)"
    if item.function == "sum":
        # DuckDB widens integer sums to HUGEINT; the shared contract is int64 and an
        # overflow must fail loudly rather than wrap.
        if pa.types.is_integer(input_type):
            return f"CAST(sum({column}) AS BIGINT)"
        if pa.types.is_floating(input_type):
            return f"CAST(sum({column}) AS DOUBLE)"
        return f"sum({column})"
    return f"{item.function}({column})"


def duckdb_aggregate(source: str, scan: AggregateScan, schema: pa.Schema) -> str:
    keys = [duckdb_identifier(name) for name in scan.group_by]
    outputs = list(keys)
    for item in scan.aggregates:
        expression = _duckdb_aggregate_expression(item, schema)
        outputs.append(f"{expression} AS {duckdb_identifier(item.alias)}")
    text = f"SELECT {', '.join(outputs)} FROM {duckdb_identifier(source)}"
    if keys:
        text += " GROUP BY " + ", ".join(keys)
        text += " ORDER BY " + ", ".join(f"{key} ASC NULLS LAST" for key in keys)
    return text


def needed_columns(names: Iterable[str | None]) -> list[str]:
    """Distinct column names in first-seen order (projection lists must not repeat)."""
    seen: dict[str, None] = {}
    for name in names:
        if name is not None:
            seen.setdefault(name, None)
    return list(seen)


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with each column cast to the type ``schema`` promises."""
    columns = [
        column if column.type == field.type else column.cast(field.type)
        for column, field in zip(table.columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(columns, schema=schema)
