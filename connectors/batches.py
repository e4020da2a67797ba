"""Record-batch helpers every store's scan shares, and the base of the store kinds.

A scan always yields at least one batch, possibly empty, so that a caller learns the
output schema even when no row matches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import pyarrow as pa

from connectors.base import Cancellation, ConnectorError, Scan, Table


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def check_cancelled(cancellation: Cancellation | None) -> None:
    if cancellation is not None:
        cancellation.raise_if_cancelled()


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConnectorError("batch_size must be positive")


def at_least_one(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, *, drop_empty: bool = False
) -> Iterator[pa.RecordBatch]:
    """``batches`` (without their empty ones when ``drop_empty``), or one empty batch of
    ``schema`` when there are none."""
    produced = False
    for batch in batches:
        if drop_empty and not batch.num_rows:
            continue
        produced = True
        yield batch
    if not produced:
        yield empty_batch(schema)


def coalesced(
    batches: Iterable[pa.RecordBatch], batch_size: int, max_bytes: int | None = None
) -> Iterator[pa.RecordBatch]:
    """``batches`` regrouped into batches of ``batch_size`` rows, the last one smaller;
    with ``max_bytes``, a batch is also handed on once its rows hold that many bytes.

    Stores hand out a batch per row group or fetch, often far fewer rows than asked
    for, while much of a read's work is paid once per batch (a hash table of the
    recipient's pseudonyms, an encoder call). Small batches are joined, at the cost of
    one copy of their rows; a batch that fits is passed on without a copy. Empty
    batches are dropped, but a scan of no rows still yields one, for its schema."""
    pending: list[pa.RecordBatch] = []
    held = 0
    # Bytes are counted only once two batches wait to be joined (a batch passed on
    # alone is never copied): None until then.
    held_bytes: int | None = None
    empty: pa.RecordBatch | None = None
    produced = False
    for batch in batches:
        if not batch.num_rows:
            empty = empty or batch
            continue
        pending.append(batch)
        held += batch.num_rows
        produced = True
        while held >= batch_size:
            if len(pending) == 1:
                head, rest = pending[0].slice(0, batch_size), pending[0].slice(batch_size)
                yield head
                pending = [rest] if rest.num_rows else []
            else:
                rows = pa.Table.from_batches(pending)
                yield _one_batch(rows.slice(0, batch_size))
                pending = [b for b in rows.slice(batch_size).to_batches() if b.num_rows]
            held -= batch_size
            held_bytes = None
        if max_bytes is None or len(pending) < 2:
            continue
        if held_bytes is None:
            held_bytes = sum(b.nbytes for b in pending)
        else:
            held_bytes += batch.nbytes
        if held_bytes >= max_bytes:
            yield _joined(pending)
            pending, held, held_bytes = [], 0, None
    if held:
        yield _joined(pending)
    elif empty is not None and not produced:
        yield empty


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return _one_batch(pa.Table.from_batches(batches))


def _one_batch(rows: pa.Table) -> pa.RecordBatch:
    if all(column.num_chunks == 1 for column in rows.columns):
        return rows.to_batches()[0]
    return rows.combine_chunks().to_batches()[0]


class StoreConnector(ABC):
    """What the store kinds share: :meth:`scan` checks its arguments for all of them and
    leaves the reading to :meth:`_batches`."""

    def scan(
        self,
        table: Table,
        scan: Scan,
        *,
        batch_size: int = 65_536,
        cancellation: Cancellation | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the matching rows; always yields at least one (possibly empty) batch."""
        check_batch_size(batch_size)
        check_cancelled(cancellation)
        yield from self._batches(table, scan, batch_size, cancellation)

    @abstractmethod
    def _batches(
        self, table: Table, scan: Scan, batch_size: int, cancellation: Cancellation | None
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``scan`` in batches of at most ``batch_size`` rows, checking
        ``cancellation`` between them."""
