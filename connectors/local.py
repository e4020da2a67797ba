"""The `local` store: a folder of Parquet or CSV files, read through DuckDB.

DuckDB streams record batches and pushes projection, filters, order and limit into
its Parquet reader (row-group pruning by statistics), so a bounded query never
materialises the whole file. Every value reaches DuckDB as a bound parameter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.base import (
    AggregateScan,
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    Filter,
    Scan,
    Table,
)
from connectors.batches import StoreConnector, check_cancelled
from connectors.derived import Deriver
from connectors.file_cache import ArrowFileCache
from connectors.inline import decline_inline
from connectors.sqlrender import aggregate_schema, check_aggregate_scan, conform_table

log = logging.getLogger(__name__)

_CACHED_VIEW = "kiteline_cached_file"
# A cached column is dictionary-encoded for a scan (once per file version, kept with the
# cached table) only when its batches are at least this long, and a batch gets it only
# when it has at least twice as many rows as the column has distinct values: below that,
# mapping the whole dictionary costs more than mapping the batch's own values.
DICTIONARY_MIN_ROWS = 65_536
_COMPARISONS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Params:
    """Collects bound parameters and hands out their placeholders."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return f"${key}"


def render_filter(flt: Filter, params: _Params) -> str:
    column = quote_identifier(flt.column)
    if flt.op in _COMPARISONS:
        return f"{column} {_COMPARISONS[flt.op]} {params.add(flt.value)}"
    if flt.op == "in":
        if not flt.value:
            return "FALSE"
        return f"{column} IN ({', '.join(params.add(v) for v in flt.value)})"
    if flt.op == "between":
        low, high = flt.value
        return f"{column} BETWEEN {params.add(low)} AND {params.add(high)}"
    if flt.op == "like":
        return f"{column} LIKE {params.add(flt.value)}"
    if flt.op == "is_null":
        return f"{column} IS NULL" if flt.value in (None, True) else f"{column} IS NOT NULL"
    raise ConnectorError(f"unsupported filter operator {flt.op!r}")


def render_where(filters: tuple[Filter, ...], params: _Params) -> str:
    if not filters:
        return ""
    return " WHERE " + " AND ".join(f"({render_filter(f, params)})" for f in filters)


@contextlib.contextmanager
def _map_duckdb_errors(location: str) -> Iterator[None]:
    try:
        yield
    # Only DuckDB's error class goes into the message: its text can quote filter
    # literals, and messages end up in logs and problems. The text stays on the chained
    # cause for whoever debugs the store.
    except duckdb.IOException as exc:
        if "No files found" in str(exc) or "No such file" in str(exc):
            raise DatasetNotFound(location) from exc
        raise ConnectorError(f"cannot read {location!r} ({type(exc).__name__})") from exc
    except duckdb.Error as exc:
        raise ConnectorError(f"query on {location!r} failed ({type(exc).__name__})") from exc


class LocalConnector(StoreConnector):
    """Reads Parquet and CSV files (a file, or a folder of them) below ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        threads: int | None = None,
        file_cache: ArrowFileCache | None = None,
    ) -> None:
        self.root = root.resolve()
        # Small single files are decoded once and queried from memory; folders and big
        # files keep the streaming path.
        self.file_cache = ArrowFileCache() if file_cache is None else file_cache
        config: dict[str, Any] = {
            "enable_external_access": True,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if threads:
            config["threads"] = threads
        self._database = duckdb.connect(":memory:", config=config)
        self._database.execute("SET parquet_metadata_cache = true")
        self._lock = threading.Lock()
        # Dataset location -> (device and inode it named, resolved path); bounded by the
        # locations the configuration names.
        self._resolved: dict[str, tuple[tuple[int, int], Path]] = {}
        self._unresolved: dict[str, str] = {}

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        # A DuckDB connection is not safe to share between threads, and a streamed result
        # is read on whichever thread the server picks for the next chunk: every call
        # gets its own cursor (cheap: cursors of one database share its caches), closed
        # when the call ends.
        with self._lock:
            return self._database.cursor()

    def _locate(self, table: Table) -> tuple[Path, os.stat_result]:
        """The resolved path of ``table``, refused when it leaves the store root, and
        what ``stat`` says of it now (the caller needs no second look).

        Resolving walks every component of the path with a system call each; the answer
        is kept per location together with the identity (device, inode) of the file it
        named, and reused while one ``stat`` through the unresolved path still reaches
        that same file. A link changed to point elsewhere names another file, so it is
        resolved and checked again."""
        unresolved = self._unresolved.get(table.location)
        if unresolved is None:
            unresolved = self._unresolved[table.location] = str(self.root / table.location)
        try:
            found = os.stat(unresolved)
        except OSError:
            found = None
        if found is not None:
            known = self._resolved.get(table.location)
            if known is not None and known[0] == (found.st_dev, found.st_ino):
                return known[1], found
        # Escaping is refused before existence is reported: nothing is told about files
        # outside the root.
        path = Path(unresolved).resolve()
        if not path.is_relative_to(self.root):
            raise ConnectorError(f"dataset location {table.location!r} leaves the store root")
        if found is None or not path.exists():
            raise DatasetNotFound(table.location)
        self._resolved[table.location] = ((found.st_dev, found.st_ino), path)
        return path, found

    def _reader(self, table: Table, path: Path, params: _Params) -> str:
        hive = bool(table.options.get("hive_partitioning", False))
        if path.is_dir():
            pattern = "**/*.parquet" if table.format == "parquet" else "**/*.csv"
            target = params.add(str(path / pattern))
        else:
            target = params.add(str(path))
        if table.format == "csv":
            return f"read_csv({target}, header = true, auto_detect = true)"
        if table.format == "parquet":
            return f"read_parquet({target}, hive_partitioning = {'true' if hive else 'false'})"
        raise ConnectorError(f"the local store cannot read format {table.format!r}")

    @staticmethod
    def _variant(table: Table) -> tuple[str, bool]:
        return (table.format, bool(table.options.get("hive_partitioning", False)))

    def _columns_of(self, table: Table, path: Path, cached: pa.Table) -> dict[str, pa.Array]:
        """The columns of a cached table, each one array (a cached file is one chunk per
        column), kept beside it: taking them out of the table again costs a small read
        more than slicing them does."""
        columns: dict[str, pa.Array] = self.file_cache.derive(
            path, self._variant(table), cached, ("columns",), _ColumnArrays.of
        )
        return columns

    def _cached(self, table: Table, path: Path, found: os.stat_result) -> pa.Table | None:
        if stat.S_ISDIR(found.st_mode) or table.format not in ("parquet", "csv"):
            decline_inline(f"{table.location} is read from disk")
            return None
        variant = self._variant(table)

        def load() -> pa.Table:
            decline_inline(f"{table.location} is not loaded yet")
            params = _Params()
            sql = f"SELECT * FROM {self._reader(table, path, params)}"
            cursor = self._cursor()
            try:
                with _map_duckdb_errors(table.location):
                    # One chunk per column: a scan then slices batches of any size
                    # without copying, instead of stopping at every row group.
                    return cursor.sql(sql, params=params.values).to_arrow_table().combine_chunks()
            finally:
                cursor.close()

        estimate = (lambda: _decoded_bytes(path)) if table.format == "parquet" else None
        cached = self.file_cache.get(path, variant, load, seen=found, decoded_bytes=estimate)
        if cached is None:
            decline_inline(f"{table.location} is too large to keep loaded")
        return cached

    def _source(self, table: Table, params: _Params, cursor: duckdb.DuckDBPyConnection) -> str:
        """The FROM clause for ``table``: its cached Arrow table registered on ``cursor``
        when the file is small, else DuckDB's reader over the file."""
        path, found = self._locate(table)
        cached = self._cached(table, path, found)
        if cached is not None:
            cursor.register(_CACHED_VIEW, cached)
            return quote_identifier(_CACHED_VIEW)
        return self._reader(table, path, params)

    def schema(self, table: Table) -> pa.Schema:
        params = _Params()
        cursor = self._cursor()
        try:
            sql = f"SELECT * FROM {self._source(table, params, cursor)} LIMIT 0"
            with _map_duckdb_errors(table.location):
                return cursor.sql(sql, params=params.values).to_arrow_table().schema
        finally:
            cursor.close()

    def _batches(
        self, table: Table, scan: Scan, batch_size: int, cancellation: Cancellation | None
    ) -> Iterator[pa.RecordBatch]:
        if not scan.filters and not scan.order_by:
            path, found = self._locate(table)
            cached = self._cached(table, path, found)
            if cached is not None:
                encoded = self._encoded(table, path, cached, scan, batch_size)
                derived = (
                    Deriver(
                        self.file_cache,
                        path,
                        self._variant(table),
                        cached,
                        scan.derived,
                        table.location,
                    )
                    if scan.derived
                    else None
                )
                arrays = self._columns_of(table, path, cached)
                yield from _slice(arrays, table, scan, batch_size, cancellation, encoded, derived)
                return
        params = _Params()
        columns = ", ".join(quote_identifier(c) for c in scan.columns)
        cursor = self._cursor()
        try:
            sql = f"SELECT {columns} FROM {self._source(table, params, cursor)}"
            sql += render_where(scan.filters, params)
            if scan.order_by:
                sql += " ORDER BY " + ", ".join(
                    f"{quote_identifier(o.column)} {'DESC' if o.descending else 'ASC'} NULLS LAST"
                    for o in scan.order_by
                )
            if scan.limit is not None:
                sql += f" LIMIT {int(scan.limit)}"
            if scan.offset:
                sql += f" OFFSET {int(scan.offset)}"
            with _map_duckdb_errors(table.location):
                reader = cursor.sql(sql, params=params.values).to_arrow_reader(batch_size)
                empty = True
                for batch in reader:
                    check_cancelled(cancellation)
                    empty = False
                    yield batch
                if empty:  # an empty answer still carries its schema
                    yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        finally:
            cursor.close()

    def _encoded(
        self, table: Table, path: Path, cached: pa.Table, scan: Scan, batch_size: int
    ) -> dict[str, pa.DictionaryArray]:
        """The columns of ``scan.dictionary`` worth encoding, whole and dictionary-encoded
        (built on the first bulk scan of the file version, then kept with it)."""
        window = cached.num_rows - min(int(scan.offset or 0), cached.num_rows)
        if scan.limit is not None:
            window = min(window, int(scan.limit))
        if min(window, batch_size) < DICTIONARY_MIN_ROWS:
            return {}
        encoded = {}
        for name in scan.dictionary:
            if name not in scan.columns or name not in cached.column_names:
                continue
            if not _encodable(cached.schema.field(name).type):
                continue
            encoded[name] = self.file_cache.derive(
                path, self._variant(table), cached, ("dictionary", name), _dictionary_of(name)
            )
        return encoded

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        schema = self.schema(table)
        check_aggregate_scan(scan, schema)
        params = _Params()
        groups = [quote_identifier(c) for c in scan.group_by]
        selected = list(groups)
        for agg in scan.aggregates:
            target = "*" if agg.column is None else quote_identifier(agg.column)
            selected.append(f"{agg.function.upper()}({target}) AS {quote_identifier(agg.alias)}")
        cursor = self._cursor()
        try:
            sql = f"SELECT {', '.join(selected)} FROM {self._source(table, params, cursor)}"
            sql += render_where(scan.filters, params)
            if groups:
                sql += " GROUP BY " + ", ".join(groups)
                sql += " ORDER BY " + ", ".join(f"{key} ASC NULLS LAST" for key in groups)
            with _map_duckdb_errors(table.location):
                answer = cursor.sql(sql, params=params.values).to_arrow_table()
        finally:
            cursor.close()
        return conform_table(answer, aggregate_schema(scan, schema))

    def close(self) -> None:
        self._database.close()


def _encodable(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_integer(kind)
    )


def _dictionary_of(name: str) -> Callable[[pa.Table], pa.DictionaryArray]:
    def build(cached: pa.Table) -> pa.DictionaryArray:
        encoded: pa.DictionaryArray = pc.dictionary_encode(cached.column(name).combine_chunks())
        return encoded

    return build


def _slice(
    columns: dict[str, pa.Array],
    table: Table,
    scan: Scan,
    batch_size: int,
    cancellation: Cancellation | None,
    encoded: dict[str, pa.DictionaryArray] | None = None,
    derived: Deriver | None = None,
) -> Iterator[pa.RecordBatch]:
    """A scan without filters or order over a cached table (``columns``: its columns by
    name): projection and a slice in file order, as DuckDB would return them, without
    planning a query. Columns of ``encoded`` replace their plain values in batches long
    enough to gain by them; columns of ``derived`` follow the projected ones."""
    missing = [c for c in scan.columns if c not in columns]
    if missing:
        raise ConnectorError(f"query on {table.location!r} failed: no column {missing[0]!r}")
    names = list(scan.columns)
    # A batch is put together from slices of whole columns: cheaper than selecting,
    # slicing and growing a Table per page.
    arrays = [columns[name] for name in names]
    rows_in_table = len(next(iter(columns.values()))) if columns else 0
    offset = int(scan.offset or 0)
    end = rows_in_table if scan.limit is None else min(rows_in_table, offset + scan.limit)
    # Sliced one batch at a time: a read that stops after its first page (the usual
    # case) does not pay for cutting the rest of the table into batches. An empty answer
    # is one empty batch, so that it still carries its schema.
    offset = min(offset, rows_in_table)
    for start in range(offset, end, batch_size) or (offset,):
        check_cancelled(cancellation)
        rows = max(0, min(batch_size, end - start))
        batch_names = names.copy()
        batch = [
            encoded[name].slice(start, rows)
            if encoded and name in encoded and 2 * len(encoded[name].dictionary) <= rows
            else array.slice(start, rows)
            for name, array in zip(names, arrays, strict=True)
        ]
        if derived is not None:
            for name, column in derived.columns(start, rows):
                batch_names.append(name)
                batch.append(column)
        yield pa.RecordBatch.from_arrays(batch, names=batch_names)


class _ColumnArrays(dict[str, pa.Array]):
    """A cached table's columns by name; views of the table's own buffers."""

    nbytes = 0  # what it adds to the cache's memory

    @classmethod
    def of(cls, cached: pa.Table) -> _ColumnArrays:
        names, chunked = cached.column_names, cached.columns
        return cls((n, _whole(c)) for n, c in zip(names, chunked, strict=True))


def _whole(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _decoded_bytes(path: Path) -> int:
    """A lower bound of the Arrow table a Parquet file decodes to, from its footer alone:
    fixed-width columns take their width per row whatever their encoding on disk (a
    dictionary- or run-length-encoded column is tiny there), and variable-width ones
    their uncompressed values plus an offset per row."""
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException):
        return 0  # unreadable here: the load reports it as the scan would
    values = [0] * metadata.num_columns
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for column in range(metadata.num_columns):
            values[column] += row_group.column(column).total_uncompressed_size
    total = 0
    for field, uncompressed in zip(schema, values, strict=False):
        try:
            total += metadata.num_rows * field.type.bit_width // 8
        except ValueError:  # not fixed-width
            total += metadata.num_rows * 4 + uncompressed
    return total
