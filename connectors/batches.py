"""Record-batch helpers every store's scan shares.

A scan always yields at least one batch, possibly empty, so that a caller learns the
output schema even when no row matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from connectors.base import Cancellation, ConnectorError


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
