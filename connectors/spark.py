"""Tables read through a Spark Connect server, streamed back as Arrow record batches.

The gateway is a Spark Connect client (``sc://host:port``). A scan is built with the
DataFrame API only: column references by name, predicates from ``Column`` operators
and values as typed literals, so no SQL text is ever composed, let alone from caller
input. Spark plans and runs the query (projection and filters reach its Parquet
reader: partition and row-group pruning happen on the cluster); the answer comes back
over gRPC as Arrow batches, which are handed on one by one as they arrive, so the
gateway holds a batch at a time, not the answer.

``Table.location`` is a path the Spark server can read (``format: parquet`` or
``csv``; relative paths are taken below the store's ``root``) or a table name in the
server's catalog (``format: table``). A catalog table may be in any format the server
has installed (Delta, Iceberg...): the connector only ever asks the catalog for it.

Errors are translated at this edge: a missing path or table is
:class:`~connectors.base.DatasetNotFound`, an unreachable or refusing server or a
timeout is :class:`~connectors.base.StoreUnavailable`. Messages carry Spark's error
class, never its text, which can quote a filter literal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa

from connectors.base import (
    AggregateScan,
    Cancellation,
    ConnectorError,
    Scan,
    StoreUnavailable,
    Table,
)
from connectors.batches import StoreConnector, at_least_one, check_cancelled, empty_batch
from connectors.spark_columns import DataFrame, aggregate_column, filtered
from connectors.spark_errors import spark_errors
from connectors.sqlrender import aggregate_schema, check_aggregate_scan, check_scan

if TYPE_CHECKING:
    from pyspark.sql.connect.session import SparkSession


log = logging.getLogger(__name__)

# pyspark logs the full server message of some errors on loggers of its own, and that
# text can quote a filter literal: they are silenced while a connector exists.
_ECHOING_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_LOOPBACK_NAMES = ("localhost",)
_INTERRUPT_EVERY_S = 0.05
_SERVER_BATCH_ROWS = 65_536


def _import_pyspark() -> Any:
    """pyspark's Connect client, imported on first use (it is an optional extra).

    pyspark checks the installed pandas at import and warns about versions it has not
    been released against; the Connect client's Arrow path never touches pandas."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import pyspark.sql.connect.functions as functions
            import pyspark.sql.connect.session  # noqa: F401
    except ImportError as exc:
        raise ConnectorError(
            "the spark store needs pyspark's Connect client: pip install 'kiteline[spark]'"
        ) from exc
    return functions


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SparkConnector(StoreConnector):
    """Reads Parquet/CSV paths and catalog tables through one Spark Connect session.

    ``url`` is ``sc://host:port`` without parameters; the bearer ``token`` (already
    resolved from its reference) is sent only over TLS, or over loopback to a server on
    the same machine. ``timeout_s`` bounds a schema look-up, an aggregate, and the wait
    for a scan's first batch; the operation is then interrupted on the server.
    The session opens lazily on first use.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        tls: bool = True,
        ca_bundle: bytes | None = None,
        root: str = "",
        timeout_s: float = 300.0,
        connect_retries: int = 3,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "sc" or not parsed.hostname:
            raise ConnectorError("a spark store URL looks like sc://host:15002")
        if parsed.path.strip("/") or parsed.params or parsed.query or ";" in url:
            raise ConnectorError(
                "give the spark URL without parameters; the token has its own setting"
            )
        if token is not None and not tls and not _is_loopback(parsed.hostname):
            raise ConnectorError("a Spark Connect token is only sent over TLS (set tls: true)")
        if ca_bundle is not None and not tls:
            raise ConnectorError("ca_bundle needs tls: true")
        if timeout_s <= 0:
            raise ConnectorError("timeout_s must be positive")
        self._url = f"sc://{parsed.netloc}"
        self._token = token
        self._tls = tls
        self._ca_bundle = ca_bundle
        self._root = root.rstrip("/")
        self._timeout_s = timeout_s
        self._connect_retries = connect_retries
        self._lock = threading.Lock()
        self._session: SparkSession | None = None
        self._closed = False
        # Arrow bytes of the answers received from Spark: what a read moved to the gateway.
        self.bytes_received = 0
        for name in _ECHOING_LOGGERS:
            logging.getLogger(name).disabled = True

    # -- Connector -------------------------------------------------------------------

    def schema(self, table: Table) -> pa.Schema:
        with spark_errors(table.location), self._deadline() as (tag, _):
            session = self._open()
            session.addTag(tag)
            try:
                return _arrow_schema(self._frame(session, table).schema)
            finally:
                session.removeTag(tag)

    def _batches(
        self, table: Table, scan: Scan, batch_size: int, cancellation: Cancellation | None
    ) -> Iterator[pa.RecordBatch]:
        functions = _import_pyspark()
        with spark_errors(table.location, cancellation):
            session = self._open()
            source = self._frame(session, table)
            schema = _arrow_schema(source.schema)
            check_scan(scan, schema)
            output = pa.schema([schema.field(name) for name in scan.columns])
            if scan.limit == 0:
                yield empty_batch(output)
                return
            frame = filtered(functions, source, scan.filters, schema)
            if scan.order_by:
                frame = frame.orderBy(
                    *[
                        functions.col(item.column).desc_nulls_last()
                        if item.descending
                        else functions.col(item.column).asc_nulls_last()
                        for item in scan.order_by
                    ]
                )
            frame = frame.select(*[functions.col(name) for name in scan.columns])
            if scan.offset:
                frame = frame.offset(int(scan.offset))
            if scan.limit is not None:
                frame = frame.limit(int(scan.limit))
            batches = self._stream(session, frame, output, batch_size, cancellation)
            yield from at_least_one(batches, output)

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        functions = _import_pyspark()
        with spark_errors(table.location), self._deadline() as (tag, _):
            session = self._open()
            session.addTag(tag)
            try:
                source = self._frame(session, table)
                schema = _arrow_schema(source.schema)
                check_aggregate_scan(scan, schema)
                target = aggregate_schema(scan, schema)
                frame = filtered(functions, source, scan.filters, schema)
                outputs = [
                    aggregate_column(functions, item, target.field(item.alias).type)
                    for item in scan.aggregates
                ]
                keys = [functions.col(name) for name in scan.group_by]
                if keys:
                    frame = frame.groupBy(*keys).agg(*outputs)
                    frame = frame.orderBy(*[key.asc_nulls_last() for key in keys])
                else:
                    frame = frame.agg(*outputs)
                result = frame.toArrow()
            finally:
                session.removeTag(tag)
            return _conform(result, target)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                session.stop()

    # -- internals -------------------------------------------------------------------

    def _open(self) -> SparkSession:
        with self._lock:
            if self._closed:
                raise ConnectorError("the spark connector is closed")
            if self._session is None:
                self._session = self._connect()
            return self._session

    def _connect(self) -> SparkSession:
        _import_pyspark()
        from pyspark.sql.connect.client.retries import DefaultPolicy
        from pyspark.sql.connect.session import SparkSession

        builder = _channel_builder(self._url, self._token, self._tls, self._ca_bundle)
        session = SparkSession(connection=builder)
        # The default policy retries an unreachable server for about ten minutes; a
        # request waiting on it should learn it is down in about a second.
        session.client.set_retry_policies([DefaultPolicy(max_retries=self._connect_retries)])
        # Schema look-ups are analyze calls, which no interruption reaches: they get a
        # gRPC deadline of the store's timeout instead (pyspark's default is an hour).
        client = session.client
        client._rpc_deadlines = dataclasses.replace(
            client._rpc_deadlines, analyze_plan=self._timeout_s
        )
        # Spark cuts answers into Arrow batches of 10,000 rows by default; the gateway
        # pays its per-batch costs (transforms, encoding) less often on larger ones.
        try:
            session.conf.set(
                "spark.sql.execution.arrow.maxRecordsPerBatch", str(_SERVER_BATCH_ROWS)
            )
        except BaseException:
            with contextlib.suppress(Exception):
                session.stop()
            raise
        return session

    def _frame(self, session: SparkSession, table: Table) -> DataFrame:
        if table.format == "table":
            return session.read.table(table.location)
        if table.format not in ("parquet", "csv"):
            raise ConnectorError(f"the spark store cannot read format {table.format!r}")
        path = table.location
        if self._root and "://" not in path and not path.startswith("/"):
            path = f"{self._root}/{path}"
        if table.format == "csv":
            return session.read.csv(path, header=True, inferSchema=True)
        return session.read.parquet(path)

    @contextlib.contextmanager
    def _deadline(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """A tag for the operations of one call, interrupted on the server when the call
        has not answered within the timeout (reported as the store being unavailable),
        and the function that says it has answered."""
        tag = f"kiteline-{uuid.uuid4().hex}"
        fired = threading.Event()
        done = threading.Event()

        def interrupt() -> None:
            if done.wait(self._timeout_s):
                return
            fired.set()
            # Again until the call ends: an operation the server has not registered yet
            # when the time is up would miss a single interruption.
            while not done.is_set():
                session = self._session
                if session is not None:
                    with contextlib.suppress(Exception):
                        session.interruptTag(tag)
                done.wait(_INTERRUPT_EVERY_S)

        watchdog = threading.Thread(target=interrupt, name="kiteline-spark-deadline", daemon=True)
        watchdog.start()
        try:
            yield tag, done.set
        except Exception as exc:
            if fired.is_set():
                message = f"Spark did not answer within {self._timeout_s:g} s"
                raise StoreUnavailable(message) from exc
            raise
        finally:
            done.set()

    def _stream(
        self,
        session: SparkSession,
        frame: DataFrame,
        output: pa.Schema,
        batch_size: int,
        cancellation: Cancellation | None,
    ) -> Iterator[pa.RecordBatch]:
        # The Connect client's own streaming path (the one toLocalIterator uses), taken
        # before it turns batches into Rows: Arrow tables of one batch each, as the
        # server sends them.
        client = session.client
        plan = frame._plan.to_proto(client)
        answers = client.to_table_as_iterator(plan, frame._plan.observations)
        exhausted = False
        with self._deadline() as (tag, answered):
            # Tags are per thread and read when the request is built, on the first step.
            session.addTag(tag)
            try:
                first = next(answers, None)
            finally:
                session.removeTag(tag)
            # The schema comes ahead of the rows; the deadline runs until the first rows.
            while first is not None and not isinstance(first, pa.Table):
                first = next(answers, None)
            answered()
        try:
            answer = first
            while answer is not None:
                with self._lock:
                    self.bytes_received += answer.nbytes
                for batch in _conform(answer, output).to_batches(max_chunksize=batch_size):
                    check_cancelled(cancellation)
                    yield batch
                answer = next(answers, None)
                while answer is not None and not isinstance(answer, pa.Table):
                    answer = next(answers, None)
            exhausted = True
        finally:
            if not exhausted:
                # Stopped early (cancelled, client gone, error): the server stops too.
                with contextlib.suppress(Exception):
                    session.interruptTag(tag)
                close = getattr(answers, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()


def _channel_builder(url: str, token: str | None, tls: bool, ca_bundle: bytes | None) -> Any:
    import grpc
    from pyspark.sql.connect.client import DefaultChannelBuilder

    class _Channel(DefaultChannelBuilder):
        """The channel the store's settings describe, and nothing from the environment
        (pyspark would otherwise pick up a token from SPARK_CONNECT_AUTHENTICATE_TOKEN)."""

        @property
        def token(self) -> str | None:
            return token

        @property
        def secure(self) -> bool:
            return tls or token is not None

        def toChannel(self) -> grpc.Channel:
            if not tls and token is None:
                return self._insecure_channel(self.endpoint)
            if tls:
                credentials = grpc.ssl_channel_credentials(root_certificates=ca_bundle)
            else:
                # A token without TLS is accepted only for a loopback server: gRPC's
                # local credentials refuse to send it anywhere else.
                credentials = grpc.local_channel_credentials()
            if token is not None:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(token)
                )
            return self._secure_channel(self.endpoint, credentials)

    return _Channel(url)


# --- schema and types ------------------------------------------------------------------


def _arrow_schema(struct: Any) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        schema = to_arrow_schema(struct, timezone="UTC")
    except Exception as exc:  # a Spark type with no Arrow counterpart
        raise ConnectorError(
            f"a column type has no Arrow equivalent: {type(exc).__name__}"
        ) from exc
    return pa.schema([pa.field(f.name, f.type, nullable=f.nullable) for f in schema])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the connector's column types and no Spark field metadata."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(None) if table.schema.metadata else table
    try:
        return table.rename_columns(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConnectorError(f"cannot convert Spark's answer: {type(exc).__name__}") from exc
