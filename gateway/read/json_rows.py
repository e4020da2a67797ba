"""JSON text of record batches, built column by column in Arrow.

Each column becomes one Arrow string array of JSON values (one per row), and the rows
are joined from those arrays by Arrow's element-wise concatenation: no Python object
is made per row or per value for the columns this module knows. The text is exactly
what ``orjson.dumps`` writes for the same rows as dicts, so the encoder can use either;
``rows_json`` returns None for a batch it cannot write that way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

_NULL = pa.scalar("null", pa.large_string())
_QUOTE = pa.scalar('"', pa.large_string())
_NOTHING = pa.scalar("", pa.large_string())


def _quoted(text: pa.Array) -> pa.Array | None:
    """A string column as JSON strings, or None when some value needs escaping."""
    text = text.cast(pa.large_string())
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)
    data = text.buffers()[2]
    if data is not None and len(text):
        first, last = int(offsets[text.offset]), int(offsets[text.offset + len(text)])
        raw = np.frombuffer(data, dtype=np.uint8)[first:last]
        # The characters JSON strings must escape: '"', '\\' and the controls.
        if ((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any():
            return None
    return pc.binary_join_element_wise(_QUOTE, text, _QUOTE, _NOTHING)


def _split_json_list(values: list[Any], default: Callable[[Any], Any]) -> pa.Array:
    """Values whose JSON never holds a comma (numbers, booleans, null, dates, times,
    and strings without one), written by orjson as one list and cut at its commas."""
    text = orjson.dumps(values, default=default)[1:-1]
    if not values:
        return pa.array([], pa.large_string())
    raw = np.frombuffer(text, dtype=np.uint8)
    commas = np.flatnonzero(raw == ord(","))
    offsets = np.empty(len(commas) + 2, dtype=np.int64)
    offsets[0] = 0
    offsets[1:-1] = commas
    offsets[-1] = len(raw)
    # Every value after the first starts just past its comma.
    starts = offsets[:-1].copy()
    starts[1:] += 1
    ends = offsets[1:]
    lengths = ends - starts
    packed_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    keep = np.ones(len(raw), dtype=bool)
    keep[commas] = False
    data = raw[keep]
    return pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(packed_offsets.tobytes()), pa.py_buffer(data.tobytes())
    )


def _comma_free(type_: pa.DataType) -> bool:
    return (
        pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
        or pa.types.is_boolean(type_)
        or pa.types.is_null(type_)
        or pa.types.is_date(type_)
        or pa.types.is_time(type_)
        or pa.types.is_timestamp(type_)
        or pa.types.is_decimal(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
    )


def _values(column: pa.Array, default: Callable[[Any], Any]) -> pa.Array | None:
    """One JSON value per row, as a large_string array, or None."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    type_ = column.type
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        quoted = _quoted(column)
        if quoted is None:
            # Some value needs escaping: orjson writes each one (still no row dicts).
            dumped = [orjson.dumps(value) for value in column.to_pylist()]
            return pa.array(dumped, pa.large_binary()).cast(pa.large_string())
        return pc.fill_null(quoted, _NULL)
    if pa.types.is_integer(type_) or pa.types.is_boolean(type_):
        # Arrow spells these exactly as JSON does.
        return pc.fill_null(column.cast(pa.large_string()), _NULL)
    if pa.types.is_date32(type_):
        text = pc.binary_join_element_wise(_QUOTE, column.cast(pa.large_string()), _QUOTE, _NOTHING)
        return pc.fill_null(text, _NULL)
    if _comma_free(type_):
        return _split_json_list(column.to_pylist(), default)
    return None


def rows_json(batch: pa.RecordBatch, default: Callable[[Any], Any]) -> bytes | None:
    """The rows of ``batch`` as orjson writes a list of row dicts, without the list's
    brackets; None when a column's type or values need the row-by-row path."""
    names = batch.schema.names
    if batch.num_rows == 0:
        return b""
    if not names or len(set(names)) != len(names):
        return None
    parts: list[pa.Array | pa.Scalar] = []
    for i, (name, column) in enumerate(zip(names, batch.columns, strict=True)):
        values = _values(column, default)
        if values is None:
            return None
        key = orjson.dumps(name).decode()
        parts.append(pa.scalar(("{" if i == 0 else ",") + key + ":", pa.large_string()))
        parts.append(values)
    parts.append(pa.scalar("},", pa.large_string()))
    joined = pc.binary_join_element_wise(*parts, _NOTHING)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)[
        joined.offset : joined.offset + len(joined) + 1
    ]
    data = joined.buffers()[2]
    # The rows lie back to back in the values buffer; the last comma is not JSON's.
    return data[int(offsets[0]) : int(offsets[-1]) - 1].to_pybytes()
