"""Column-wise JSON rows are byte for byte what orjson writes for the row dicts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest

from gateway.read.encoders import _json_default, row_builder
from gateway.read.json_rows import rows_json


def _row_by_row(batch: pa.RecordBatch) -> bytes:
    columns = [column.to_pylist() for column in batch.columns]
    dicts = row_builder(tuple(batch.schema.names))(columns)
    return orjson.dumps(dicts, default=_json_default)[1:-1]


COLUMNS = {
    "int": pa.array([0, -1, 2**62, None, 7], pa.int64()),
    "uint": pa.array([0, 2**64 - 1, None, 3, 4], pa.uint64()),
    "small": pa.array([-128, 127, None, 0, 1], pa.int8()),
    "float": pa.array([0.1, 1.0, 1e16, float("nan"), None], pa.float64()),
    "float32": pa.array([0.1, -0.0, float("inf"), 3.5, None], pa.float32()),
    "tiny": pa.array([5e-324, 1e-7, 1.5e300, -2.0, 12345678.9], pa.float64()),
    "bool": pa.array([True, False, None, True, False]),
    "text": pa.array(["plain", "comma, and {braces}", None, "诊断", ""]),
    "escaped": pa.array(['a"b', "back\\slash", "new\nline", "\x1f\u2028\x7f", None]),
    "large": pa.array(["x", None, "y", "z", "w"], pa.large_string()),
    "dictionary": pa.array(["a", "b,", None, "a", 'q"']).dictionary_encode(),
    "date": pa.array(
        [dt.date(1, 1, 1), dt.date(999, 12, 31), None, dt.date(2020, 2, 29), dt.date(9999, 12, 31)]
    ),
    "timestamp": pa.array(
        [
            dt.datetime(2020, 1, 1, 12, 0, 0, 5),
            None,
            dt.datetime(1970, 1, 1),
            dt.datetime(2000, 1, 1),
            dt.datetime(2001, 2, 3, 4, 5, 6),
        ],
        pa.timestamp("us"),
    ),
    "utc": pa.array([0, 1, None, 10**15, 2**40], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    "decimal": pa.array(
        [Decimal("1.50"), None, Decimal("-0.01"), Decimal("100.00"), Decimal("0.00")],
        pa.decimal128(5, 2),
    ),
    "bytes": pa.array([b"\x00,", None, b"", b"abc", b","], pa.binary()),
    "nulls": pa.nulls(5),
    'we"ird': pa.array([1, 2, 3, 4, 5]),
}


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_each_column_type_matches_orjson(name: str) -> None:
    batch = pa.record_batch({name: COLUMNS[name], "next": pa.array(range(5))})
    assert rows_json(batch, _json_default) == _row_by_row(batch)


def test_all_columns_together_and_a_slice() -> None:
    batch = pa.record_batch(COLUMNS)
    assert rows_json(batch, _json_default) == _row_by_row(batch)
    part = batch.slice(1, 3)
    assert rows_json(part, _json_default) == _row_by_row(part)


def test_nested_types_and_repeated_names_go_row_by_row() -> None:
    nested = pa.record_batch({"list": pa.array([[1, 2], None])})
    assert rows_json(nested, _json_default) is None
    repeated = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    assert rows_json(repeated, _json_default) is None


def test_an_empty_batch_has_no_rows() -> None:
    assert rows_json(pa.record_batch({"a": pa.array([], pa.int64())}), _json_default) == b""
