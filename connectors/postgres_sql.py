"""The PostgreSQL store's catalog and SQL: column types read from pg_catalog, and
the scan and aggregate queries composed with :mod:`psycopg.sql`.

Names are ``Identifier``\\ s and every value travels as a bound parameter; the type
mapping is described in :mod:`connectors.postgres`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from connectors.base import (
    Aggregate,
    AggregateScan,
    ConnectorError,
    DatasetNotFound,
    Filter,
    Scan,
    Table,
)

_NATIVE_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
}

# Relation kinds: table, view, materialized view, partitioned table, foreign table.
_COLUMNS_QUERY = """
SELECT n.nspname, c.relname, a.attname, b.typname,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       a.attnotnull
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type AS b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND c.relname = {relation} AND {namespace}
ORDER BY a.attnum
"""


@dataclass(frozen=True, slots=True)
class PgColumn:
    """A catalog column and how the query presents it to match its Arrow type."""

    name: str
    arrow_type: pa.DataType
    nullable: bool
    cast: str | None = None  # "text" or "float8" when the query must convert the value

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)

    def value(self) -> sql.Composable:
        """The expression whose values have this column's Arrow type."""
        identifier = sql.Identifier(self.name)
        if self.cast == "text":
            return sql.SQL("{}::text").format(identifier)
        if self.cast == "float8":
            return sql.SQL("{}::float8").format(identifier)
        return identifier

    def compared(self) -> sql.Composable:
        """What filters compare: the text a caller sees for text-presented types.

        Numbers shown as float64 are compared in their own type instead, so that an
        index on them still serves the filter.
        """
        if self.cast == "text":
            return self.value()
        return sql.Identifier(self.name)


def _column(name: str, type_name: str, typmod: int, not_null: bool) -> PgColumn:
    nullable = not not_null
    if type_name in _NATIVE_TYPES:
        return PgColumn(name, _NATIVE_TYPES[type_name], nullable)
    if type_name == "numeric":
        if typmod >= 4:
            precision = ((typmod - 4) >> 16) & 0xFFFF
            scale = (typmod - 4) & 0xFFFF
            if 0 < precision <= 38 and scale <= precision:
                return PgColumn(name, pa.decimal128(precision, scale), nullable)
        return PgColumn(name, pa.float64(), nullable, cast="float8")
    return PgColumn(name, pa.string(), nullable, cast="text")


# --- catalog ---------------------------------------------------------------------------


def _split(location: str) -> tuple[str | None, str]:
    parts = location.split(".")
    if len(parts) > 2 or not all(parts):
        raise ConnectorError(f"a postgres location is 'schema.table' or 'table', not {location!r}")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def describe(
    connection: psycopg.Connection[Any], table: Table
) -> tuple[sql.Identifier, list[PgColumn]]:
    """The relation's qualified name and columns, read from pg_catalog."""
    if table.format != "table":
        raise ConnectorError(f"the postgres store reads tables, not {table.format!r}")
    namespace_name, relation_name = _split(table.location)
    params: list[Any] = [relation_name]
    namespace: sql.Composable
    if namespace_name is None:
        namespace = sql.SQL("pg_catalog.pg_table_is_visible(c.oid)")
    else:
        namespace = sql.SQL("n.nspname = {}").format(sql.Placeholder())
        params.append(namespace_name)
    query = sql.SQL(_COLUMNS_QUERY).format(
        relation=sql.Placeholder(),
        namespace=namespace,
    )
    rows = connection.execute(query, params).fetchall()
    if not rows:
        raise DatasetNotFound(table.location)
    relation = sql.Identifier(rows[0][0], rows[0][1])
    return relation, [_column(row[2], row[3], row[4], row[5]) for row in rows]


# --- query composition -----------------------------------------------------------------


Placeholders = Callable[[], sql.Composable]


def numbered() -> Placeholders:
    """``$1``, ``$2``...: the ADBC driver's parameter markers, in order of use."""
    counter = itertools.count(1)
    return lambda: sql.SQL(f"${next(counter)}")


def _where(
    filters: Sequence[Filter],
    by_name: dict[str, PgColumn],
    placeholder: Placeholders = sql.Placeholder,
) -> tuple[sql.Composable, list[Any]]:
    if not filters:
        return sql.SQL(""), []
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for item in filters:
        condition, values = _condition(item, by_name[item.column], placeholder)
        conditions.append(condition)
        params.extend(values)
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions), params


_COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _condition(
    item: Filter, column: PgColumn, placeholder: Placeholders = sql.Placeholder
) -> tuple[sql.Composable, list[Any]]:
    target = column.compared()
    value = item.value
    if item.op in _COMPARISONS:
        operator = sql.SQL(_COMPARISONS[item.op])
        return sql.SQL("{} {} {}").format(target, operator, placeholder()), [value]
    if item.op == "in":
        # One array parameter, however many values: the statement text never varies
        # with the list, and NULLs are dropped because IN never matches them anyway.
        values = [element for element in value if element is not None]
        return sql.SQL("{} = ANY({})").format(target, placeholder()), [values]
    if item.op == "between":
        low, high = value
        between = sql.SQL("{} BETWEEN {} AND {}").format(target, placeholder(), placeholder())
        return between, [low, high]
    if item.op == "like":
        return sql.SQL("{} LIKE {}").format(target, placeholder()), [value]
    if item.op == "is_null":
        test = sql.SQL("IS NULL" if value else "IS NOT NULL")
        return sql.SQL("{} {}").format(sql.Identifier(column.name), test), []
    raise ConnectorError(f"unsupported filter operator {item.op!r}")


def select_query(
    relation: sql.Identifier,
    projected: Sequence[PgColumn],
    by_name: dict[str, PgColumn],
    scan: Scan,
    placeholder: Placeholders = sql.Placeholder,
) -> tuple[sql.Composed, list[Any]]:
    outputs = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(column.value(), sql.Identifier(column.name))
        for column in projected
    )
    where, params = _where(scan.filters, by_name, placeholder)
    query = sql.SQL("SELECT {} FROM {}").format(outputs, relation) + where
    if scan.order_by:
        # Ordering by the presented value keeps every store ordering the same values.
        keys = [
            sql.SQL("{} {} NULLS LAST").format(
                by_name[item.column].value(), sql.SQL("DESC" if item.descending else "ASC")
            )
            for item in scan.order_by
        ]
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(keys)
    if scan.limit is not None:
        query += sql.SQL(" LIMIT {}").format(placeholder())
        params.append(scan.limit)
    if scan.offset:
        query += sql.SQL(" OFFSET {}").format(placeholder())
        params.append(scan.offset)
    return query, params


def _aggregate_expression(
    item: Aggregate, by_name: dict[str, PgColumn], result_type: pa.DataType
) -> sql.Composable:
    if item.column is None:
        return sql.SQL("count(*)")
    column = by_name[item.column]
    raw = sql.Identifier(column.name)
    if item.function == "count":
        return sql.SQL("count({})").format(raw)
    if item.function == "avg":
        return sql.SQL("avg({})::float8").format(raw)
    if item.function == "sum":
        if pa.types.is_integer(result_type):
            # sum(bigint) is numeric in PostgreSQL; the shared contract is int64 and
            # an overflow must fail rather than come back as a different type.
            return sql.SQL("sum({})::int8").format(raw)
        if pa.types.is_floating(result_type):
            return sql.SQL("sum({})::float8").format(raw)
        return sql.SQL("sum({})").format(raw)
    if pa.types.is_boolean(column.arrow_type):
        # PostgreSQL has no min/max for booleans; these are the same answers.
        function = "bool_and" if item.function == "min" else "bool_or"
        return sql.SQL("{}({})").format(sql.SQL(function), raw)
    function = "min" if item.function == "min" else "max"
    return sql.SQL("{}({})").format(sql.SQL(function), column.value())


def aggregate_query(
    relation: sql.Identifier,
    by_name: dict[str, PgColumn],
    scan: AggregateScan,
    target: pa.Schema,
) -> tuple[sql.Composed, list[Any]]:
    keys = [by_name[name].value() for name in scan.group_by]
    outputs: list[sql.Composable] = [
        sql.SQL("{} AS {}").format(key, sql.Identifier(name))
        for key, name in zip(keys, scan.group_by, strict=True)
    ]
    for item in scan.aggregates:
        expression = _aggregate_expression(item, by_name, target.field(item.alias).type)
        outputs.append(sql.SQL("{} AS {}").format(expression, sql.Identifier(item.alias)))
    where, params = _where(scan.filters, by_name)
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(outputs), relation) + where
    if keys:
        query += sql.SQL(" GROUP BY ") + sql.SQL(", ").join(keys)
        query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
            sql.SQL("{} ASC NULLS LAST").format(key) for key in keys
        )
    return query, params
