"""Tables and views in PostgreSQL, streamed as Arrow record batches.

Every call borrows a connection from a ``psycopg_pool.ConnectionPool`` and works
inside one READ ONLY transaction whose ``statement_timeout`` is set with
``set_config(..., is_local => true)``, so neither outlives the call. Rows are read
through a named (server-side) cursor, a batch at a time, and converted to Arrow with
the types the catalog declares.

SQL is composed only with :mod:`psycopg.sql`: names are ``Identifier``\\ s and every
value travels as a bound parameter.

Type mapping (``schema()``):

============================== ==========================================================
PostgreSQL                     Arrow
============================== ==========================================================
smallint, integer, bigint      int16, int32, int64
real, double precision         float32, float64
numeric(p, s), p <= 38         decimal128(p, s), exact
numeric without a precision    float64 (cast in the query; exact digits beyond 15-17
or with p > 38                 significant ones are lost, which Arrow has no exact type for)
boolean                        bool
text, varchar, char, name      string
date                           date32
time                           time64[us]
timestamp                      timestamp[us]
timestamptz                    timestamp[us, tz=UTC]
bytea                          binary
uuid, json, jsonb, and any     string (cast to text in the query; filters and ordering
other type (arrays, enums...)  then apply to that text, as the caller sees it)
============================== ==========================================================

Domains are read as their base type.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from connectors.base import (
    Aggregate,
    AggregateScan,
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    Filter,
    Scan,
    StoreUnavailable,
    Table,
)
from connectors.postgres_arrow import (
    UnnamedServerError,
    arrow_batches,
    bindable,
    read_only_conninfo,
)
from connectors.sqlrender import aggregate_schema, check_aggregate_scan, check_scan

log = logging.getLogger(__name__)

MAX_FETCH_ROWS = 65_536
_CURSOR = "kiteline_scan"

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
class _Column:
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


def _column(name: str, type_name: str, typmod: int, not_null: bool) -> _Column:
    nullable = not not_null
    if type_name in _NATIVE_TYPES:
        return _Column(name, _NATIVE_TYPES[type_name], nullable)
    if type_name == "numeric":
        if typmod >= 4:
            precision = ((typmod - 4) >> 16) & 0xFFFF
            scale = (typmod - 4) & 0xFFFF
            if 0 < precision <= 38 and scale <= precision:
                return _Column(name, pa.decimal128(precision, scale), nullable)
        return _Column(name, pa.float64(), nullable, cast="float8")
    return _Column(name, pa.string(), nullable, cast="text")


class PostgresConnector:
    """Reads tables and views (``Table.location`` = ``"schema.table"`` or ``"table"``).

    An unqualified name is resolved through the connection's ``search_path``. Names
    are matched exactly as written (PostgreSQL's case folding does not apply).

    The pool opens lazily on first use; ``pool_timeout`` bounds how long a call waits
    for a working connection before :class:`StoreUnavailable`. The DSN may hold a
    password; it is handed to psycopg only and never logged.
    """

    def __init__(
        self,
        dsn: str,
        *,
        statement_timeout_ms: int = 30_000,
        pool_min: int = 1,
        pool_max: int = 8,
        connect_timeout: int = 5,
        pool_timeout: float = 10.0,
    ) -> None:
        if statement_timeout_ms < 1:
            raise ConnectorError("statement_timeout_ms must be positive")
        if pool_min < 0 or pool_max < 1 or pool_min > pool_max:
            raise ConnectorError("pool sizes must satisfy 0 <= pool_min <= pool_max, 1 <= pool_max")
        self._statement_timeout_ms = statement_timeout_ms
        self._pool_timeout = pool_timeout
        self._lock = threading.Lock()
        self._opened = False
        self._closed = False
        try:
            self._arrow_conninfo: str | None = read_only_conninfo(
                dsn, statement_timeout_ms, connect_timeout
            )
        except psycopg.ProgrammingError:
            self._arrow_conninfo = None  # not a DSN libpq reads: psycopg alone says why
        self._pool = ConnectionPool(
            conninfo=dsn,
            min_size=pool_min,
            max_size=pool_max,
            kwargs={"connect_timeout": connect_timeout},
            configure=_configure,
            check=ConnectionPool.check_connection,
            timeout=pool_timeout,
            name="kiteline-postgres",
            open=False,
        )

    # -- Connector -------------------------------------------------------------------

    def schema(self, table: Table) -> pa.Schema:
        with _database_errors(table.location), self._transaction() as connection:
            _, columns = _describe(connection, table)
            return pa.schema([column.field for column in columns])

    def scan(
        self,
        table: Table,
        scan: Scan,
        *,
        batch_size: int = 65_536,
        cancellation: Cancellation | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the matching rows; always yields at least one (possibly empty) batch."""
        if batch_size < 1:
            raise ConnectorError("batch_size must be positive")
        produced = False
        try:
            for batch in self._scan(table, scan, batch_size, cancellation, arrow=True):
                produced = True
                yield batch
        except UnnamedServerError:
            if produced:
                raise
            # The driver relayed a server error without its SQLSTATE; psycopg names it
            # (the transaction was read only, so running the statement again is safe).
            yield from self._scan(table, scan, batch_size, cancellation, arrow=False)

    def _scan(
        self,
        table: Table,
        scan: Scan,
        batch_size: int,
        cancellation: Cancellation | None,
        *,
        arrow: bool,
    ) -> Iterator[pa.RecordBatch]:
        _check_cancelled(cancellation)
        with _database_errors(table.location), self._transaction() as connection:
            relation, columns = _describe(connection, table)
            by_name = {column.name: column for column in columns}
            check_scan(scan, pa.schema([column.field for column in columns]))
            projected = [by_name[name] for name in scan.columns]
            output = pa.schema([column.field for column in projected])
            log.debug(
                "postgres scan of %s: %d columns, %d filters",
                table.location,
                len(scan.columns),
                len(scan.filters),
            )
            if scan.limit == 0:
                yield _empty(output)
                return
            query, params = _select(relation, projected, by_name, scan)
            arrow_query = None
            if arrow and self._arrow_conninfo is not None and bindable(params):
                numbered, _ = _select(relation, projected, by_name, scan, _numbered())
                arrow_query = numbered.as_string(connection)
            else:
                produced = False
                for batch in _stream(connection, query, params, output, batch_size, cancellation):
                    produced = True
                    yield batch
                if not produced:
                    yield _empty(output)
        if arrow_query is not None and self._arrow_conninfo is not None:
            # The catalog's transaction is over: the rows come on a connection of their own.
            produced = False
            for batch in arrow_batches(
                self._arrow_conninfo,
                arrow_query,
                params,
                output,
                min(batch_size, MAX_FETCH_ROWS),
                lambda: _check_cancelled(cancellation),
                table.location,
            ):
                produced = True
                yield batch
            if not produced:
                yield _empty(output)

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        with _database_errors(table.location), self._transaction() as connection:
            relation, columns = _describe(connection, table)
            by_name = {column.name: column for column in columns}
            schema = pa.schema([column.field for column in columns])
            check_aggregate_scan(scan, schema)
            target = aggregate_schema(scan, schema)
            query, params = _aggregate(relation, by_name, scan, target)
            batches = list(_stream(connection, query, params, target, 65_536, None))
            return pa.Table.from_batches(batches, schema=target)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, False
        if opened:
            self._pool.close()

    # -- internals -------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._closed:
                raise ConnectorError("the postgres connector is closed")
            if not self._opened:
                # Lazily, so that building the gateway never blocks on the database.
                self._pool.open(wait=False)
                self._opened = True
        with self._pool.connection(timeout=self._pool_timeout) as connection:
            with connection.transaction():
                connection.execute(
                    "SELECT pg_catalog.set_config('statement_timeout', %s, true)",
                    [str(self._statement_timeout_ms)],
                )
                yield connection


def _configure(connection: psycopg.Connection[Any]) -> None:
    # autocommit lets transaction() issue BEGIN itself, and read_only makes that
    # BEGIN READ ONLY; the session default covers any statement outside it.
    connection.autocommit = True
    connection.read_only = True
    connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")


def _check_cancelled(cancellation: Cancellation | None) -> None:
    if cancellation is not None:
        cancellation.raise_if_cancelled()


# --- catalog ---------------------------------------------------------------------------


def _split(location: str) -> tuple[str | None, str]:
    parts = location.split(".")
    if len(parts) > 2 or not all(parts):
        raise ConnectorError(f"a postgres location is 'schema.table' or 'table', not {location!r}")
    if len(parts) == 1:
        return None, parts[0]
    return parts[0], parts[1]


def _describe(
    connection: psycopg.Connection[Any], table: Table
) -> tuple[sql.Identifier, list[_Column]]:
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


def _numbered() -> Placeholders:
    """``$1``, ``$2``...: the ADBC driver's parameter markers, in order of use."""
    counter = itertools.count(1)
    return lambda: sql.SQL(f"${next(counter)}")


def _where(
    filters: Sequence[Filter],
    by_name: dict[str, _Column],
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
    item: Filter, column: _Column, placeholder: Placeholders = sql.Placeholder
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


def _select(
    relation: sql.Identifier,
    projected: Sequence[_Column],
    by_name: dict[str, _Column],
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
    item: Aggregate, by_name: dict[str, _Column], result_type: pa.DataType
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


def _aggregate(
    relation: sql.Identifier,
    by_name: dict[str, _Column],
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


# --- streaming -------------------------------------------------------------------------


def _stream(
    connection: psycopg.Connection[Any],
    query: sql.Composed,
    params: list[Any],
    schema: pa.Schema,
    batch_size: int,
    cancellation: Cancellation | None,
) -> Iterator[pa.RecordBatch]:
    # Rows arrive as Python tuples, far bigger than their Arrow batch: fetch at most
    # MAX_FETCH_ROWS of them at a time, whatever batch size the caller allows.
    batch_size = min(batch_size, MAX_FETCH_ROWS)
    with connection.cursor(name=_CURSOR, binary=True) as cursor:
        cursor.itersize = batch_size
        cursor.execute(query, params)
        while True:
            _check_cancelled(cancellation)
            rows = cursor.fetchmany(batch_size)
            if not rows:
                return
            yield _to_batch(rows, schema)


def _to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([], type=field.type) for field in schema], schema=schema
    )


# --- errors ----------------------------------------------------------------------------

_NOT_FOUND = (errors.UndefinedTable, errors.InvalidSchemaName)
_TIMED_OUT = (errors.QueryCanceled, errors.LockNotAvailable)
_REFUSED = (
    errors.InsufficientPrivilege,
    errors.InvalidAuthorizationSpecification,
    errors.InvalidPassword,
)


@contextmanager
def _database_errors(location: str) -> Iterator[None]:
    """Translate psycopg, pool and Arrow failures into the connector errors."""
    try:
        yield
    except ConnectorError:
        raise
    except PoolTimeout as exc:
        raise StoreUnavailable("no PostgreSQL connection became available in time") from exc
    except PoolClosed as exc:
        raise ConnectorError("the postgres connector is closed") from exc
    except psycopg.Error as exc:
        raise _translate(exc, location) from exc
    except pa.ArrowException as exc:
        raise ConnectorError(f"cannot convert rows of {location!r}: {type(exc).__name__}") from exc


def _translate(exc: psycopg.Error, location: str) -> ConnectorError:
    # Messages carry the SQLSTATE and class only: server text can quote a filter
    # literal ("invalid input syntax for type integer: ..."), and messages reach logs.
    # The full text stays on the chained cause.
    state = exc.sqlstate or "none"
    kind = type(exc).__name__
    if isinstance(exc, _NOT_FOUND):
        return DatasetNotFound(location)
    if isinstance(exc, _TIMED_OUT):
        return StoreUnavailable(f"PostgreSQL timed out reading {location!r} (SQLSTATE {state})")
    if isinstance(exc, _REFUSED):
        return StoreUnavailable(f"PostgreSQL refused access to {location!r} (SQLSTATE {state})")
    unavailable_class = exc.sqlstate is not None and exc.sqlstate[:2] in ("08", "53", "57")
    if unavailable_class or (exc.sqlstate is None and isinstance(exc, psycopg.OperationalError)):
        return StoreUnavailable(f"PostgreSQL unavailable reading {location!r}: {kind}")
    return ConnectorError(f"PostgreSQL error reading {location!r}: {kind} (SQLSTATE {state})")
