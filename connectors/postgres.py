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

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import errors, sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from connectors.base import (
    AggregateScan,
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    Scan,
    StoreUnavailable,
    Table,
)
from connectors.batches import StoreConnector, at_least_one, check_cancelled, empty_batch
from connectors.postgres_arrow import (
    UnnamedServerError,
    arrow_batches,
    bindable,
    read_only_conninfo,
)
from connectors.postgres_sql import aggregate_query, describe, numbered, select_query
from connectors.sqlrender import aggregate_schema, check_aggregate_scan, check_scan

log = logging.getLogger(__name__)

MAX_FETCH_ROWS = 65_536
_CURSOR = "kiteline_scan"


class PostgresConnector(StoreConnector):
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
            _, columns = describe(connection, table)
            return pa.schema([column.field for column in columns])

    def _batches(
        self, table: Table, scan: Scan, batch_size: int, cancellation: Cancellation | None
    ) -> Iterator[pa.RecordBatch]:
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
        check_cancelled(cancellation)
        with _database_errors(table.location), self._transaction() as connection:
            relation, columns = describe(connection, table)
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
                yield empty_batch(output)
                return
            query, params = select_query(relation, projected, by_name, scan)
            arrow_query = None
            if arrow and self._arrow_conninfo is not None and bindable(params):
                positional, _ = select_query(relation, projected, by_name, scan, numbered())
                arrow_query = positional.as_string(connection)
            else:
                rows = _stream(connection, query, params, output, batch_size, cancellation)
                yield from at_least_one(rows, output)
        if arrow_query is not None and self._arrow_conninfo is not None:
            # The catalog's transaction is over: the rows come on a connection of their own.
            batches = arrow_batches(
                self._arrow_conninfo,
                arrow_query,
                params,
                output,
                min(batch_size, MAX_FETCH_ROWS),
                lambda: check_cancelled(cancellation),
                table.location,
            )
            yield from at_least_one(batches, output)

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        with _database_errors(table.location), self._transaction() as connection:
            relation, columns = describe(connection, table)
            by_name = {column.name: column for column in columns}
            schema = pa.schema([column.field for column in columns])
            check_aggregate_scan(scan, schema)
            target = aggregate_schema(scan, schema)
            query, params = aggregate_query(relation, by_name, scan, target)
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
            check_cancelled(cancellation)
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
