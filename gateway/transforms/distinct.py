"""A value function over a column, run once per distinct value; nulls stay null."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def as_strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous string array, whatever string-like or numeric type came in."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def map_list(values: list[Any], fn: Callable[[Any], Any], out_type: pa.DataType) -> pa.Array:
    """``fn`` over a Python list (a page: cheaper than the Arrow calls below)."""
    memo: dict[Any, Any] = {}
    out: list[Any] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        done = memo.get(v)
        if done is None:
            done = memo[v] = fn(v)
        out.append(done)
    return pa.array(out, out_type)


def map_array(values: pa.Array, fn: Callable[[Any], Any], out_type: pa.DataType) -> pa.Array:
    """``fn`` over an Arrow array, through its dictionary encoding."""
    encoded = pc.dictionary_encode(values)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], out_type)
    # Null rows have null indices (dictionary_encode's default), and take keeps them null.
    return pc.take(mapped, encoded.indices)


def map_array_with(values: pa.Array, kernel: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``kernel`` (Arrow compute over a whole array of non-null values) over the distinct
    values of ``values``, through its dictionary encoding."""
    encoded = pc.dictionary_encode(values)
    return pc.take(kernel(encoded.dictionary), encoded.indices)
