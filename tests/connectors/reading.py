"""Reading helpers the per-store connector tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

from connectors.base import Aggregate, Connector, Scan, Table

Row = dict[str, Any]


def read(connector: Connector, table: Table, scan: Scan, **options: Any) -> pa.Table:
    batches = list(connector.scan(table, scan, **options))
    assert batches, "a scan yields at least one batch"
    return pa.Table.from_batches(batches)


def ids(table: pa.Table, column: str = "id") -> list[Any]:
    return list(table.column(column).to_pylist())


def null_safe(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``test`` as SQL applies it: a NULL never matches."""
    return lambda value: value is not None and test(value)


# The aggregates every store computes over the people table, grouped by city, and the
# types of their columns (the city first).
PEOPLE_AGGREGATES = (
    Aggregate("count", None, "n"),
    Aggregate("count", "age", "n_age"),
    Aggregate("sum", "age", "sum_age"),
    Aggregate("avg", "score", "avg_score"),
    Aggregate("min", "born", "first_born"),
    Aggregate("max", "balance", "max_balance"),
    Aggregate("sum", "balance", "sum_balance"),
    Aggregate("max", "active", "any_active"),
)
PEOPLE_AGGREGATE_TYPES = [
    pa.string(),
    pa.int64(),
    pa.int64(),
    pa.int64(),
    pa.float64(),
    pa.date32(),
    pa.decimal128(12, 2),
    pa.decimal128(38, 2),
    pa.bool_(),
]


def check_people_groups(result: pa.Table, rows: list[Row]) -> list[tuple[Row, list[Row]]]:
    """Check each city's ``PEOPLE_AGGREGATES`` against the rows it stands for; each
    city's answer with its rows, for the checks of a store's own aggregates."""
    assert result.column("city").to_pylist() == ["Kyoto", "Lyon", "Oslo", "Paris", None]
    groups = []
    for got in result.to_pylist():
        group = [row for row in rows if row["city"] == got["city"]]
        ages = [row["age"] for row in group if row["age"] is not None]
        assert got["n"] == len(group)
        assert got["n_age"] == len(ages)
        assert got["sum_age"] == sum(ages)
        assert got["avg_score"] == pytest.approx(sum(r["score"] for r in group) / len(group))
        assert got["first_born"] == min(row["born"] for row in group)
        assert got["max_balance"] == max(row["balance"] for row in group)
        assert got["sum_balance"] == sum(row["balance"] for row in group)
        assert got["any_active"] is any(row["active"] for row in group)
        groups.append((got, group))
    return groups
