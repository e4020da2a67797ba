"""Datasets kept as Parquet or CSV objects in an S3-compatible bucket.

pyarrow's S3 client reads the objects. Projection and filters become a
``pyarrow.dataset`` scan, so Hive partitions that cannot match are never listed
into the read and Parquet row groups whose statistics exclude the filter are never
fetched. Ordered windows and grouped aggregates are handed to an in-memory DuckDB
that consumes that same pruned Arrow stream: it keeps only the top ``offset + limit``
rows while sorting and aggregates as batches arrive, so a bounded query never holds
the whole dataset.

Every byte fetched from the store passes through a counting wrapper; see
:attr:`S3Connector.bytes_read`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pyarrow import csv

from connectors.base import (
    AggregateScan,
    Cancellation,
    ConnectorError,
    Filter,
    Scan,
    Table,
)
from connectors.batches import StoreConnector, at_least_one, empty_batch
from connectors.s3_bytes import ByteCounter, CountingHandler
from connectors.s3_errors import SourceTrap, guarded, store_errors
from connectors.sqlrender import (
    aggregate_schema,
    check_aggregate_scan,
    check_scan,
    conform_table,
    duckdb_aggregate,
    duckdb_select,
    needed_columns,
)

log = logging.getLogger(__name__)

# Name under which the pruned Arrow stream is registered in the per-call DuckDB.
_SOURCE = "kiteline_source"


# DuckDB only ever sees Arrow streams we hand it; it must not read files, reach the
# network or fetch extensions (the gateway runs air-gapped).
_DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class S3Connector(StoreConnector):
    """Reads Parquet/CSV objects and Hive-partitioned prefixes from one bucket.

    ``Table.location`` is a key or a prefix relative to ``prefix``; ``Table.format`` is
    ``parquet`` or ``csv``; ``Table.options`` may hold ``partitioning="hive"`` (or the
    local store's ``hive_partitioning=True``) and, for
    CSV, ``delimiter`` and ``strings_can_be_null`` (default true: an empty field is NULL
    in text columns too, as it already is in numeric ones). Credentials are plain,
    already-resolved strings handed to the S3 client only, never kept on this object
    or logged.

    ``connect_timeout`` bounds establishing a connection. ``request_timeout`` is passed
    to the AWS SDK, which honours it only on Windows and macOS. ``verify_tls=False`` is
    refused: pyarrow's S3 client has no switch for it, so point ``ca_bundle`` at the
    endpoint's CA instead.
    """

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        *,
        prefix: str = "",
        region: str = "us-east-1",
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        path_style: bool = True,
        verify_tls: bool = True,
        ca_bundle: str | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        retry_max_attempts: int = 3,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectorError("endpoint_url must look like http(s)://host[:port]")
        if parts.username or parts.password:
            raise ConnectorError("endpoint_url must not carry credentials")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConnectorError("endpoint_url must not have a path or query")
        if not bucket or "/" in bucket:
            raise ConnectorError("bucket must be a bare bucket name")
        if not verify_tls:
            raise ConnectorError(
                "verify_tls=False is not supported by pyarrow's S3 client; "
                "give ca_bundle the endpoint's CA certificate instead"
            )
        if not access_key_id or not secret_access_key:
            raise ConnectorError("access_key_id and secret_access_key are required")
        if retry_max_attempts < 1:
            raise ConnectorError("retry_max_attempts must be at least 1")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._counter = ByteCounter()
        native = pafs.S3FileSystem(
            access_key=access_key_id,
            secret_key=secret_access_key,
            session_token=session_token,
            region=region,
            scheme=parts.scheme,
            endpoint_override=parts.netloc,
            force_virtual_addressing=not path_style,
            tls_ca_file_path=ca_bundle,
            connect_timeout=connect_timeout,
            request_timeout=request_timeout,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=retry_max_attempts),
        )
        self._fs = pafs.PyFileSystem(CountingHandler(native, self._counter))

    # -- byte accounting -------------------------------------------------------------

    @property
    def bytes_read(self) -> int:
        """Bytes fetched from the store by this connector so far (all calls, all threads).

        Take the difference around one call to measure it; concurrent calls add up.
        """
        return self._counter.bytes

    @property
    def files_opened(self) -> int:
        """Objects opened for reading so far; pruned partitions are never opened."""
        return self._counter.opened

    # -- Connector -------------------------------------------------------------------

    def schema(self, table: Table) -> pa.Schema:
        location = self._path(table)
        with store_errors(location):
            return self._dataset(table, location).schema

    def _batches(
        self, table: Table, scan: Scan, batch_size: int, cancellation: Cancellation | None
    ) -> Iterator[pa.RecordBatch]:
        location = self._path(table)
        with store_errors(location):
            dataset = self._dataset(table, location)
        check_scan(scan, dataset.schema)
        output = pa.schema([dataset.schema.field(name) for name in scan.columns])
        log.debug(
            "s3 scan of %s: %d columns, %d filters",
            location,
            len(scan.columns),
            len(scan.filters),
        )
        if scan.limit == 0:
            yield empty_batch(output)
            return
        if scan.order_by:
            batches = self._ordered(dataset, scan, output, batch_size, cancellation, location)
        else:
            batches = self._window(dataset, scan, batch_size, cancellation, location)
        yield from at_least_one(batches, output, drop_empty=True)

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        location = self._path(table)
        with store_errors(location):
            dataset = self._dataset(table, location)
        check_aggregate_scan(scan, dataset.schema)
        target = aggregate_schema(scan, dataset.schema)
        columns = needed_columns([*scan.group_by, *(item.column for item in scan.aggregates)])
        predicate = _predicate(scan.filters)
        if not columns:
            # Only count(*) without groups: Parquet footers already hold row counts.
            with store_errors(location):
                total = dataset.scanner(columns=[], filter=predicate).count_rows()
            return pa.table([pa.array([total], pa.int64()) for _ in target], schema=target)
        with store_errors(location):
            scanner = dataset.scanner(columns=columns, filter=predicate)
        trap = SourceTrap(None)
        reader = pa.RecordBatchReader.from_batches(
            scanner.projected_schema, trap.watch(scanner.to_batches())
        )
        connection = duckdb.connect(":memory:", config=_DUCKDB_CONFIG)
        try:
            with store_errors(location, trap):
                connection.register(_SOURCE, reader)
                query = duckdb_aggregate(_SOURCE, scan, dataset.schema)
                table_out = _relation(connection, query, None).to_arrow_table()
        finally:
            connection.close()
        return conform_table(table_out, target)

    def close(self) -> None:
        """Nothing to release: the S3 client holds no pooled state we own."""

    # -- internals -------------------------------------------------------------------

    def _path(self, table: Table) -> str:
        location = table.location.strip("/")
        if not location:
            raise ConnectorError("a dataset location must name a key or prefix")
        if any(part in ("", ".", "..") for part in location.split("/")):
            raise ConnectorError(f"malformed location {table.location!r}")
        return "/".join(part for part in (self.bucket, self.prefix, location) if part)

    def _dataset(self, table: Table, location: str) -> ds.Dataset:
        file_format: ds.FileFormat
        if table.format == "parquet":
            file_format = ds.ParquetFileFormat()
        elif table.format == "csv":
            delimiter = table.options.get("delimiter", ",")
            # CSV cannot say NULL; an empty field already reads as null in numeric
            # columns, and treating text the same keeps is_null meaning one thing.
            empty_is_null = bool(table.options.get("strings_can_be_null", True))
            file_format = ds.CsvFileFormat(
                parse_options=csv.ParseOptions(delimiter=delimiter),
                convert_options=csv.ConvertOptions(strings_can_be_null=empty_is_null),
            )
        else:
            raise ConnectorError(f"the s3 store reads parquet or csv, not {table.format!r}")
        partitioning = table.options.get("partitioning")
        if partitioning is None and table.options.get("hive_partitioning"):
            # The local store's spelling, so one dataset declaration fits both stores.
            partitioning = "hive"
        if partitioning not in (None, "hive"):
            raise ConnectorError(f"unsupported partitioning {partitioning!r}")
        return ds.dataset(
            location, filesystem=self._fs, format=file_format, partitioning=partitioning
        )

    def _window(
        self,
        dataset: ds.Dataset,
        scan: Scan,
        batch_size: int,
        cancellation: Cancellation | None,
        location: str,
    ) -> Iterator[pa.RecordBatch]:
        """Unordered rows in stored order, with offset and limit applied while streaming."""
        with store_errors(location):
            scanner = dataset.scanner(
                columns=list(scan.columns), filter=_predicate(scan.filters), batch_size=batch_size
            )
        skip = scan.offset
        remaining = scan.limit
        for batch in guarded(scanner.to_batches(), location, cancellation):
            if skip:
                if batch.num_rows <= skip:
                    skip -= batch.num_rows
                    continue
                batch = batch.slice(skip)
                skip = 0
            if remaining is not None:
                batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
            yield batch
            if remaining == 0:
                # Stopping here leaves the rest of the objects unfetched.
                return

    def _ordered(
        self,
        dataset: ds.Dataset,
        scan: Scan,
        output: pa.Schema,
        batch_size: int,
        cancellation: Cancellation | None,
        location: str,
    ) -> Iterator[pa.RecordBatch]:
        columns = needed_columns([*scan.columns, *(item.column for item in scan.order_by)])
        with store_errors(location):
            scanner = dataset.scanner(
                columns=columns, filter=_predicate(scan.filters), batch_size=batch_size
            )
        trap = SourceTrap(cancellation)
        reader = pa.RecordBatchReader.from_batches(
            scanner.projected_schema, trap.watch(scanner.to_batches())
        )
        text, params = duckdb_select(_SOURCE, scan)
        connection = duckdb.connect(":memory:", config=_DUCKDB_CONFIG)
        result_reader: pa.RecordBatchReader | None = None
        try:
            with store_errors(location, trap):
                connection.register(_SOURCE, reader)
                relation = _relation(connection, text, params or None)
                result_reader = relation.to_arrow_reader(batch_size)
            for batch in guarded(iter(result_reader), location, cancellation, trap):
                yield _conform_batch(batch, output)
        finally:
            if result_reader is not None:
                result_reader.close()
            connection.close()


def _relation(
    connection: duckdb.DuckDBPyConnection, query: str, params: list[object] | None
) -> duckdb.DuckDBPyRelation:
    relation = connection.sql(query, params=params)
    if relation is None:  # only statements that return no rows give None
        raise ConnectorError("DuckDB returned no result for a query")
    return relation


# --- filters ---------------------------------------------------------------------------


def _predicate(filters: tuple[Filter, ...]) -> pc.Expression | None:
    """The conjunction of the filters as one Arrow expression (None for no filter).

    Values stay untyped literals: Arrow casts them to the column type when it binds the
    expression, and refuses a lossy cast instead of silently truncating.
    """
    predicate: pc.Expression | None = None
    for item in filters:
        expression = _expression(item)
        predicate = expression if predicate is None else predicate & expression
    return predicate


def _expression(item: Filter) -> pc.Expression:
    field = pc.field(item.column)
    value: Any = item.value
    if item.op == "=":
        return field == value
    if item.op == "!=":
        return field != value
    if item.op == "<":
        return field < value
    if item.op == "<=":
        return field <= value
    if item.op == ">":
        return field > value
    if item.op == ">=":
        return field >= value
    if item.op == "in":
        # SQL never matches NULL through IN; Arrow's isin would, so drop NULLs here.
        elements = [element for element in value if element is not None]
        # An empty list matches nothing (Arrow cannot type an empty value set).
        return field.isin(elements) if elements else pc.scalar(False)
    if item.op == "between":
        low, high = value
        return (field >= low) & (field <= high)
    if item.op == "like":
        return pc.match_like(field, pattern=value)
    if item.op == "is_null":
        return field.is_null() if value else field.is_valid()
    raise ConnectorError(f"unsupported filter operator {item.op!r}")


# --- Arrow helpers ---------------------------------------------------------------------


def _conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Give DuckDB's output the dataset's own types (DuckDB may pick e.g. another tz)."""
    columns = [
        column if column.type == field.type else column.cast(field.type)
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
