"""Query results of PostgreSQL straight into Arrow, through the ADBC PostgreSQL driver.

The driver decodes the server's binary result format into Arrow arrays in native code,
so no Python object is made per row or per value. Filters stay bound parameters
(``$1``, ``$2``...): the statement text never holds a value. Each read opens its own
connection whose every transaction is READ ONLY and bounded by ``statement_timeout``
(both set as connection options, so no statement of ours can outlive the read), and
closes it when the read ends or is abandoned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.base import ConnectorError, DatasetNotFound, StoreUnavailable

# Values the driver binds as the same PostgreSQL types psycopg would (numbers, text,
# booleans and dates; lists of one of them for ``= ANY``); any other filter value sends
# the read through psycopg instead.
_SCALARS = (bool, int, float, str, dt.date)


def bindable(params: Sequence[Any]) -> bool:
    """Whether every parameter binds through the driver exactly as through psycopg."""
    for value in params:
        if isinstance(value, list):
            kinds = {type(element) for element in value}
            if len(kinds) != 1 or not issubclass(kinds.pop(), _SCALARS):
                return False
        elif isinstance(value, dt.datetime) or not isinstance(value, _SCALARS):
            return False
        if isinstance(value, list) and any(isinstance(e, dt.datetime) for e in value):
            return False
    return True


def read_only_conninfo(dsn: str, statement_timeout_ms: int, connect_timeout: int) -> str:
    """``dsn`` with READ ONLY transactions and the statement timeout as session options
    (kept beside any options it already has, such as a search_path)."""
    given = conninfo_to_dict(dsn)
    options = str(given.pop("options", "") or "")
    ours = f"-c default_transaction_read_only=on -c statement_timeout={int(statement_timeout_ms)}"
    given["options"] = f"{options} {ours}".strip()
    given.setdefault("connect_timeout", str(connect_timeout))
    return make_conninfo("", **given)


def arrow_batches(
    conninfo: str,
    query: str,
    params: Sequence[Any],
    schema: pa.Schema,
    batch_size: int,
    check_cancelled: Callable[[], None],
    location: str,
) -> Iterator[pa.RecordBatch]:
    """The driver's batches of ``schema``, cut to at most ``batch_size`` rows each."""
    with _driver_errors(location):
        connection = adbc.connect(conninfo)
    cursor: Any = None
    reader: Any = None
    try:
        with _driver_errors(location):
            cursor = connection.cursor()
            cursor.execute(query, tuple(params) if params else None)
            reader = cursor.fetch_record_batch()
        while True:
            check_cancelled()
            with _driver_errors(location):
                try:
                    batch = _conformed(reader.read_next_batch(), schema)
                except StopIteration:
                    break
            # Slices share the driver's buffers: joining small batches is the reader's
            # choice (connectors.coalesced), not a copy made here.
            for start in range(0, batch.num_rows, batch_size):
                if start:
                    check_cancelled()
                yield batch.slice(start, batch_size)
    finally:
        # A read left early still holds its statement and transaction: release them
        # first, since a connection with an open statement may refuse to close.
        for part in (reader, cursor, connection):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The driver's batch in the connector's declared types."""
    arrays = []
    for column, field in zip(batch.columns, schema, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            # numeric arrives as its text (an opaque extension type over strings).
            column = column.storage
        if column.type != field.type:
            column = column.cast(field.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@contextmanager
def _driver_errors(location: str) -> Iterator[None]:
    """Translate the driver's failures into the connector errors."""
    try:
        yield
    except ConnectorError:
        raise
    except adbc.Error as exc:
        state = getattr(exc, "sqlstate", None)
        raise _translate(str(state) if state else None, exc, location) from exc
    except (pa.ArrowException, OSError) as exc:
        # A failure while the rows stream (the server's error, relayed by the reader).
        found = _SQLSTATE.search(str(exc))
        if found is None and _SERVER_ERROR in str(exc):
            raise UnnamedServerError(
                f"PostgreSQL error reading {location!r}: {type(exc).__name__}"
            ) from exc
        if found is None:
            raise ConnectorError(
                f"cannot convert rows of {location!r}: {type(exc).__name__}"
            ) from exc
        raise _translate(found.group(1), exc, location) from exc


_SQLSTATE = re.compile(r"SQLSTATE: ([0-9A-Z]{5})")
_SERVER_ERROR = "ERROR:  "  # how libpq starts a server's error message


class UnnamedServerError(ConnectorError):
    """The server failed the statement, and the driver did not say with which SQLSTATE."""


def _translate(state: str | None, exc: Exception, location: str) -> ConnectorError:
    """As the psycopg path translates the same SQLSTATE, naming psycopg's class for it;
    SQLSTATE and class only in messages: server text can quote a filter value."""
    try:
        kind = errors.lookup(state).__name__ if state else type(exc).__name__
    except KeyError:
        kind = type(exc).__name__
    shown = state or "none"
    if state in ("42P01", "3F000"):
        return DatasetNotFound(location)
    if state in ("57014", "55P03"):
        return StoreUnavailable(f"PostgreSQL timed out reading {location!r} (SQLSTATE {shown})")
    if state in ("42501", "28000", "28P01"):
        return StoreUnavailable(f"PostgreSQL refused access to {location!r} (SQLSTATE {shown})")
    if (state is not None and state[:2] in ("08", "53", "57")) or (
        state is None and isinstance(exc, adbc.OperationalError)
    ):
        return StoreUnavailable(f"PostgreSQL unavailable reading {location!r}: {kind}")
    return ConnectorError(f"PostgreSQL error reading {location!r}: {kind} (SQLSTATE {shown})")
