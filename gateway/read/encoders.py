"""Streaming encoders for query results: JSON, CSV, Arrow IPC stream and Parquet.

Each encoder turns transformed record batches into byte chunks as they arrive, so a
large read never sits in memory whole. The closing chunk (JSON's ``next_cursor``,
Arrow's end-of-stream marker, Parquet's footer) is produced only after the read was
audited: a client that did not get it knows the response is incomplete.

The next page's cursor travels in that closing chunk for every format that has one:
JSON's ``next_cursor`` field, the custom metadata of a last, empty Arrow batch, and
the Parquet footer's key-value metadata, each under ``kiteline.next_cursor``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gateway.errors import NotAcceptable
from gateway.read.json_rows import rows_json

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
MEDIA_TYPES = (JSON, CSV, ARROW, PARQUET)
NEXT_CURSOR_KEY = "kiteline.next_cursor"
_ALIASES = {"application/x-parquet": PARQUET, "application/*": JSON, "text/*": CSV, "*/*": JSON}


def negotiate(accept: str | None) -> str:
    """Pick the best supported media type from an Accept header (JSON when absent)."""
    if not accept or not accept.strip():
        return JSON
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        quality = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        media = _ALIASES.get(media, media)
        if media in MEDIA_TYPES and quality > 0:
            offers.append((-quality, position, media))
    if not offers:
        raise NotAcceptable(
            f"none of the requested media types is supported; use one of {', '.join(MEDIA_TYPES)}",
            supported=list(MEDIA_TYPES),
        )
    return min(offers)[2]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot encode {type(value).__name__}")


# Batches of at most this many rows are written from row dicts rather than by
# rows_json.
SMALL_JSON_ROWS = 128


@functools.lru_cache(maxsize=1024)
def row_builder(names: tuple[str, ...]) -> Callable[[list[list[Any]]], list[dict[str, Any]]]:
    """A function turning columns (lists of values) into rows (dicts keyed by ``names``).

    It is compiled once per list of names, as a comprehension with one dict display: a
    page builds its rows four times faster than with ``dict(zip(names, row))`` (and
    RecordBatch.to_pylist is slower still). The generated text holds only numbered
    placeholders; the names themselves are bound as values, never written as code."""
    if not names:
        return lambda _columns: []
    keys = ", ".join(f"_k{i}: _v{i}" for i in range(len(names)))
    values = ", ".join(f"_v{i}" for i in range(len(names)))
    source = f"lambda columns: [{{{keys}}} for {values}, in zip(*columns)]"
    scope = {f"_k{i}": name for i, name in enumerate(names)}
    built: Callable[[list[list[Any]]], list[dict[str, Any]]] = eval(source, scope)
    return built


@dataclass
class Encoder:
    """Produces the response body: ``start()``, ``batch(b)`` per batch, ``finish(...)``."""

    media_type: str
    schema: pa.Schema
    header: dict[str, Any]

    def start(self) -> bytes:
        raise NotImplementedError

    def batch(self, batch: pa.RecordBatch) -> bytes:
        raise NotImplementedError

    def finish(self, next_cursor: str | None) -> bytes:
        raise NotImplementedError


class JsonEncoder(Encoder):
    def start(self) -> bytes:
        self._first = True
        head = orjson.dumps(
            {**self.header, "columns": [{"name": f.name, "type": str(f.type)} for f in self.schema]}
        )
        return head[:-1] + b',"rows":['

    def batch(self, batch: pa.RecordBatch) -> bytes:
        if batch.num_rows == 0:
            return b""
        # Arrow's kernels cost some tens of microseconds a column whatever the rows: a
        # page of ordinary size is written faster as row dicts (figures in
        # docs/performance.md).
        rows = None if batch.num_rows <= SMALL_JSON_ROWS else rows_json(batch, _json_default)
        if rows is None:  # a small batch, or a column type written row by row
            columns = [column.to_pylist() for column in batch.columns]
            dicts = row_builder(tuple(batch.schema.names))(columns)
            rows = orjson.dumps(dicts, default=_json_default)[1:-1]
        if self._first:
            self._first = False
            return rows
        return b"," + rows

    def finish(self, next_cursor: str | None) -> bytes:
        return b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"


class CsvEncoder(Encoder):
    def start(self) -> bytes:
        self._wrote_header = False
        return b""

    def batch(self, batch: pa.RecordBatch) -> bytes:
        sink = io.BytesIO()
        options = pacsv.WriteOptions(include_header=not self._wrote_header)
        self._wrote_header = True
        pacsv.write_csv(pa.Table.from_batches([batch], schema=self.schema), sink, options)
        return sink.getvalue()

    def finish(self, next_cursor: str | None) -> bytes:  # noqa: ARG002 - no trailer in CSV
        if not self._wrote_header:
            return (",".join(self.schema.names) + "\n").encode()
        return b""


class _ChunkSink:
    """A write-only file the Arrow writers write into; ``drain`` hands over what was
    written since the last drain, copied once. The writers hand over column data as
    Arrow buffers, which are never written to again, so they are kept as they are
    until the drain; a ``BytesIO`` would copy every piece in, copy it out again and
    shrink after each batch."""

    closed = False

    def __init__(self) -> None:
        self._pieces: list[Any] = []
        self._written = 0

    def write(self, data: Any) -> int:
        size = len(data)
        self._pieces.append(data)
        self._written += size
        return size

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        pieces = self._pieces
        self._pieces = []
        return b"".join(pieces)


class ArrowEncoder(Encoder):
    def start(self) -> bytes:
        self._sink = _ChunkSink()
        self._writer = pa.ipc.new_stream(self._sink, self.schema)
        return self._sink.drain()

    def batch(self, batch: pa.RecordBatch) -> bytes:
        self._writer.write_batch(batch)
        return self._sink.drain()

    def finish(self, next_cursor: str | None) -> bytes:
        if next_cursor is not None:
            # Readers that ignore batch metadata see one more batch of no rows.
            self._writer.write_batch(
                pa.RecordBatch.from_pylist([], schema=self.schema),
                custom_metadata={NEXT_CURSOR_KEY: next_cursor},
            )
        self._writer.close()
        return self._sink.drain()


class ParquetEncoder(ArrowEncoder):
    def start(self) -> bytes:
        self._sink = _ChunkSink()
        self._writer = pq.ParquetWriter(self._sink, self.schema)
        return self._sink.drain()

    def finish(self, next_cursor: str | None) -> bytes:
        if next_cursor is not None:
            self._writer.add_key_value_metadata({NEXT_CURSOR_KEY: next_cursor})
        self._writer.close()
        return self._sink.drain()


ENCODERS: dict[str, Callable[..., Encoder]] = {
    JSON: JsonEncoder,
    CSV: CsvEncoder,
    ARROW: ArrowEncoder,
    PARQUET: ParquetEncoder,
}


def encoder_for(media_type: str, schema: pa.Schema, header: dict[str, Any]) -> Encoder:
    return ENCODERS[media_type](media_type, schema, header)


def iter_encoded(encoder: Encoder, batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    yield encoder.start()
    for batch in batches:
        chunk = encoder.batch(batch)
        if chunk:
            yield chunk
