"""Reading helpers the per-store connector tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from connectors.base import Connector, Scan, Table


def read(connector: Connector, table: Table, scan: Scan, **options: Any) -> pa.Table:
    batches = list(connector.scan(table, scan, **options))
    assert batches, "a scan yields at least one batch"
    return pa.Table.from_batches(batches)


def ids(table: pa.Table, column: str = "id") -> list[Any]:
    return list(table.column(column).to_pylist())


def null_safe(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``test`` as SQL applies it: a NULL never matches."""
    return lambda value: value is not None and test(value)
